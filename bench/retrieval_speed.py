"""Retrieval through the service (`GET /ipfs/{cid}`), hot against cold, side
by side in one run.

    .venv/bin/python -m bench.retrieval_speed [--quick]

The fleet of bench.restore_speed (moto server, two embedded Kubo nodes on
loopback, the service's worker pinning on both and archiving into S3).
Three contents, each added on a node, pinned and archived:

- small, hot (1 MiB; 256 KiB with --quick): both nodes hold it;
- small, cold: the same size, then lost by both nodes (pins removed,
  blocks deleted), so the archive is the only copy: the retrieval first
  finds the pin's nodes without it (each `dag/export` fails at once), then
  reads the archive (what a hot+cold request whose hot copies are gone
  does; a cold-only request has no node to ask and skips that step);
- large (100 MiB; 8 MiB with --quick), over RETRIEVAL_MAX_BYTES (4 MiB):
  the service never sends it whole; once archived (hot or not) it answers
  307 to a presigned URL of the archive.

Rows, each a median of 15 interleaved runs (2 with --quick; order rotating,
after a warm-up):

- small, through the retrieval domain (`Retriever.retrieve`, as the handler
  calls it: the tenant's pin found, the CAR read whole and every block
  verified) and through the HTTP layer (the Chalice test client on the app:
  auth, the handler, base64 of the Lambda proxy), hot and cold;
- large: the service's path as a client takes it: `GET /ipfs/{cid}` to its
  307 (the presigned URL), then the CAR downloaded from S3 (moto) and every
  block verified as it arrives (`CarReader`, as `cli.pins get` does); against
  the hot copy read directly from the node that holds it (`dag/export`,
  every block verified by the service's Kubo client), which the service
  itself never does above the limit.

AWS is moto in server mode in a child process: S3 reads and the redirect's
download cross a loopback socket.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.restore_speed import ColdFleet, archived_content, cold_fleet, drop, size_label
from bench.support import print_table, quick_flag

MIB = 1 << 20
KIB = 1 << 10
RUNS = 15
CAR = "application/vnd.ipld.car"
HTTP_TIMEOUT = 600


@dataclass
class Outcome:
    small: int
    large: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    sources: dict[str, set[str]] = field(default_factory=dict)  # what served each row
    parts: dict[str, list[float]] = field(default_factory=dict)  # the large rows' parts

    def median(self, label: str) -> float:
        return statistics.median(self.seconds[label])


@contextlib.contextmanager
def _http(services: Any) -> Iterator[Any]:
    """The Chalice test client on the app, wired to `services`."""
    from chalice.test import Client

    import app as app_module

    app_module.services.install(services)
    try:
        with Client(app_module.app) as client:
            yield client
    finally:
        app_module.services.install(None)


class _Subjects:
    """Each row's work: returns what served it."""

    def __init__(self, fleet: ColdFleet, client: Any, token: str) -> None:
        self.fleet = fleet
        self.client = client
        self.headers = {"Accept": CAR, "Authorization": f"Bearer {token}"}
        self.parts: dict[str, list[float]] = {"to the URL": [], "download + verify": []}

    def domain(self, cid: str) -> str:
        from chalicelib.cold.retrieval import Content, Format, Retrieval

        answer = self.fleet.services.retrieval.retrieve(Retrieval(self.fleet.stack.tenant_id, cid, Format.CAR))
        if not isinstance(answer, Content):
            raise SystemExit(f"FATAL: {cid} answered {answer}")
        return answer.source

    def http(self, cid: str, expect: int = 200) -> Any:
        response = self.client.http.request("GET", f"/ipfs/{cid}", headers=self.headers)
        if response.status_code != expect:
            raise SystemExit(f"FATAL: GET /ipfs/{cid} answered {response.status_code}: {response.body[:300]!r}")
        return response

    def http_small(self, cid: str) -> str:
        from chalicelib.cold.car import CarReader

        blocks = list(CarReader().blocks([self.http(cid).body]))
        return f"HTTP 200, {len(blocks)} blocks"

    def redirect(self, cid: str) -> str:
        import requests

        from chalicelib.cold.car import CarReader

        started = time.perf_counter()
        url = self.http(cid, 307).headers["Location"]
        located = time.perf_counter()
        reader = CarReader()
        with requests.get(url, stream=True, timeout=HTTP_TIMEOUT) as response:
            response.raise_for_status()
            for chunk in response.iter_content(MIB):
                reader.feed(chunk)
        reader.close()
        self.parts["to the URL"].append(located - started)
        self.parts["download + verify"].append(time.perf_counter() - located)
        return f"307 + S3, {reader.bytes_read:,} bytes"

    def node_export(self, cid: str) -> str:
        kubo = self.fleet.services.kubo(self.fleet.record(0))
        size = 0
        with kubo.dag_export(cid, seconds=HTTP_TIMEOUT) as export:  # every block verified as it comes
            for chunk in export:
                size += len(chunk)
        return f"dag/export, {size:,} bytes"


def measure(small: int, large: int, runs: int, **settings: Any) -> Outcome:
    """The three contents on one fleet, every row `runs` times; `settings` on
    the service's (a test lowers RETRIEVAL_MAX_BYTES)."""
    import logging

    logging.getLogger("pinning").setLevel(logging.ERROR)
    outcome = Outcome(small, large)
    with cold_fleet("retrieve", **settings) as fleet:
        services = fleet.services
        hot, _ = archived_content(fleet, small)
        cold, cold_car = archived_content(fleet, small)
        big, _ = archived_content(fleet, large)
        for index in (0, 1):
            drop(fleet, index, cold, cold_car)
        token = services.admin.issue_token(fleet.stack.tenant_id, "bench").secret
        with _http(services) as client:
            subjects = _Subjects(fleet, client, token)
            rows: list[tuple[str, Callable[[], str]]] = [
                ("small hot: retrieval domain", lambda: subjects.domain(hot)),
                ("small cold: retrieval domain", lambda: subjects.domain(cold)),
                ("small hot: HTTP (Chalice test client)", lambda: subjects.http_small(hot)),
                ("small cold: HTTP (Chalice test client)", lambda: subjects.http_small(cold)),
                ("large: HTTP 307 + download from S3, verified", lambda: subjects.redirect(big)),
                ("large hot, direct: dag/export from the node, verified", lambda: subjects.node_export(big)),
            ]
            _run(rows, runs, outcome)
            outcome.parts = {name: values[1:] for name, values in subjects.parts.items()}  # the warm-up's dropped
    return outcome


def _run(rows: Sequence[tuple[str, Callable[[], str]]], runs: int, outcome: Outcome) -> None:
    for label, work in rows:  # warm-up: connections, imports, the archives' first reads
        outcome.sources[label] = {work()}
        outcome.seconds[label] = []
    for i in range(runs):
        shift = i % len(rows)
        for label, work in list(rows[shift:]) + list(rows[:shift]):
            started = time.perf_counter()
            source = work()
            outcome.seconds[label].append(time.perf_counter() - started)
            outcome.sources[label].add(source)


def _pair(outcome: Outcome, cold: str, hot: str) -> str:
    return f"{outcome.median(cold) / outcome.median(hot):.2f}x"


def report(outcome: Outcome, load_before: float) -> None:
    rows: list[list[Any]] = []
    for label, seconds in outcome.seconds.items():
        size = outcome.large if label.startswith("large") else outcome.small
        median = statistics.median(seconds)
        rows.append(
            [
                label.replace("small", size_label(outcome.small), 1).replace("large", size_label(outcome.large), 1),
                f"{median * 1000:.0f}",
                f"{min(seconds) * 1000:.0f}-{max(seconds) * 1000:.0f}",
                f"{size / MIB / median:.1f}",
                "; ".join(sorted(outcome.sources[label])),
            ]
        )
    for name, values in outcome.parts.items():
        rows.append(
            [
                f"  {size_label(outcome.large)} 307 path: {name}",
                f"{statistics.median(values) * 1000:.0f}",
                f"{min(values) * 1000:.0f}-{max(values) * 1000:.0f}",
                "",
                "",
            ]
        )
    labels = list(outcome.seconds)
    rows += [
        ["ratio cold / hot, retrieval domain", _pair(outcome, labels[1], labels[0]), "", "", ""],
        ["ratio cold / hot, HTTP", _pair(outcome, labels[3], labels[2]), "", "", ""],
        ["ratio 307 + S3 / direct dag/export", _pair(outcome, labels[4], labels[5]), "", "", ""],
    ]
    print_table(
        f"Retrieval hot vs cold, embedded Kubo on loopback, S3 = moto server "
        f"(ms, median of {len(outcome.seconds[labels[0]])} runs each, interleaved)",
        ["what", "median ms", "min-max ms", "MiB/s", "served by"],
        rows,
        note=(
            "Cold = no node of the pin holds it any more (each dag/export fails), read from the archive. "
            f"The {size_label(outcome.large)} content is over\nRETRIEVAL_MAX_BYTES: the service answers 307 to the "
            "archive whether or not a node holds it.\n"
            f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} cores."
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    quick = quick_flag(argv)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    if quick:
        outcome = measure(256 * KIB, 8 * MIB, 2)
    else:
        outcome = measure(1 * MIB, 100 * MIB, RUNS)
    report(outcome, load)
    print(f"(retrieval_speed: {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
