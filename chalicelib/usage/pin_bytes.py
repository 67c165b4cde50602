"""What a pin adds to its tenant's bytes pinned (its DAG's size once
pinned) and cold bytes (its archive's CAR once archived).

The worker records the size in the pin's `info` (`dag_size`, from the node's
`dag/stat`) in the write that makes it pinned, so every write that moves a
pin into or out of `pinned` knows the bytes it adds or removes, without a
read (chalicelib.storage.usage_changes). The archiver records the CAR's size
(`car_bytes`) with `cold: archived` in the request's `info` the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.pins.pin import Pin

DAG_SIZE = "dag_size"
CAR_BYTES = "car_bytes"


def pinned_bytes(status: str | None, info: Mapping[str, str]) -> int:
    """A pin's bytes in its tenant's usage: its DAG size while pinned, else 0."""
    if status != "pinned":
        return 0
    size = info.get(DAG_SIZE, "")
    return int(size) if size.isdigit() else 0


def cold_bytes(info: Mapping[str, str]) -> int:
    """A request's bytes in its tenant's cold usage: its archive's CAR once archived, else 0."""
    if info.get("cold") != "archived":
        return 0
    size = info.get(CAR_BYTES, "")
    return int(size) if size.isdigit() else 0


def bytes_change(before: Pin | None, after: Pin | None) -> int:
    """How a write from `before` to `after` (None: no pin) changes the tenant's bytes pinned."""
    was = 0 if before is None else pinned_bytes(before.status, before.info)
    now = 0 if after is None else pinned_bytes(after.status, after.info)
    return now - was


def cold_change(before: Pin | None, after: Pin | None) -> int:
    """How the write changes the tenant's cold (archived) bytes."""
    return (0 if after is None else cold_bytes(after.info)) - (0 if before is None else cold_bytes(before.info))
