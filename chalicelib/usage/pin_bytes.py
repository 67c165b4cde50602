"""What a pin adds to its tenant's bytes pinned (its DAG's size once
pinned) and cold bytes (its archive's CAR once archived).

The worker records the size in the pin's `info` (`dag_size`, from the node's
`dag/stat`) in the write that makes it pinned, so every write that moves a
pin into or out of `pinned` knows the bytes it adds or removes, without a
read (chalicelib.storage.usage_changes). The archiver records the CAR's size
(`car_bytes`) with `cold: archived` in the request's `info` the same way,
with the piece's padded size (`padded_piece_size`); the Filecoin tracker
writes the copies proving for the request (`filecoin_copies`,
"<proving>/<wanted>") through the same versioned update, so a change of a
request's Filecoin bytes (padded size x copies proving) is one more figure
of the same change item.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.pins.pin import Pin

DAG_SIZE = "dag_size"
CAR_BYTES = "car_bytes"
PADDED_PIECE_SIZE = "padded_piece_size"
FILECOIN_COPIES = "filecoin_copies"


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


def filecoin_bytes(info: Mapping[str, str]) -> int:
    """A request's bytes in its tenant's Filecoin usage: its piece's padded
    size times the copies proving for it (as the tracker last showed it)."""
    proving = info.get(FILECOIN_COPIES, "").partition("/")[0]
    size = info.get(PADDED_PIECE_SIZE, "")
    return int(proving) * int(size) if proving.isdigit() and size.isdigit() else 0


def holds(pin: Pin | None) -> bool:
    """Whether the pin holds its CID's bytes on the fleet (pinned, its size known)."""
    return pin is not None and pinned_bytes(pin.status, pin.info) > 0


def bytes_change(before: Pin | None, after: Pin | None) -> int:
    """How a write from `before` to `after` (None: no pin) changes the tenant's bytes pinned."""
    was = 0 if before is None else pinned_bytes(before.status, before.info)
    now = 0 if after is None else pinned_bytes(after.status, after.info)
    return now - was


def cold_change(before: Pin | None, after: Pin | None) -> int:
    """How the write changes the tenant's cold (archived) bytes."""
    return (0 if after is None else cold_bytes(after.info)) - (0 if before is None else cold_bytes(before.info))


def filecoin_change(before: Pin | None, after: Pin | None) -> int:
    """How the write changes the tenant's bytes in Filecoin."""
    return (0 if after is None else filecoin_bytes(after.info)) - (0 if before is None else filecoin_bytes(before.info))


def hold_change(before: Pin | None, after: Pin | None) -> tuple[str, int, int] | None:
    """(its CID, +1, its bytes) when the write makes the request hold its
    CID's bytes, (its CID, -1, its bytes) when it stops, else None."""
    was, now = holds(before), holds(after)
    if after is not None and now and not was:
        return after.cid_key, 1, pinned_bytes(after.status, after.info)
    if before is not None and was and not now:
        return before.cid_key, -1, pinned_bytes(before.status, before.info)
    return None
