"""The contract between the API and the pin workers: SQS message bodies.

Every body is a JSON object with a version `v` (currently 1) and a `kind`:

``pin``
    Make the content of `cid` (canonical CIDv1) available on the nodes of
    `node_ids` for request `request_id` of tenant `tenant_id`, created at
    `created_ms` (the request's key). `origins` are multiaddrs worth dialing
    first. When `replaces` is present the request replaced an older one:
    release the older pin (`request_id`, `cid`, `node_ids`) only once the new
    one is pinned, so blocks common to both are never collected in between.
``unpin``
    Request `request_id` of `tenant_id` was deleted: release its hold on `cid`
    on the nodes of `node_ids`. Kubo's pin goes only when no other request
    holds the same CID on that node.

Delivery is at least once and unordered: workers must make every message
idempotent, and a `pin` whose request no longer exists must not recreate it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple, Union

VERSION = 1


@dataclass(frozen=True)
class ReleasedPin:
    request_id: str
    cid: str
    node_ids: Tuple[str, ...]


@dataclass(frozen=True)
class PinRequested:
    tenant_id: str
    request_id: str
    created_ms: int
    cid: str
    node_ids: Tuple[str, ...]
    origins: Tuple[str, ...] = ()
    replaces: Optional[ReleasedPin] = None
    kind: str = field(default="pin", init=False)


@dataclass(frozen=True)
class UnpinRequested:
    tenant_id: str
    request_id: str
    cid: str
    node_ids: Tuple[str, ...]
    kind: str = field(default="unpin", init=False)


QueueMessage = Union[PinRequested, UnpinRequested]


def encode(message: QueueMessage) -> str:
    return json.dumps({"v": VERSION, **asdict(message)}, separators=(",", ":"), sort_keys=True)


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
    raise ValueError(f"unknown message kind {kind!r}")
