"""What a pin in progress shows its owner: the blocks and bytes fetched so far
in `info.status_details`, written sparingly (each write is a DynamoDB
transaction). The worker's clock is injected: the tests move it, never wait
for it."""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.pins.timestamps import now_ms
from chalicelib.storage.pin_store import PinStore
from tests.support.cids import cid_v1
from tests.worker.conftest import current, info_of, pin_request, rebuild_worker

DEADLINE_S = 20.0


def set_worker_clock(fleet, clock) -> None:
    fleet.test_clock = clock
    rebuild_worker(fleet)


class JumpingClock:
    """Milliseconds that move `step_s` forward at every reading: by it, each
    progress report comes long after the last write."""

    def __init__(self, step_s: float) -> None:
        self._now = now_ms()
        self._step_ms = int(step_s * 1000)

    def __call__(self) -> int:
        self._now += self._step_ms
        return self._now


def pin_in_background(queue) -> threading.Thread:
    worker = threading.Thread(target=queue.run_once, daemon=True)
    worker.start()
    return worker


@pytest.mark.parametrize(
    ("version", "shown"),
    [("0.40.0", "fetched 3 blocks, 768.0 KiB"), ("0.39.0", "fetched 3 blocks")],
    ids=["kubo-0.40-reports-bytes", "older-kubo-blocks-only"],
)
def test_a_pin_in_progress_shows_the_blocks_and_bytes_fetched_so_far(fleet, kubos, queue, tune, version, shown):
    # given a worker by whose clock every progress report comes 6 s after the last
    tune(stall_seconds=60)
    set_worker_clock(fleet, JumpingClock(step_s=6))
    # and nodes of this Kubo version whose providers stop sending after 3 of 8 blocks (of 256 KiB)
    cid = cid_v1(f"progress {version}")
    for kubo in kubos.values():
        kubo.version = version
        kubo.add_content(cid, blocks=8)
        kubo.stall_after(cid, 3)
    record = fleet.pins.create("alice", pin_request(cid))

    # when a worker pins it
    worker = pin_in_background(queue)
    deadline = time.monotonic() + DEADLINE_S
    details = ""
    while details != shown and time.monotonic() < deadline:
        time.sleep(0.02)
        details = info_of(current(fleet, record)).get("status_details", "")

    # then its owner sees it pinning, with what was fetched so far
    assert details == shown
    assert current(fleet, record).status == "pinning"
    # and once the content flows again it ends pinned
    for kubo in kubos.values():
        kubo.stall_after(cid, 8)
    worker.join(DEADLINE_S)
    assert current(fleet, record).status == "pinned"


def test_a_pin_fetched_within_the_first_second_costs_no_progress_write(fleet, kubos, queue, monkeypatch):
    # given a worker whose clock stands still: by it, every fetch takes no time
    frozen = now_ms()
    set_worker_clock(fleet, lambda: frozen)
    cid = cid_v1("quick")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=5)
    record = fleet.pins.create("alice", pin_request(cid))
    writes: list[tuple[str, str]] = []
    update = PinStore.update

    def spy(self, pin, **changes):
        writes.append((changes.get("status"), (changes.get("info") or {}).get("status_details", "")))
        return update(self, pin, **changes)

    monkeypatch.setattr(PinStore, "update", spy)

    # when a worker pins it
    queue.run_once()

    # then the pin was written twice: pinning when it began, pinned at the end
    assert current(fleet, record).status == "pinned"
    assert writes == [("pinning", "fetching"), ("pinned", "pinned on 2 nodes")]
