"""A residual filter's scan on DynamoDB stops at its deadline: pins far larger
than usual could otherwise outrun the API function within the pin limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chalicelib.pins.model import STATUSES, PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.pins.scan_limit import QueryTooBroad
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.pin_store import SCAN_SECONDS, PinStore
from chalicelib.storage.tables import bind_models

START_MS = 1_760_000_000_000
PARTIAL = PinQuery(statuses=frozenset(STATUSES), name="photo", match="partial")


def clock_jumping_by(seconds: float) -> Callable[[], float]:
    """A clock that moves `seconds` on every look."""
    now = [0.0]

    def clock() -> float:
        now[0] += seconds
        return now[0]

    return clock


def store_with(settings, clock: Callable[[], float]) -> PinStore:
    store = PinStore(bind_models(settings), clock=clock)
    for i in range(3):
        pin = Pin(
            tenant_id="tenant-1",
            created_ms=START_MS + 100 * i,
            request_id=f"req-{i}",
            status="queued",
            cid="bafy-content",
            cid_key="bafy-content",
            name=f"photo-{i}",
        )
        store.create(pin, OutboxMessage("shard#0", f"{pin.created_ms}#pin", "{}", pin.created_ms))
    return store


def test_a_scan_still_reading_at_its_deadline_is_refused(settings):
    # given a store whose clock passes the scan's deadline while the first page is read
    store = store_with(settings, clock_jumping_by(SCAN_SECONDS + 1))
    # when a partial name match reads the range, then it is refused, saying what it read
    with pytest.raises(QueryTooBroad, match="had read only 3 pins"):
        store.find("tenant-1", PARTIAL)


def test_a_scan_within_its_deadline_is_answered(settings):
    # given a store whose clock moves a little on every look
    store = store_with(settings, clock_jumping_by(SCAN_SECONDS / 10))
    # when a partial name match reads the range, then every match is counted
    assert store.find("tenant-1", PARTIAL)[1] == 3


def test_a_meta_filter_still_reading_its_candidates_at_the_deadline_is_refused(settings):
    # given pins with a meta pair, and a clock that passes the deadline while the candidates are read
    store = PinStore(bind_models(settings), clock=clock_jumping_by(SCAN_SECONDS + 1))
    for i in range(3):
        pin = Pin("tenant-1", START_MS + i, f"req-{i}", "queued", "bafy", "bafy", meta={"app": "web"})
        store.create(pin, OutboxMessage("shard#0", f"{pin.created_ms}#pin", "{}", pin.created_ms))
    # when a meta filter reads them, then it is refused, saying what it read
    with pytest.raises(QueryTooBroad, match="had read only 3 pins"):
        store.find("tenant-1", PinQuery(statuses=frozenset(STATUSES), meta={"app": "web"}))
