"""commp_speed on 1 MiB: every subject measured, the streamed CommP and the
archive pass agree with a one-shot CommP, the index covers every block (no
timing is asserted)."""

from __future__ import annotations

import pytest

from bench import commp_speed
from chalicelib.cold.commp import commp


def test_a_short_run_measures_every_subject_and_agrees_with_one_shot_commp(capsys: pytest.CaptureFixture[str]) -> None:
    # given / when: 1 MiB measured once
    outcome = commp_speed.measure(1 << 20, runs=1, min_seconds=0)
    commp_speed.report(outcome)
    printed = capsys.readouterr().out

    # then: five subjects, each timed once and traced
    assert [len(row.seconds) for row in outcome.rows] == [1] * 5
    assert all(row.mib_s > 0 and row.peak_bytes >= 0 for row in outcome.rows)
    # and: the archive pass's CommP is that of the CAR's bytes, and its index every block (4 leaves and a root)
    car = commp_speed.build_car(commp_speed.data_of(1 << 20))
    assert outcome.piece == commp(car) and outcome.blocks == 5
    assert "bytes a block" in printed and outcome.piece.cid_v1 in printed
