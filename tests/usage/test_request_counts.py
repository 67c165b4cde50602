"""API requests by class and egress: counted per container, written at most
once a minute as one ADD per tenant and month, kept when a write fails."""

from __future__ import annotations

from chalicelib.usage.months import Month
from chalicelib.usage.requests import EGRESS, RequestMeter
from tests.support.memory.usage_requests import MemoryRequestCounts

MINUTE = 60_000
MARCH = Month(2026, 3)


class Clock:
    def __init__(self) -> None:
        self.now = MARCH.start_ms

    def __call__(self) -> int:
        return self.now


def test_counts_are_written_once_a_minute_per_tenant():
    # given a container's meter
    counts, clock = MemoryRequestCounts(), Clock()
    meter = RequestMeter(counts, clock=clock)
    # when alice and bob make requests within the minute
    for kind in ("read", "read", "write"):
        meter.request("alice", kind)
    meter.request("bob", "retrieve")
    meter.egress("bob", 1000)
    # then nothing is written yet
    assert counts.writes == 0
    # and the first request after the minute writes once per tenant, itself included
    clock.now += MINUTE
    meter.request("alice", "read")
    assert counts.writes == 2
    assert counts.month("alice", MARCH) == {"read": 3, "write": 1}
    assert counts.month("bob", MARCH) == {"retrieve": 1, EGRESS: 1000}


def test_a_failed_write_keeps_its_counts_for_the_next():
    # given a write that fails
    counts, clock = MemoryRequestCounts(), Clock()
    meter = RequestMeter(counts, clock=clock)
    meter.request("alice", "write")
    counts.fail_next = True
    clock.now += MINUTE
    # when the flush fails, no request fails with it
    meter.request("alice", "write")
    assert counts.month("alice", MARCH) == {}
    # then the next minute's flush writes them all
    clock.now += MINUTE
    meter.request("alice", "read")
    assert counts.month("alice", MARCH) == {"write": 2, "read": 1}


def test_requests_count_in_the_month_they_were_made():
    # given a request in the last minute of February and one in March
    counts, clock = MemoryRequestCounts(), Clock()
    clock.now = MARCH.start_ms - 1
    meter = RequestMeter(counts, clock=clock)
    meter.request("alice", "read")
    clock.now = MARCH.start_ms + MINUTE
    meter.request("alice", "read")
    # then each month has its own
    assert counts.month("alice", Month(2026, 2)) == {"read": 1}
    assert counts.month("alice", MARCH) == {"read": 1}
