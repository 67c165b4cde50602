"""Service settings, read from the environment when the service is first used.

Chalice sets a stage's environment variables only while a handler runs, so
nothing here is read at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return default if raw in (None, "") else int(raw)


@dataclass(frozen=True)
class Settings:
    stage: str = "dev"
    region: str = "us-east-1"
    # Every table name is "<prefix>-<table>", so stages share nothing.
    table_prefix: str = "pinning-dev"
    queue_url: str | None = None
    # Emulated AWS (moto server) for the local stack; None on real AWS.
    aws_endpoint_url: str | None = None
    replication_factor: int = 2
    token_cache_seconds: int = 60
    node_cache_seconds: int = 30
    max_body_bytes: int = 64 * 1024
    outbox_shards: int = 4
    # Outbox entries older than this are re-published by the sweeper.
    outbox_grace_seconds: int = 60
    # A pin not held by its nodes this long after `created` fails.
    pin_deadline_seconds: int = 24 * 3600
    # pin/add is cancelled (and retried later) when no block arrived this long.
    stall_seconds: int = 120
    # How long a worker waits before looking at an unfinished pin again.
    continue_delay_seconds: int = 30
    # Kubo calls in flight per node from one worker process.
    node_concurrency: int = 4
    # Stop this long before the Lambda deadline and continue in a new message.
    invocation_margin_seconds: int = 15
    # Origins in private, loopback or link-local ranges are dropped unless allowed.
    allow_private_origins: bool = False
    # Bearer secret for the fleet's Kubo RPC (API.Authorizations); None = no auth.
    kubo_rpc_secret: str | None = None
    # On AWS the secret lives in Secrets Manager; read on the first Kubo call.
    kubo_rpc_secret_arn: str | None = None
    # Nodes with less free space are not chosen for new pins.
    min_free_bytes: int = 1024**3
    # CloudWatch reads metrics from log lines only under Lambda.
    emit_metrics: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        stage = env.get("STAGE", "dev")
        return cls(
            stage=stage,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            table_prefix=env.get("TABLE_PREFIX") or f"pinning-{stage}",
            queue_url=env.get("PIN_QUEUE_URL") or None,
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            replication_factor=_int(env, "REPLICATION_FACTOR", 2),
            token_cache_seconds=_int(env, "TOKEN_CACHE_SECONDS", 60),
            node_cache_seconds=_int(env, "NODE_CACHE_SECONDS", 30),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 64 * 1024),
            outbox_shards=_int(env, "OUTBOX_SHARDS", 4),
            outbox_grace_seconds=_int(env, "OUTBOX_GRACE_SECONDS", 60),
            pin_deadline_seconds=_int(env, "PIN_DEADLINE_SECONDS", 24 * 3600),
            stall_seconds=_int(env, "STALL_SECONDS", 120),
            continue_delay_seconds=_int(env, "CONTINUE_DELAY_SECONDS", 30),
            node_concurrency=_int(env, "NODE_CONCURRENCY", 4),
            invocation_margin_seconds=_int(env, "INVOCATION_MARGIN_SECONDS", 15),
            allow_private_origins=env.get("ALLOW_PRIVATE_ORIGINS", "").lower() in ("1", "true", "yes"),
            kubo_rpc_secret=env.get("KUBO_RPC_SECRET") or None,
            kubo_rpc_secret_arn=env.get("KUBO_RPC_SECRET_ARN") or None,
            min_free_bytes=_int(env, "MIN_FREE_BYTES", 1024**3),
            emit_metrics=bool(env.get("AWS_LAMBDA_FUNCTION_NAME")),
        )


def aws_client(settings: Settings, service: str) -> Any:
    """A botocore client (not boto3: cold starts do not pay for it) for the
    stage's region, or the emulated endpoint of the local stack."""
    import botocore.session

    return botocore.session.get_session().create_client(
        service, region_name=settings.region, endpoint_url=settings.aws_endpoint_url
    )


def read_secret(settings: Settings, secret_id: str) -> str:
    return aws_client(settings, "secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
