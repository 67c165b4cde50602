"""The contract between the API and the pin workers: SQS message bodies.

Every body is a JSON object with a version `v` (currently 1) and a `kind`:

``pin``
    Make the content of `cid` (canonical CIDv1) available on the nodes of
    `node_ids` for request `request_id` of tenant `tenant_id`, created at
    `created_ms` (the request's key). `origins` are multiaddrs worth dialing
    first. When `replaces` is present the request replaced an older one:
    release the older pin (`request_id`, `cid`, `node_ids`) only once the new
    one is pinned, so blocks common to both are never collected in between.
    `turn`, absent on the first message, counts the continuations of unfinished
    work: a worker drops a continuation whose turn another message took.
``unpin``
    Request `request_id` of `tenant_id` was deleted: release its hold on `cid`
    on the nodes of `node_ids`. Kubo's pin goes only when no other request
    holds the same CID on that node. `lease_token` is present on a retry of
    nodes an earlier release could not unpin: the retry takes over that
    release's removal leases (which name it by this token).
``drain``
    Node `node_id` left the fleet at `removed_ms`: send a ``rereplicate`` for
    every request still holding a pin there, one page of holders per message
    (`after` is where the next page starts; absent on a pass's first page).
    `held` counts the holders this pass has found so far. A pass that finds
    none, once no worker can still be placing pins there by a stale view of
    the fleet, ends the drain; any other pass is followed by another.
``rereplicate``
    Request `request_id` of `tenant_id`, created at `created_ms`, holds `cid`
    on `node_id`, which left the fleet: pin a replacement replica on a
    healthy node (the surviving replicas and the origins as sources), record
    it, then give up the hold on `node_id` without calling that node.
``archive``
    Request `request_id` of `tenant_id`, created at `created_ms`, is pinned
    on `node_ids`: hold the cold archive of `cid` for it, archiving the DAG
    (exported from one of those nodes) into S3 unless it is already
    (chalicelib.cold.archiver), and show the archive in the request's `info`.
``restore``
    Request `request_id` of `tenant_id`, created at `created_ms`, is pinned
    (a cold-only pin retrieved or re-pinned, say): make `cid` hot again on
    its placement nodes, copied from a live copy or restored from its cold
    archive (chalicelib.cold.restorer), and record the replicas. `reason`
    says why, for the logs. Already hot on every placement node: nothing
    to do.
``filecoin_copy``
    Make copy `n` of `cid` with storage provider `provider_id`, recorded
    pending by the Filecoin tracker: stream the CID's archived CAR to the
    provider and record the receipt (chalicelib.filecoin.copy_maker). A
    copy no longer pending (made, ended) is left as it is.

Delivery is at least once and unordered: workers must make every message
idempotent, and a `pin` whose request no longer exists must not recreate it.

Every message naming a tenant is sent with that tenant as its SQS message
group (`group_of`): on the standard pin queue this makes it a fair queue, so
one tenant's backlog does not hold up another's messages (docs/deploy.md,
"Fairness between tenants").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

VERSION = 1


@dataclass(frozen=True)
class ReleasedPin:
    request_id: str
    cid: str
    node_ids: tuple[str, ...]


@dataclass(frozen=True)
class PinRequested:
    tenant_id: str
    request_id: str
    created_ms: int
    cid: str
    node_ids: tuple[str, ...]
    origins: tuple[str, ...] = ()
    replaces: ReleasedPin | None = None
    turn: int = 0
    kind: str = field(default="pin", init=False)


@dataclass(frozen=True)
class UnpinRequested:
    tenant_id: str
    request_id: str
    cid: str
    node_ids: tuple[str, ...]
    lease_token: str | None = None
    kind: str = field(default="unpin", init=False)


@dataclass(frozen=True)
class DrainNode:
    node_id: str
    removed_ms: int
    after: tuple[str, str] | None = None
    held: int = 0
    kind: str = field(default="drain", init=False)


@dataclass(frozen=True)
class Rereplicate:
    tenant_id: str
    request_id: str
    created_ms: int
    cid: str
    node_id: str
    kind: str = field(default="rereplicate", init=False)


@dataclass(frozen=True)
class ArchiveRequested:
    tenant_id: str
    request_id: str
    created_ms: int
    cid: str
    node_ids: tuple[str, ...]
    kind: str = field(default="archive", init=False)


@dataclass(frozen=True)
class RestoreRequested:
    tenant_id: str
    request_id: str
    created_ms: int
    cid: str
    reason: str
    kind: str = field(default="restore", init=False)


@dataclass(frozen=True)
class FilecoinCopyRequested:
    cid: str
    provider_id: str
    n: int
    kind: str = field(default="filecoin_copy", init=False)


QueueMessage = (
    PinRequested
    | UnpinRequested
    | DrainNode
    | Rereplicate
    | ArchiveRequested
    | RestoreRequested
    | FilecoinCopyRequested
)


# Fields only retries and continuations set: left out at these values, so
# the bodies the API writes stay as they were.
_OMITTED_DEFAULTS = {"turn": 0, "lease_token": None}


def encode(message: QueueMessage) -> str:
    body = asdict(message)
    for name, default in _OMITTED_DEFAULTS.items():
        if name in body and body[name] == default:
            del body[name]
    return json.dumps({"v": VERSION, **body}, separators=(",", ":"), sort_keys=True)


def group_of(body: str) -> str | None:
    """The tenant a body belongs to, its fair-queue message group; None for
    fleet work (a drain), which SQS then treats as a tenant of its own."""
    tenant_id = json.loads(body).get("tenant_id")
    return tenant_id if isinstance(tenant_id, str) and tenant_id else None


def decode(body: str) -> QueueMessage:
    data = json.loads(body)
    if data.pop("v", None) != VERSION:
        raise ValueError("unsupported message version")
    kind = data.pop("kind", None)
    if kind == "pin":
        replaces = data.pop("replaces", None)
        return PinRequested(
            **{**data, "node_ids": tuple(data["node_ids"]), "origins": tuple(data.get("origins", ()))},
            replaces=ReleasedPin(**{**replaces, "node_ids": tuple(replaces["node_ids"])}) if replaces else None,
        )
    if kind == "unpin":
        return UnpinRequested(**{**data, "node_ids": tuple(data["node_ids"])})
    if kind == "drain":
        after = data.pop("after", None)
        return DrainNode(**data, after=tuple(after) if after else None)
    if kind == "rereplicate":
        return Rereplicate(**data)
    if kind == "archive":
        return ArchiveRequested(**{**data, "node_ids": tuple(data["node_ids"])})
    if kind == "restore":
        return RestoreRequested(**data)
    if kind == "filecoin_copy":
        return FilecoinCopyRequested(**data)
    raise ValueError(f"unknown message kind {kind!r}")
