"""Service settings, read from the environment when the service is first used.

Chalice sets a stage's environment variables only while a handler runs, so
nothing here is read at import time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from chalicelib.pins.scan_limit import DEFAULT_MAX_SCANNED_PINS

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from types_boto3_autoscaling import AutoScalingClient
    from types_boto3_secretsmanager import SecretsManagerClient
    from types_boto3_sqs import SQSClient

_T = TypeVar("_T")


def table_prefix_for(stage: str) -> str:
    """The stage's table prefix unless TABLE_PREFIX says otherwise."""
    return f"pinning-{stage}"


def _flag(raw: str) -> bool:
    return raw.lower() in ("1", "true", "yes")


def _parse_as(default: object) -> Callable[[str], object]:
    """Read as the default's type; a setting whose default is None is a string."""
    if isinstance(default, bool):
        return _flag
    if isinstance(default, int):
        return int
    return str


def _setting(default: _T, *env_names: str, parse: Callable[[str], _T] | None = None) -> _T:
    """A setting's default and the environment variables it is read from
    (the first one set; empty means unset), parsed as `_parse_as` says unless
    `parse` is given."""
    return field(default=default, metadata={"env": env_names, "parse": parse or _parse_as(default)})


@dataclass(frozen=True)
class Settings:
    stage: str = _setting("dev", "STAGE")
    region: str = _setting("us-east-1", "AWS_REGION", "AWS_DEFAULT_REGION")
    # Every table name is "<prefix>-<table>", so stages share nothing.
    # Empty: table_prefix_for(stage).
    table_prefix: str = _setting("", "TABLE_PREFIX")
    queue_url: str | None = _setting(None, "PIN_QUEUE_URL")
    # The archive function's queue (archive messages); None: they go to the pin queue.
    archive_queue_url: str | None = _setting(None, "ARCHIVE_QUEUE_URL")
    # Emulated AWS (moto server) for the local stack; None on real AWS.
    aws_endpoint_url: str | None = _setting(None, "AWS_ENDPOINT_URL")
    replication_factor: int = _setting(2, "REPLICATION_FACTOR")
    token_cache_seconds: int = _setting(60, "TOKEN_CACHE_SECONDS")
    node_cache_seconds: int = _setting(30, "NODE_CACHE_SECONDS")
    max_body_bytes: int = _setting(64 * 1024, "MAX_BODY_BYTES")
    # Each outbox shard is one partition key whose newest entries take every
    # write (~9 write units a pin): ~110 pins/s a shard for the whole service
    # (bench.capacity); the sweeper reads each one a minute.
    outbox_shards: int = _setting(64, "OUTBOX_SHARDS")
    # New pins a second one of a tenant's shards takes (storage.shard_planner).
    shard_pins_per_second: float = _setting(25.0, "SHARD_PINS_PER_SECOND")
    # Outbox entries older than this are re-published by the sweeper.
    outbox_grace_seconds: int = _setting(60, "OUTBOX_GRACE_SECONDS")
    # A pin not held by its nodes this long after `created` fails.
    pin_deadline_seconds: int = _setting(24 * 3600, "PIN_DEADLINE_SECONDS")
    # pin/add is cancelled (and retried later) when no block arrived this long.
    stall_seconds: int = _setting(120, "STALL_SECONDS")
    # How long a worker waits before looking at an unfinished pin again.
    continue_delay_seconds: int = _setting(30, "CONTINUE_DELAY_SECONDS")
    # Kubo calls in flight per node from one worker process.
    node_concurrency: int = _setting(4, "NODE_CONCURRENCY")
    # Messages of one tenant at work at once in one worker process; the rest
    # are deferred (chalicelib.worker.batch.TenantShare). Below NODE_CONCURRENCY,
    # so another tenant's pin always finds a Kubo slot (fairness between tenants).
    tenant_share: int = _setting(3, "TENANT_SHARE")
    # Worker invocations one tenant's messages may hold at once, across
    # processes (chalicelib.worker.invocation_slots); 0: no bound. Below the
    # pin function's MaximumConcurrency (.chalice/config.json sets each
    # stage's; infra.render checks it), so an invocation is always free for
    # the other tenants. 1: the smallest MaximumConcurrency, 2, less one.
    tenant_invocations: int = _setting(1, "TENANT_INVOCATIONS")
    # Stop this long before the Lambda deadline and continue in a new message.
    invocation_margin_seconds: int = _setting(15, "INVOCATION_MARGIN_SECONDS")
    # Off (production): the worker resolves origin names itself and dials only
    # the addresses, dropping any origin with a non-global address
    # (chalicelib.worker.origins). On (the local stack): origins go to Kubo as given.
    allow_private_origins: bool = _setting(False, "ALLOW_PRIVATE_ORIGINS")
    # Bearer secret for the fleet's Kubo RPC (API.Authorizations); None = no auth.
    kubo_rpc_secret: str | None = _setting(None, "KUBO_RPC_SECRET")
    # On AWS the secret lives in Secrets Manager; read on the first Kubo call.
    kubo_rpc_secret_arn: str | None = _setting(None, "KUBO_RPC_SECRET_ARN")
    # Nodes with less free space are not chosen for new pins.
    min_free_bytes: int = _setting(1024**3, "MIN_FREE_BYTES")
    # Pins one list request may read for a partial name or a meta filter
    # (chalicelib.pins.scan_limit says why and how the default was chosen).
    max_scanned_pins: int = _setting(DEFAULT_MAX_SCANNED_PINS, "MAX_SCANNED_PINS")
    # The fleet reconciler (chalicelib.fleet.reconciler) unpins what no hold
    # covers only once it was seen unheld this long, with no hold taken or
    # given up since: longer than any pin in progress, so longer than a pin
    # turn (at most Lambda's 15 minutes) plus the queue's visibility timeout
    # (6 turns) before a redelivery.
    reconcile_grace_seconds: int = _setting(2 * 3600, "RECONCILE_GRACE_SECONDS")
    # Per node and run: holds compared with Kubo's pins, and as many of
    # Kubo's pins compared with the holds; and the longest a run takes.
    reconcile_pins_per_run: int = _setting(500, "RECONCILE_PINS_PER_RUN")
    reconcile_seconds: int = _setting(240, "RECONCILE_SECONDS")
    # The cold tier (chalicelib.cold.archiver): the S3 bucket of the archives
    # (None: nothing is archived) and the prefix of their keys.
    archive_bucket: str | None = _setting(None, "ARCHIVE_BUCKET")
    archive_prefix: str = _setting("archives/", "ARCHIVE_PREFIX")
    # An archive is deleted this long after its last request went.
    archive_grace_seconds: int = _setting(7 * 24 * 3600, "ARCHIVE_GRACE_SECONDS")
    # Attempts (each an export and upload) before an archive is failed; below
    # the queue's MaxReceiveCount, so the archiver says why before the
    # dead-letter queue does.
    archive_attempts: int = _setting(3, "ARCHIVE_ATTEMPTS")
    # What one turn archives a second (CommP's speed, the slowest part):
    # a DAG larger than this times the turn's time left is not begun.
    archive_bytes_per_second: int = _setting(18 * 1024 * 1024, "ARCHIVE_BYTES_PER_SECOND")
    # Orphaned archives one sweep deletes at most.
    archive_sweep_limit: int = _setting(100, "ARCHIVE_SWEEP_LIMIT")
    # What a restore imports a second (an archive's CAR from S3 into
    # dag/import, every block verified; chalicelib.cold.restorer): a CAR
    # larger than this times the turn's time left waits for a new turn.
    restore_bytes_per_second: int = _setting(32 * 1024 * 1024, "RESTORE_BYTES_PER_SECOND")
    # The stage's storage tier (chalicelib.cold.tiers: hot+cold, cold-only,
    # hot-only) and, for cold-only, the days unretrieved after which hot
    # copies are released; a tenant may override both.
    storage_tier: str = _setting("hot+cold", "STORAGE_TIER")
    cold_only_after_days: int = _setting(30, "COLD_ONLY_AFTER_DAYS")
    # A tenant's tier is read again after this long in each container.
    tier_cache_seconds: int = _setting(60, "TIER_CACHE_SECONDS")
    # Plans and their quotas (chalicelib.usage.plans: JSON; empty: free, pro,
    # unlimited and demo), the plan of a tenant given none, and how long a
    # container keeps a tenant's quotas before reading them again.
    usage_plans: str = _setting("", "USAGE_PLANS")
    default_plan: str = _setting("unlimited", "DEFAULT_PLAN")
    plan_cache_seconds: int = _setting(60, "PLAN_CACHE_SECONDS")
    # Where the monthly usage records go (usage/YYYY-MM.jsonl; the archive
    # bucket on AWS); None: not exported.
    usage_bucket: str | None = _setting(None, "USAGE_BUCKET")
    # The longest one run of the cooling sweep (chalicelib.cold.tiering) takes,
    # and the most holds due it looks at (the next run goes on).
    cooling_seconds: int = _setting(240, "COOLING_SECONDS")
    cooling_limit: int = _setting(2000, "COOLING_LIMIT")
    # Retrieval (GET /ipfs/{cid}, chalicelib.cold.retrieval): the largest
    # answer (a Lambda response is 6 MB, binary bodies base64: 4 MiB fits),
    # the time all hot nodes' reads of one request get (API Gateway gives
    # up at 29 s), and how long a larger DAG's redirect URL reads its archive.
    retrieval_max_bytes: int = _setting(4 << 20, "RETRIEVAL_MAX_BYTES")
    retrieval_node_seconds: int = _setting(20, "RETRIEVAL_NODE_SECONDS")
    retrieval_url_seconds: int = _setting(300, "RETRIEVAL_URL_SECONDS")
    # Requests a second and burst of each tenant (all its tokens) and of each
    # token, per API container (chalicelib.tenants.rate_limits); 0 a second:
    # no limit. Generous enough for the IPFS Web UI's and Kubo's polling and
    # paging (tests/api/test_rate_limits_clients.py); `cli.admin tenants
    # rate-limit` sets a tenant's own. RATE_LIMIT_CONTAINERS divides them
    # all, for a tenant's requests expected to spread over that many containers.
    rate_limit_per_second: int = _setting(100, "RATE_LIMIT_PER_SECOND")
    rate_limit_burst: int = _setting(3000, "RATE_LIMIT_BURST")
    rate_limit_token_per_second: int = _setting(30, "RATE_LIMIT_TOKEN_PER_SECOND")
    rate_limit_token_burst: int = _setting(1000, "RATE_LIMIT_TOKEN_BURST")
    rate_limit_containers: int = _setting(1, "RATE_LIMIT_CONTAINERS")
    # The webhooks queue (SQS FIFO: chalicelib.webhooks.messages); None: no webhook is sent.
    webhook_queue_url: str | None = _setting(None, "WEBHOOK_QUEUE_URL")
    # Off (production): webhook endpoints are https URLs whose every address
    # is global (chalicelib.webhooks.addresses). On (the local stack): loopback
    # addresses too, and http to them.
    allow_loopback_webhooks: bool = _setting(False, "ALLOW_LOOPBACK_WEBHOOKS")
    # Filecoin copies (chalicelib.filecoin): the copies a request wants unless
    # its meta or its tenant says (0: none; off), and the tracker's rules.
    filecoin_copies: int = _setting(0, "FILECOIN_COPIES")
    # A copy proving is checked this often; one adding or lapsed every minute.
    filecoin_check_seconds: int = _setting(3600, "FILECOIN_CHECK_SECONDS")
    # A copy lapsed this long is ended and repaired with another provider.
    filecoin_lapse_grace_seconds: int = _setting(2 * 24 * 3600, "FILECOIN_LAPSE_GRACE_SECONDS")
    # The epochs a copy's cost is reserved for (30 days), against a cap per
    # calendar month in the token's smallest unit (0: nothing may be spent).
    filecoin_term_epochs: int = _setting(86_400, "FILECOIN_TERM_EPOCHS")
    filecoin_spend_cap: int = _setting(0, "FILECOIN_SPEND_CAP")
    # A copy ending within this many epochs (7 days) is replaced first.
    filecoin_renew_epochs: int = _setting(20_160, "FILECOIN_RENEW_EPOCHS")
    # The chain's genesis (mainnet's; another network: its own), for its epoch by the clock.
    filecoin_genesis_unix: int = _setting(1598306400, "FILECOIN_GENESIS_UNIX")
    # The provider rule (chalicelib.filecoin.selection): comma-separated
    # provider ids allowed (empty: all) and excluded, and regions (empty: any).
    filecoin_providers: str = _setting("", "FILECOIN_PROVIDERS")
    filecoin_excluded_providers: str = _setting("", "FILECOIN_EXCLUDED_PROVIDERS")
    filecoin_regions: str = _setting("", "FILECOIN_REGIONS")
    # The longest one tracker run takes, and the most CIDs it visits (the next run goes on).
    filecoin_tracker_seconds: int = _setting(240, "FILECOIN_TRACKER_SECONDS")
    filecoin_tracker_limit: int = _setting(1000, "FILECOIN_TRACKER_LIMIT")
    # A copy adding or lapsed is followed this often; a pending one's message
    # is sent again after FILECOIN_RESEND_SECONDS (chalicelib.filecoin.tracker).
    filecoin_adding_check_seconds: int = _setting(60, "FILECOIN_ADDING_CHECK_SECONDS")
    filecoin_resend_seconds: int = _setting(3600, "FILECOIN_RESEND_SECONDS")
    # The backend copies are made with: "pdp" (PDP on Filecoin Onchain Cloud,
    # chalicelib.filecoin.pdp) or "off" (none made, tracked or wanted, whatever
    # FILECOIN_COPIES, a tenant or a request's meta asks).
    filecoin_backend: str = _setting("off", "FILECOIN_BACKEND")
    # PDP: the network (mainnet, calibration), its chain's JSON-RPC URL (empty:
    # the network's public Glif endpoint) and the epochs past a proving
    # deadline before a copy counts as lapsed.
    filecoin_network: str = _setting("mainnet", "FILECOIN_NETWORK")
    filecoin_rpc_url: str = _setting("", "FILECOIN_RPC_URL")
    filecoin_proof_grace_epochs: int = _setting(60, "FILECOIN_PROOF_GRACE_EPOCHS")
    # The service wallet's key (hex): its Secrets Manager secret, read once per
    # container by the functions that sign; the key itself only on the local stack.
    filecoin_wallet_secret_arn: str | None = _setting(None, "FILECOIN_WALLET_SECRET_ARN")
    filecoin_wallet_key: str | None = _setting(None, "FILECOIN_WALLET_KEY")
    # CloudWatch reads metrics from log lines only under Lambda.
    emit_metrics: bool = _setting(False, "AWS_LAMBDA_FUNCTION_NAME", parse=bool)

    def __post_init__(self) -> None:
        if not self.table_prefix:
            object.__setattr__(self, "table_prefix", table_prefix_for(self.stage))

    @property
    def stalled_tenant_delay_seconds(self) -> int:
        """How long a tenant whose places (or invocation slots) all stall keeps
        its other messages away: ten continuations, as a drain's passes. They
        could not run sooner, and coming back every continuation would send a
        1,000-pin backlog round the queue ~33 times a second, which slowed
        everyone's pins (bench.tenant_fairness)."""
        return 10 * self.continue_delay_seconds

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        values: dict[str, Any] = {}
        for setting in fields(cls):
            raw = next((env[name] for name in setting.metadata["env"] if env.get(name)), None)
            if raw is not None:
                values[setting.name] = setting.metadata["parse"](raw)
        return cls(**values)


@overload
def aws_client(settings: Settings, service: Literal["sqs"]) -> SQSClient: ...
@overload
def aws_client(settings: Settings, service: Literal["secretsmanager"]) -> SecretsManagerClient: ...
@overload
def aws_client(settings: Settings, service: Literal["autoscaling"]) -> AutoScalingClient: ...
@overload
def aws_client(settings: Settings, service: Literal["s3"]) -> BaseClient: ...
def aws_client(settings: Settings, service: str) -> BaseClient:
    """A botocore client (not boto3: cold starts do not pay for it) for the
    stage's region, or the emulated endpoint of the local stack."""
    import botocore.session
    from botocore.config import Config

    # S3's presigned URLs (retrieval's redirects) must be SigV4: SigV2 is retired.
    config = Config(signature_version="s3v4") if service == "s3" else None
    return botocore.session.get_session().create_client(
        service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url, config=config
    )


class _SecretBodies(logging.Filter):
    """Drops botocore's DEBUG lines of the responses this thread reads while
    reading a secret: botocore.parsers logs every response body, the secret's
    value with it."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.reading, "secret", False)


_SECRET_BODIES = _SecretBodies()
logging.getLogger("botocore.parsers").addFilter(_SECRET_BODIES)


def read_secret(settings: Settings, secret_id: str) -> str:
    _SECRET_BODIES.reading.secret = True
    try:
        return aws_client(settings, "secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    finally:
        _SECRET_BODIES.reading.secret = False
