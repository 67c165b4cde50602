"""The operator's admin tool: tenants, their API tokens, the node fleet, tables.

    python -m cli.admin --help

It talks to DynamoDB directly, with the operator's own AWS credentials, so it
works against the local stack (moto server, `--endpoint-url`) and real AWS
alike. `--json` makes every command print one JSON object or array on stdout.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import click

from chalicelib.config import Settings, table_prefix_for
from chalicelib.pins.timestamps import format_ms
from chalicelib.tenants.scopes import SCOPES
from cli.commands import emit, json_command, note, print_table

if TYPE_CHECKING:
    from chalicelib.cold.tiers import TierPolicy
    from chalicelib.filecoin.backfill import Backfilled
    from chalicelib.storage.layout import TableFinding
    from chalicelib.tenants.admin import TenantAdmin
    from chalicelib.tenants.rate_limits import RateLimits
    from chalicelib.webhooks.endpoints import Endpoint, Webhooks
    from chalicelib.wiring import Services

_SECRET_WARNING = (
    "This secret is shown only now: the service keeps just its hash. "
    "Store it safely; a lost secret cannot be recovered, only revoked and replaced."
)


class CliError(click.ClickException):
    """A one-line message on stderr and exit status 1, never a traceback."""

    exit_code = 1


# --- settings -----------------------------------------------------------------


@dataclass
class Options:
    endpoint_url: str | None = None
    region: str | None = None
    stage: str | None = None
    table_prefix: str | None = None
    profile: str | None = None
    json: bool = False
    _settings: Settings | None = None
    _services: Services | None = None

    def services(self) -> Services:
        """The service's objects for these options (tables bound, one DynamoDB client)."""
        if self._services is None:
            from chalicelib.wiring import build_services

            self._services = build_services(self.settings())
        return self._services

    def settings(self) -> Settings:
        """The settings for these options, with the credentials they need."""
        if self._settings is None:
            self._settings = build_settings(self, os.environ)
            if self.profile:
                # PynamoDB makes its own botocore session, which reads this.
                os.environ["AWS_PROFILE"] = self.profile
            if self._settings.aws_endpoint_url and not _has_explicit_credentials(os.environ):
                # The local stack accepts any credentials but botocore wants some.
                os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
                os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        return self._settings


def _has_explicit_credentials(env: Mapping[str, str]) -> bool:
    return bool(env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE"))


def build_settings(options: Options, env: Mapping[str, str]) -> Settings:
    """Settings from the environment, overridden by the command-line options.

    Table prefix: --table-prefix, else pinning-<stage> when --stage is given,
    else $TABLE_PREFIX, else pinning-<$STAGE or dev>.
    """
    try:
        base = Settings.from_env(env)
    except ValueError as error:
        raise CliError(f"bad setting in the environment: {error}") from None
    stage = options.stage or base.stage
    if options.table_prefix:
        prefix = options.table_prefix
    elif options.stage:
        prefix = table_prefix_for(options.stage)
    else:
        prefix = base.table_prefix
    region = options.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        region = _profile_region(options.profile) or base.region
    return replace(
        base,
        stage=stage,
        region=region,
        table_prefix=prefix,
        aws_endpoint_url=options.endpoint_url or base.aws_endpoint_url,
    )


def _profile_region(profile: str | None) -> str | None:
    """The region configured for the AWS profile (~/.aws/config), if any."""
    import botocore.session

    try:
        region = botocore.session.Session(profile=profile).get_config_variable("region")
    except Exception:  # an unknown profile is reported when DynamoDB is first used
        return None
    return region if isinstance(region, str) else None


# --- output -------------------------------------------------------------------


def _options() -> Options:
    return click.get_current_context().find_root().ensure_object(Options)


def _time(ms: int | None) -> str | None:
    return None if ms is None else format_ms(int(ms))


def command(group: click.Group, name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], click.Command]:
    return json_command(group, name, Options, **kwargs)


# --- errors -------------------------------------------------------------------


def _error_message(error: Exception) -> str | None:
    """A one-line message for an expected failure; None for a bug."""
    import botocore.exceptions

    from chalicelib.fleet.registry import InvalidNode
    from chalicelib.storage.failures import MISSING_TABLE, storage_failure
    from chalicelib.storage.layout import TablesOfAnotherLayout, what_to_do
    from chalicelib.tenants.admin import UnknownTenant, UnknownToken

    if isinstance(error, UnknownTenant):
        return f"unknown tenant {error.args[0]!r}"
    if isinstance(error, UnknownToken):
        return f"unknown token {error.args[0]!r} for this tenant"
    if isinstance(error, InvalidNode):
        return f"invalid node: {error}"
    if isinstance(error, TablesOfAnotherLayout):
        return f"refused, no table created: tables of another layout ({error}). {what_to_do(_options().settings())}"
    failure = storage_failure(error)
    if failure is not None:
        if failure.code == MISSING_TABLE:
            settings = _options().settings()
            table = failure.table or f"{settings.table_prefix}-*"
            where = settings.aws_endpoint_url or settings.region
            return (
                f"table {table} not found at {where}: check --table-prefix/--stage/--region "
                "(on the local stack, run `tables create`)"
            )
        if failure.code:
            return f"DynamoDB {failure.code}: {failure.message}"
        return f"DynamoDB: {failure.message}"
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials: set AWS_PROFILE (or --profile) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    if isinstance(error, (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)):
        return " ".join(f"AWS: {error}".split())
    return None


class AdminGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            message = _error_message(error)
            if message is None:
                raise
            raise CliError(message) from None


# --- the tool -----------------------------------------------------------------


@click.group(cls=AdminGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    metavar="URL",
    help="The local stack's emulated AWS; `source .dev/aws.env` sets it [env AWS_ENDPOINT_URL]. Omit on real AWS.",
)
@click.option("--region", help="AWS region [env AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1].")
@click.option("--profile", help="AWS profile for credentials [env AWS_PROFILE].")
@click.option("--stage", help=f"Service stage; sets the table prefix to pinning-STAGE [env STAGE, {Settings().stage}].")
@click.option(
    "--table-prefix",
    metavar="PREFIX",
    help="Tables are PREFIX-<table> [env TABLE_PREFIX, else pinning-<stage>]. Overrides --stage.",
)
@click.option("--json", "json_output", is_flag=True, help="Print machine-readable JSON on stdout.")
@click.pass_context
def cli(
    ctx: click.Context,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    stage: str | None,
    table_prefix: str | None,
    json_output: bool,
) -> None:
    """Administer an IPFS Pinning Service: tenants, API tokens, Kubo nodes, tables.

    Talks to the service's DynamoDB tables with your AWS credentials: those of
    the local stack with --endpoint-url, or a real deployment's (pick it with
    --region and --stage or --table-prefix).

    Errors go to stderr as one line, with exit status 1.
    """
    options = ctx.ensure_object(Options)
    options.endpoint_url = endpoint_url or None
    options.region = region
    options.profile = profile
    options.stage = stage
    options.table_prefix = table_prefix
    options.json = options.json or json_output


# --- tenants ------------------------------------------------------------------


@cli.group()
def tenants() -> None:
    """Create, list and show tenants (the accounts that own pins and tokens); set their storage tier."""


def _tenant_json(record: Any) -> dict[str, Any]:
    policy = _policy(record)
    return {
        "tenant_id": record.tenant_id,
        "name": record.name,
        "created": _time(record.created_ms),
        "tier": policy.tier,
        "cold_after_days": policy.cold_after_days if policy.cools else None,
        # Whether the tenant set them, or follows the stage's (STORAGE_TIER, COLD_ONLY_AFTER_DAYS).
        "tier_source": "tenant" if record.tier else "stage",
        "rate_limits": asdict(_rate_limits(record)),
        "rate_limits_source": "tenant" if record.rate_limits else "stage",
    }


def _policy(record: Any) -> TierPolicy:
    from chalicelib.cold.tiers import policy_of

    settings = _options().settings()
    return policy_of(record, settings.storage_tier, settings.cold_only_after_days)


def _tier_text(record: Any) -> str:
    """The tier as a table shows it: `cold-only/30d`, `(stage)` when it is the stage's."""
    policy = _policy(record)
    text = f"{policy.tier}/{policy.cold_after_days}d" if policy.cools else policy.tier
    return text if record.tier else f"{text} (stage)"


def _admin() -> TenantAdmin:
    return _options().services().admin


@command(tenants, "create")
@click.argument("name")
def tenants_create(name: str) -> None:
    """Create a tenant called NAME and print its id.

    Then give it a token with `tokens issue TENANT_ID --label LABEL`.
    """
    if not name.strip():
        raise CliError("a tenant needs a non-empty name")
    record = _admin().create_tenant(name)
    emit(_tenant_json(record), lambda: click.echo(record.tenant_id))


@command(tenants, "list")
def tenants_list() -> None:
    """List tenants: id, name, created, storage tier."""
    records = sorted(_admin().tenants(), key=lambda r: (r.created_ms, r.tenant_id))
    emit(
        [_tenant_json(r) for r in records],
        lambda: print_table(
            ("TENANT", "NAME", "CREATED", "TIER"),
            [(r.tenant_id, r.name, _time(r.created_ms), _tier_text(r)) for r in records],
            "no tenants",
        ),
    )


def _print_tenant(record: Any) -> None:
    for key, value in _tenant_json(record).items():
        if value is not None:
            click.echo(f"{key + ':':<17} {value}")


@command(tenants, "show")
@click.argument("tenant_id")
def tenants_show(tenant_id: str) -> None:
    """Show TENANT_ID: name, created, storage tier (its own or the stage's)."""
    record = _admin().tenant(tenant_id)
    emit(_tenant_json(record), lambda: _print_tenant(record))


_TIER_CHOICES = ("hot+cold", "cold-only", "hot-only", "stage")


@command(tenants, "tier")
@click.argument("tenant_id")
@click.argument("tier", type=click.Choice(_TIER_CHOICES))
@click.option(
    "--cold-after-days",
    type=click.IntRange(min=1),
    metavar="N",
    help="cold-only: release the hot copies after N days without retrieval [the stage's COLD_ONLY_AFTER_DAYS].",
)
def tenants_tier(tenant_id: str, tier: str, cold_after_days: int | None) -> None:
    """Set TENANT_ID's storage tier: hot+cold (nodes and archive), cold-only
    (archive; hot copies released after N days without retrieval, made hot
    again when retrieved or pinned again), hot-only (nodes only, no archive),
    or stage (follow the stage's STORAGE_TIER).

    It applies to what comes next: requests archived, retrieved or pinned
    again after the change (workers see it within TIER_CACHE_SECONDS, 60 by
    default). A hot-only tenant's existing archives stay until their
    requests are deleted.
    """
    if cold_after_days is not None and tier != "cold-only":
        raise CliError("--cold-after-days applies to the cold-only tier only")
    record = _admin().set_tier(tenant_id, None if tier == "stage" else tier, cold_after_days)
    emit(
        _tenant_json(record),
        lambda: click.echo(f"tenant {record.tenant_id}: storage tier {_tier_text(record)}"),
    )


@command(tenants, "filecoin")
@click.argument("tenant_id")
@click.option("--copies", type=click.IntRange(min=0), metavar="N", help="The Filecoin copies its requests want.")
@click.option("--default", "follow_stage", is_flag=True, help="Drop the tenant's own: follow the stage's.")
def tenants_filecoin(tenant_id: str, copies: int | None, follow_stage: bool) -> None:
    """Set the Filecoin copies TENANT_ID's requests want (0: none), or with
    --default follow the stage's FILECOIN_COPIES. A request's own
    meta "filecoin.copies" wins over either.

    It applies to what comes next: requests archived or pinned again after
    the change (chalicelib.filecoin.wanted); `tenants filecoin-existing`
    applies it to those archived already.
    """
    from chalicelib.filecoin.wanted import checked_copies
    from chalicelib.storage.filecoin_tenants import DynamoTenantCopies
    from chalicelib.tenants.admin import UnknownTenant

    if follow_stage == (copies is not None):
        raise CliError("give --copies N or --default")
    try:
        own = None if copies is None else checked_copies(copies)
    except ValueError as error:
        raise CliError(str(error)) from None
    _options().services()  # binds the tables
    if not DynamoTenantCopies().set_copies(tenant_id, own):
        raise UnknownTenant(tenant_id)
    stage = _options().settings().filecoin_copies
    text = f"{stage} (stage)" if own is None else str(own)
    emit(
        {
            "tenant_id": tenant_id,
            "filecoin_copies": stage if own is None else own,
            "filecoin_source": "stage" if own is None else "tenant",
        },
        lambda: click.echo(f"tenant {tenant_id}: Filecoin copies {text}"),
    )


def _backfill_progress(tenant_id: str, so_far: Backfilled) -> None:
    note(f"{tenant_id}: {so_far.pinned} pinned requests read")


@command(tenants, "filecoin-existing")
@click.argument("tenant_ids", metavar="[TENANT_ID]...", nargs=-1)
def tenants_filecoin_existing(tenant_ids: tuple[str, ...]) -> None:
    """Apply the Filecoin copies each tenant's requests want now (their own
    meta, the tenant's, the stage's) to its requests archived already: after
    turning Filecoin on for a stage with archives, or changing a tenant's
    copies. No TENANT_ID: every tenant. The tracker begins or ends copies at
    its next visit of each CID. Safe to run again (chalicelib.filecoin.backfill).
    """
    admin = _admin()
    backfill = _options().services().copies_backfill
    if backfill is None:
        raise CliError("Filecoin copies are off on this stage (FILECOIN_BACKEND=off): there is nothing to apply")
    ids = list(tenant_ids) or [record.tenant_id for record in admin.tenants()]
    for tenant_id in ids:
        admin.tenant(tenant_id)  # an unknown id fails before anything is written
    results = []
    for tenant_id in ids:
        done = backfill.run(tenant_id, functools.partial(_backfill_progress, tenant_id))
        results.append({"tenant_id": tenant_id, "pinned": done.pinned, "archived": done.wanted})
    emit(
        results,
        lambda: print_table(
            ("TENANT", "PINNED", "ARCHIVED (WANTS RECORDED)"),
            [(one["tenant_id"], one["pinned"], one["archived"]) for one in results],
            "no tenants",
        ),
    )


_LIMIT = click.IntRange(min=0)


@command(tenants, "rate-limit")
@click.argument("tenant_id")
@click.option("--per-second", type=_LIMIT, metavar="N", help="The tenant's requests a second, all tokens together.")
@click.option("--burst", type=_LIMIT, metavar="N", help="The tenant's burst: requests at once after a quiet spell.")
@click.option("--token-per-second", type=_LIMIT, metavar="N", help="Each of its tokens' requests a second.")
@click.option("--token-burst", type=_LIMIT, metavar="N", help="Each of its tokens' burst.")
@click.option("--stage", "follow_stage", is_flag=True, help="Drop the tenant's own limits: follow the stage's.")
def tenants_rate_limit(
    tenant_id: str,
    per_second: int | None,
    burst: int | None,
    token_per_second: int | None,
    token_burst: int | None,
    follow_stage: bool,
) -> None:
    """Set TENANT_ID's own request limits (429 RATE_LIMITED beyond them), or
    with --stage follow the stage's (RATE_LIMIT_* settings).

    A limit not given keeps its current value; 0 a second means unlimited.
    Each API container limits the requests it serves (docs/architecture.md,
    "Rate limits"); containers apply a change within TOKEN_CACHE_SECONDS.
    """
    given = {"per_second": per_second, "burst": burst, "token_per_second": token_per_second, "token_burst": token_burst}
    if follow_stage == any(value is not None for value in given.values()):
        raise CliError("give --stage, or at least one of --per-second, --burst, --token-per-second, --token-burst")
    admin = _admin()
    limits = None
    if not follow_stage:
        current = _rate_limits(admin.tenant(tenant_id))
        try:
            limits = replace(current, **{name: value for name, value in given.items() if value is not None})
        except ValueError as error:
            raise CliError(str(error)) from None
    record = admin.set_rate_limits(tenant_id, limits)
    emit(_tenant_json(record), lambda: click.echo(f"tenant {record.tenant_id}: rate limits {_rate_text(record)}"))


def _rate_limits(record: Any) -> RateLimits:
    """The tenant's own limits, else the stage's."""
    from chalicelib.tenants.rate_limits import RateLimits

    settings = _options().settings()
    return record.rate_limits or RateLimits(
        settings.rate_limit_per_second,
        settings.rate_limit_burst,
        settings.rate_limit_token_per_second,
        settings.rate_limit_token_burst,
    )


def _rate_text(record: Any) -> str:
    """`100/s burst 3000, each token 30/s burst 1000`, `(stage)` when they are the stage's."""
    limits = _rate_limits(record)
    text = (
        f"{limits.per_second}/s burst {limits.burst}, each token {limits.token_per_second}/s burst {limits.token_burst}"
    )
    return text if record.rate_limits else f"{text} (stage)"


# --- tokens -------------------------------------------------------------------


@cli.group()
def tokens() -> None:
    """Issue, list and revoke a tenant's API tokens.

    A token's secret is shown once, when issued; the service stores only its
    SHA-256 hash, so listings never show it.
    """


def _token_json(record: Any) -> dict[str, Any]:
    # Deliberately no secret and no hash.
    return {
        "token_id": record.token_id,
        "tenant_id": record.tenant_id,
        "label": record.label,
        "created": _time(record.created_ms),
        "revoked": _time(record.revoked_ms),
        "status": "active" if record.revoked_ms is None else "revoked",
        "scope": record.scope,
    }


@command(tokens, "issue")
@click.argument("tenant_id")
@click.option("--label", required=True, help="What the token is for, e.g. 'ci' or 'alice-laptop'.")
@click.option(
    "--scope",
    type=click.Choice(SCOPES),
    default="write",
    show_default=True,
    help="read: list and get pins; write: the whole Pinning Service API and retrieval; retrieve: GET /ipfs/{cid} only.",
)
def tokens_issue(tenant_id: str, label: str, scope: str) -> None:
    """Issue an API token for TENANT_ID and print its secret, once.

    The secret alone goes to stdout (so `TOKEN=$(... tokens issue ...)` works);
    the notes go to stderr. It is not stored anywhere: copy it now. A request
    the token's scope does not allow answers 403 FORBIDDEN.
    """
    if not label.strip():
        raise CliError("a token needs a non-empty --label")
    issued = _admin().issue_token(tenant_id, label, scope)
    data = {
        "token_id": issued.token_id,
        "tenant_id": issued.tenant_id,
        "label": issued.label,
        "scope": issued.scope,
        "secret": issued.secret,
        "warning": _SECRET_WARNING,
    }

    def human() -> None:
        note(
            f"Issued token {issued.token_id} ({issued.label!r}, scope {issued.scope}) "
            f"for tenant {issued.tenant_id}. Secret:"
        )
        click.echo(issued.secret)
        note(f"WARNING: {_SECRET_WARNING}")

    emit(data, human)
    if _options().json:
        note(f"WARNING: {_SECRET_WARNING}")


@command(tokens, "list")
@click.argument("tenant_id")
def tokens_list(tenant_id: str) -> None:
    """List TENANT_ID's tokens: id, label, scope, created, active or revoked.

    Secrets are never shown (nor stored).
    """
    admin = _admin()
    admin.tenant(tenant_id)
    records = sorted(admin.tokens(tenant_id), key=lambda r: (r.created_ms, r.token_id))
    emit(
        [_token_json(r) for r in records],
        lambda: print_table(
            ("TOKEN", "LABEL", "SCOPE", "CREATED", "STATUS"),
            [
                (
                    r.token_id,
                    r.label,
                    r.scope,
                    _time(r.created_ms),
                    "active" if r.revoked_ms is None else f"revoked {_time(r.revoked_ms)}",
                )
                for r in records
            ],
            f"tenant {tenant_id} has no tokens",
        ),
    )


@command(tokens, "revoke")
@click.argument("tenant_id")
@click.argument("token_id")
def tokens_revoke(tenant_id: str, token_id: str) -> None:
    """Revoke TENANT_ID's token TOKEN_ID (from `tokens list`).

    Revoking an already revoked token changes nothing. API containers that
    saw the token recently may accept it until their token cache expires
    (TOKEN_CACHE_SECONDS, 60 by default).
    """
    admin = _admin()
    admin.tenant(tenant_id)
    record = admin.revoke_token(tenant_id, token_id)
    cache_seconds = _options().settings().token_cache_seconds
    emit(
        _token_json(record),
        lambda: click.echo(
            f"revoked token {record.token_id} of tenant {tenant_id} at {_time(record.revoked_ms)}; "
            f"running API containers may accept it for up to {cache_seconds}s more"
        ),
    )


# --- nodes --------------------------------------------------------------------


@cli.group()
def nodes() -> None:
    """Register, list and remove the Kubo nodes that pins are placed on."""


def _node_json(record: Any) -> dict[str, Any]:
    return {
        "node_id": record.node_id,
        "rpc_url": record.rpc_url,
        "peer_id": record.peer_id,
        "healthy": bool(record.healthy),
        "multiaddrs": list(record.multiaddrs or []),
        "tags": list(record.tags or []),
        "free_bytes": None if record.free_bytes is None else int(record.free_bytes),
        "checked": _time(record.checked_ms),
        "registered": _time(record.registered_ms),
    }


@command(nodes, "register")
@click.argument("node_id")
@click.option("--rpc-url", required=True, metavar="URL", help="Kubo RPC API, e.g. http://10.0.0.5:5001.")
@click.option("--peer-id", required=True, metavar="ID", help="The node's libp2p peer ID (`ipfs id`).")
@click.option(
    "--multiaddr",
    "multiaddrs",
    multiple=True,
    metavar="ADDR",
    help="Public address clients dial, e.g. /ip4/203.0.113.1/tcp/4001; /p2p/<peer ID> is "
    "appended when missing. Repeatable; at least one.",
)
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Placement tag. Repeatable.")
def nodes_register(node_id: str, rpc_url: str, peer_id: str, multiaddrs: Sequence[str], tags: Sequence[str]) -> None:
    """Register the Kubo node NODE_ID (or replace its registration).

    A new registration starts healthy; workers pick it up within their node
    cache period (NODE_CACHE_SECONDS, 30 by default).
    """
    record = _options().services().registry.register(node_id, rpc_url, peer_id, list(multiaddrs), list(tags))
    emit(_node_json(record), lambda: click.echo(f"registered node {record.node_id}"))


@command(nodes, "list")
def nodes_list() -> None:
    """List nodes: id, RPC URL, peer ID, healthy, multiaddrs, tags."""
    records = _options().services().registry.nodes()
    emit(
        [_node_json(r) for r in records],
        lambda: print_table(
            ("NODE", "RPC URL", "PEER ID", "HEALTHY", "MULTIADDRS", "TAGS"),
            [
                (
                    r.node_id,
                    r.rpc_url,
                    r.peer_id,
                    "yes" if r.healthy else "no",
                    ",".join(r.multiaddrs or []) or "-",
                    ",".join(r.tags or []) or "-",
                )
                for r in records
            ],
            "no nodes registered",
        ),
    )


_DRAINING = "its pins are being re-replicated on the other nodes (drain queued)"


@command(nodes, "remove")
@click.argument("node_id")
def nodes_remove(node_id: str) -> None:
    """Remove NODE_ID from the fleet: no new pins are placed on it, and every
    pin it held is re-replicated on the other nodes (its drain is queued).

    The node itself is not called: its copies count as gone.
    """
    # Without PIN_QUEUE_URL the drain message waits in the outbox, which
    # the service's sweep sends within a minute or two.
    if not _options().services().removal.remove(node_id):
        raise CliError(f"unknown node {node_id!r}")
    emit(
        {"node_id": node_id, "removed": True, "drain": "queued"},
        lambda: click.echo(f"removed node {node_id}; {_DRAINING}"),
    )


@command(nodes, "drain")
@click.argument("node_id")
def nodes_drain(node_id: str) -> None:
    """Queue the drain of a removed node NODE_ID again, e.g. after its drain
    message ended in the dead-letter queue. Safe to repeat."""
    if not _options().services().removal.drain(node_id):
        raise CliError(f"node {node_id!r} is registered; remove it first (`nodes remove`)")
    emit({"node_id": node_id, "drain": "queued"}, lambda: click.echo(f"node {node_id}: {_DRAINING}"))


# --- tables -------------------------------------------------------------------


@cli.group()
def tables() -> None:
    """The service's DynamoDB tables: check their layout; create them on the local stack."""


def _finding_json(finding: TableFinding) -> dict[str, Any]:
    return {"table": finding.table, "state": finding.state.value, "differences": list(finding.differences)}


def _print_finding(finding: TableFinding) -> None:
    click.echo(f"{finding.state.value:<12}  {finding.table}")
    for difference in finding.differences:
        click.echo(f"{'':<12}    {difference}")


@command(tables, "check")
def tables_check() -> None:
    """Compare each table's layout (keys, indexes, projections) with the code's.

    Prints each table as missing, matching or of another layout (with what
    differs). Exits 1 when any table is of another layout, and says what to
    do; missing tables are no error (`tables create` or `make deploy` makes
    them). Reads only: one DescribeTable per table.
    """
    from chalicelib.storage.layout import TableState, what_to_do
    from chalicelib.storage.tables import check_tables

    settings = _options().settings()
    findings = check_tables(settings)

    def human() -> None:
        for finding in findings:
            _print_finding(finding)

    emit([_finding_json(f) for f in findings], human)
    if any(finding.state is TableState.OTHER_LAYOUT for finding in findings):
        raise CliError(f"tables of another layout: the code cannot use them. {what_to_do(settings)}")


@command(tables, "create")
@click.option(
    "--allow-aws",
    is_flag=True,
    help="Create them even without --endpoint-url, i.e. on real AWS (not recommended).",
)
def tables_create(allow_aws: bool) -> None:
    """Create the missing tables, for the local stack.

    On real AWS the tables belong to the infra/ stack: deploy that instead.
    Without --endpoint-url (or AWS_ENDPOINT_URL) this refuses unless given
    --allow-aws, since tables made here would clash with infra/'s. Refuses,
    creating nothing, when a table exists with another layout (`tables check`
    shows what differs).
    """
    settings = _options().settings()
    if not settings.aws_endpoint_url and not allow_aws:
        raise CliError(
            "no --endpoint-url: on AWS the tables are owned by infra/; pass --allow-aws to create them here anyway"
        )
    from chalicelib.storage.tables import create_tables, table_names

    created = create_tables(settings)
    existing = [name for name in table_names(settings) if name not in created]

    def human() -> None:
        for name in created:
            click.echo(f"created {name}")
        for name in existing:
            click.echo(f"exists  {name}")

    emit({"created": created, "existing": existing}, human)


# --- webhooks -------------------------------------------------------------------


@cli.group()
def webhooks() -> None:
    """Tenants' webhook endpoints: add (its secret shown once), list, remove, and each one's delivery log."""


def _webhooks() -> Webhooks:
    return _options().services().webhooks.endpoints


def _endpoint_row(endpoint: Endpoint) -> tuple[str, str, str, str]:
    return (endpoint.endpoint_id, endpoint.tenant_id, ",".join(endpoint.events), endpoint.url)


@command(webhooks, "add")
@click.argument("tenant_id")
@click.argument("url")
@click.option(
    "--events",
    "events",
    required=True,
    metavar="TYPES",
    help=(
        "Comma-separated event types: pin.queued, pin.pinning, pin.pinned, pin.failed, pin.deleted,"
        " pin.archived, pin.archive_failed, pin.cold, pin.restored, pin.filecoin."
    ),
)
def webhooks_add(tenant_id: str, url: str, events: str) -> None:
    """Register URL for TENANT_ID's pin events and print the endpoint's secret (shown only now).

    Production takes https URLs on global addresses only; the local stack also
    http on loopback (ALLOW_LOOPBACK_WEBHOOKS, set by `source .dev/aws.env`).
    """
    from chalicelib.webhooks.endpoints import InvalidEndpoint, TooManyEndpoints
    from chalicelib.webhooks.views import endpoint_json

    _admin().tenant(tenant_id)  # an unknown tenant is an error, not an orphan endpoint
    wanted = [event.strip() for event in events.split(",") if event.strip()]
    try:
        endpoint = _webhooks().register(tenant_id, url, wanted)
    except (InvalidEndpoint, TooManyEndpoints) as error:
        raise CliError(f"refused: {error}") from None
    note("The secret is shown only now: the receiver verifies deliveries with it.")
    emit(endpoint_json(endpoint, with_secret=True), lambda: click.echo(f"{endpoint.endpoint_id} {endpoint.secret}"))


@command(webhooks, "list")
@click.argument("tenant_id")
def webhooks_list(tenant_id: str) -> None:
    """List TENANT_ID's endpoints (secrets are never shown again)."""
    from chalicelib.webhooks.views import endpoint_json

    endpoints = _webhooks().of_tenant(tenant_id)
    emit(
        [endpoint_json(endpoint) for endpoint in endpoints],
        lambda: print_table(
            ("ENDPOINT", "TENANT", "EVENTS", "URL"), [_endpoint_row(e) for e in endpoints], "no webhook endpoints"
        ),
    )


@command(webhooks, "remove")
@click.argument("tenant_id")
@click.argument("endpoint_id")
def webhooks_remove(tenant_id: str, endpoint_id: str) -> None:
    """Remove TENANT_ID's endpoint ENDPOINT_ID: deliveries still queued for it are dropped."""
    if not _webhooks().remove(tenant_id, endpoint_id):
        raise CliError(f"no endpoint {endpoint_id!r} for tenant {tenant_id!r}")
    emit({"removed": endpoint_id}, lambda: click.echo(f"removed {endpoint_id}"))


@command(webhooks, "deliveries")
@click.argument("tenant_id")
@click.argument("endpoint_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100))
def webhooks_deliveries(tenant_id: str, endpoint_id: str, limit: int) -> None:
    """The last delivery attempts to ENDPOINT_ID, newest first: status code or error."""
    from chalicelib.webhooks.views import attempt_json

    attempts = _webhooks().attempts(tenant_id, endpoint_id, limit)
    if attempts is None:
        raise CliError(f"no endpoint {endpoint_id!r} for tenant {tenant_id!r}")
    rows: list[Sequence[str]] = [
        (format_ms(a.at_ms), a.event_type, str(a.attempt), str(a.status_code or "-"), a.error or "", a.message_id)
        for a in attempts
    ]
    emit(
        [attempt_json(attempt) for attempt in attempts],
        lambda: print_table(("AT", "EVENT", "TRY", "STATUS", "ERROR", "MESSAGE"), rows, "no delivery attempts"),
    )


# --- usage and quotas ---------------------------------------------------------


def _quota_value(text: str | None) -> int | None | str:
    """A quota option: a whole number, `plan` (drop the override), or absent."""
    if text is None or text == "plan":
        return text
    if not text.isdigit():
        raise CliError(f"a quota is a whole number >= 0 or `plan`, not {text!r}")
    return int(text)


def _print_plan(view: Any) -> None:
    click.echo(f"tenant {view.tenant_id}: plan {view.plan}")
    for name, value in view.quotas.as_dict().items():
        own = " (override)" if name in view.overrides else ""
        click.echo(f"  {name + ':':<17} {'unlimited' if value is None else value}{own}")


@command(tenants, "plan")
@click.argument("tenant_id")
@click.argument("plan", required=False)
def tenants_plan(tenant_id: str, plan: str | None) -> None:
    """Put TENANT_ID on PLAN (one of the stage's USAGE_PLANS: free, pro,
    unlimited, demo by default), or show its plan and quotas. API containers
    apply a change within PLAN_CACHE_SECONDS (60 by default)."""
    from chalicelib.usage.plans import InvalidPlans

    admin = _options().services().plan_admin
    try:
        view = admin.show(tenant_id) if plan is None else admin.set_plan(tenant_id, plan)
    except InvalidPlans as error:
        raise CliError(str(error)) from None
    emit(view.as_dict(), lambda: _print_plan(view))


@command(tenants, "quota")
@click.argument("tenant_id")
@click.option("--pins", metavar="N|plan", help="Queued, pinning and pinned requests at most.")
@click.option("--bytes", "bytes_", metavar="N|plan", help="Bytes pinned at most (DAG sizes).")
@click.option("--in-flight", metavar="N|plan", help="Queued and pinning requests at most.")
@click.option("--filecoin-copies", metavar="N|plan", help="Filecoin copies a request may have at most.")
def tenants_quota(
    tenant_id: str, pins: str | None, bytes_: str | None, in_flight: str | None, filecoin_copies: str | None
) -> None:
    """Override single quotas of TENANT_ID's plan (`plan`: back to the plan's)."""
    from chalicelib.usage.plans import InvalidPlans

    given = {"pins": pins, "bytes": bytes_, "in_flight": in_flight, "filecoin_copies": filecoin_copies}
    values = {name: _quota_value(text) for name, text in given.items() if text is not None}
    if not values:
        raise CliError("give at least one of --pins, --bytes, --in-flight, --filecoin-copies")
    changes = {name: None if value == "plan" else int(value or 0) for name, value in values.items()}
    try:
        view = _options().services().plan_admin.set_quotas(tenant_id, changes)
    except InvalidPlans as error:
        raise CliError(str(error)) from None
    emit(view.as_dict(), lambda: _print_plan(view))


@command(cli, "usage")
@click.argument("tenant_id", required=False)
@click.option("--all", "every", is_flag=True, help="Every tenant, and the operator's unique bytes.")
@click.option("--month", metavar="YYYY-MM", help="The month [the current one, UTC].")
def usage(tenant_id: str | None, every: bool, month: str | None) -> None:
    """TENANT_ID's usage (or --all tenants'): pins by status and bytes pinned
    now, and the month's bytes: as it began, as it ended (or now), byte-hours;
    bytes in Filecoin now. --all adds the operator's unique bytes stored (each
    CID once, however many requests hold it; as of the last folds) and JSON
    {"tenants": [...], "operator": {...}}."""
    from chalicelib.usage.months import InvalidMonth, Month

    if every == (tenant_id is not None):
        raise CliError("give a TENANT_ID or --all")
    try:
        chosen = None if month is None else Month.parse(month)
    except InvalidMonth as error:
        raise CliError(str(error)) from None
    services = _options().services()
    ids = (
        [record.tenant_id for record in services.admin.tenants()]
        if every
        else [services.admin.tenant(tenant_id or "").tenant_id]
    )
    found = [services.usage.usage(one, chosen) for one in ids]
    rows = [
        (
            one.tenant_id,
            one.month.month.text,
            str(one.pins["queued"] + one.pins["pinning"]),
            str(one.pins["pinned"]),
            str(one.pins["failed"]),
            str(one.bytes_pinned),
            str(one.month.ending),
            str(one.month.byte_hours),
            str(one.filecoin_bytes),
        )
        for one in found
    ]
    headers = ("TENANT", "MONTH", "IN-FLIGHT", "PINNED", "FAILED", "BYTES-NOW", "BYTES-END", "BYTE-HOURS", "FILECOIN")
    if not every:
        emit(found[0].as_dict(), lambda: print_table(headers, rows, "no tenants"))
        return
    from chalicelib.usage.unique import operator_usage

    operator = operator_usage(services.operator_ledger, chosen)

    def human() -> None:
        print_table(headers, rows, "no tenants")
        figures = operator.month
        click.echo(
            f"operator, each CID once: {operator.unique_bytes} unique bytes now; {figures.month.text}: "
            f"{figures.opening} as it began, {figures.ending} at its end (or now), {figures.byte_hours} byte-hours"
        )

    emit({"tenants": [one.as_dict() for one in found], "operator": operator.as_dict()}, human)


def main() -> None:
    cli(prog_name="python -m cli.admin")


if __name__ == "__main__":
    main()
