"""Time from `POST /pins` to `pinned` on the running local stack, for 1 MiB
and 100 MiB of fresh content, next to a direct Kubo pin between the same
nodes in the same run.

One stack (`python -m devstack` on free loopback ports, as `make dev` runs
it, the worker included); everything goes over HTTP, as a user's would. Each
run first adds fresh random bytes to your node (streamed, not timed), then
one of:

- service: POST /pins with origins = your node's multiaddrs, then
  GET /pins/{requestid} every 50 ms until `pinned` (the dev stage keeps 2
  replicas, so both fleet nodes pin it);
- direct, 1 node: `swarm/connect` to your node + `pin/add` on one fleet node
  (alternating) over its RPC;
- direct, 2 nodes: the same on both fleet nodes at once (the service's work).

After one warm-up run of each (1 MiB, not counted), the three alternate,
their order rotating per run. The 50 ms polling adds up to 50 ms to the
service's time, as it would for a client polling that often.

    .venv/bin/python -m bench.stack_latency [--runs 5] [--large-runs 3] [--large-mib 100] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.support import KuboRpc, LocalStack, local_stack, print_table

MIB = 1 << 20
POLL_SECONDS = 0.05
PIN_DEADLINE_SECONDS = 900.0


@dataclass
class ServiceRun:
    total: float
    post: float  # POST /pins answered (queued)
    pinning_seen: float  # first GET answering `pinning` (or `pinned`), since the POST
    polls: int


class Runner:
    def __init__(self, stack: LocalStack) -> None:
        import requests

        self.stack = stack
        self.api = requests.Session()
        self.api.headers.update(stack.auth())
        self.your = stack.your_node()
        self.origins = self.your.multiaddrs()
        self.fleet = stack.fleet_nodes()
        self.service: list[ServiceRun] = []
        self.direct: dict[int, list[float]] = {1: [], 2: []}
        self._turn = 0

    def service_run(self, size: int) -> None:
        cid = self.your.add_random(size)
        started = time.perf_counter()
        created = self.api.post(f"{self.stack.url}/pins", json={"cid": cid, "origins": self.origins}, timeout=60)
        posted = time.perf_counter()
        if created.status_code != 202:
            raise SystemExit(f"FATAL: POST /pins answered {created.status_code}: {created.text[:300]}")
        url = f"{self.stack.url}/pins/{created.json()['requestid']}"
        pinning_seen, polls = 0.0, 0
        while True:
            status = self.api.get(url, timeout=60).json()["status"]
            polls += 1
            now = time.perf_counter()
            if status in ("pinning", "pinned") and not pinning_seen:
                pinning_seen = now - started
            if status == "pinned":
                break
            if status == "failed" or now - started > PIN_DEADLINE_SECONDS:
                raise SystemExit(f"FATAL: pin of {size} bytes is {status} after {now - started:.0f} s")
            time.sleep(POLL_SECONDS)
        self.service.append(ServiceRun(now - started, posted - started, pinning_seen, polls))

    def direct_run(self, size: int, nodes: int) -> None:
        cid = self.your.add_random(size)
        self._turn += 1
        chosen = self.fleet if nodes == len(self.fleet) else [self.fleet[self._turn % len(self.fleet)]]

        def pin(node: KuboRpc) -> None:
            node.post("swarm/connect", *self.origins)
            node.post("pin/add", cid)

        started = time.perf_counter()
        with ThreadPoolExecutor(len(chosen)) as pool:
            list(pool.map(pin, chosen))
        self.direct[nodes].append(time.perf_counter() - started)

    def measure(self, size: int, runs: int) -> tuple[list[ServiceRun], dict[int, list[float]]]:
        self.service, self.direct = [], {1: [], 2: []}
        variants: list[Callable[[], None]] = [
            lambda: self.service_run(size),
            lambda: self.direct_run(size, 1),
            lambda: self.direct_run(size, 2),
        ]
        for index in range(runs):
            shift = index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                variant()
        return self.service, self.direct


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


Results = dict[str, tuple[list[ServiceRun], dict[int, list[float]]]]


def run(runs: int, large_runs: int, large_mib: int) -> Results:
    with tempfile.TemporaryDirectory(prefix="bench-stack-latency-") as base, local_stack(Path(base)) as stack:
        return measure(stack, runs, large_runs, large_mib)


def measure(stack: LocalStack, runs: int, large_runs: int, large_mib: int) -> Results:
    """Measures on a running stack and prints the table."""
    sizes = [("1 MiB", MIB, runs), (f"{large_mib} MiB", large_mib * MIB, large_runs)]
    results: Results = {}
    runner = Runner(stack)
    if len(runner.fleet) != 2:
        raise SystemExit(f"FATAL: expected the 2 embedded fleet nodes, found {len(runner.fleet)}")
    runner.measure(MIB, 1)  # warm-up: connections, imports, the worker's node cache
    for label, size, count in sizes:
        results[label] = runner.measure(size, count)

    med = statistics.median
    labels = list(results)

    def row(name: str, pick: Callable[[list[ServiceRun], dict[int, list[float]]], float]) -> list[str]:
        return [name] + [_ms(pick(*results[label])) for label in labels]

    rows = [
        row("service: POST /pins -> GET says pinned (2 replicas)", lambda s, d: med(r.total for r in s)),
        row("  POST /pins answered (queued)", lambda s, d: med(r.post for r in s)),
        row("  POST -> first GET saying pinning (or pinned)", lambda s, d: med(r.pinning_seen for r in s)),
        row("direct: swarm/connect + pin/add, 1 fleet node", lambda s, d: med(d[1])),
        row("direct: the same on both fleet nodes at once", lambda s, d: med(d[2])),
        row("service - direct (both nodes)", lambda s, d: med(r.total for r in s) - med(d[2])),
    ]
    rows.append(
        ["ratio service / direct (both nodes)"]
        + [f"{med(r.total for r in s) / med(d[2]):.2f}" for s, d in results.values()]
    )
    rows.append(
        ["ratio service / direct (1 node)"]
        + [f"{med(r.total for r in s) / med(d[1]):.2f}" for s, d in results.values()]
    )
    rows.append(
        ["direct (both nodes): MiB/s per node"]
        + [f"{size / MIB / med(results[label][1][2]):.1f}" for label, size, _ in sizes]
    )
    print_table(
        "Pin latency on the local stack, fresh random content on your node (ms, medians; "
        + ", ".join(f"{label}: {count} runs" for label, _, count in sizes)
        + ", interleaved)",
        ["", *labels],
        rows,
        note=f"The service is polled every {POLL_SECONDS * 1000:g} ms, so its times are up to that much late. "
        "Indented rows are medians of parts.",
    )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each variant at 1 MiB (default %(default)s)")
    parser.add_argument(
        "--large-runs", type=int, default=3, help="runs of each variant at the large size (default %(default)s)"
    )
    parser.add_argument("--large-mib", type=int, default=100, help="the large size in MiB (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="1 run each, 8 MiB as the large size")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.large_runs, args.large_mib = 1, 1, 8
    began = time.perf_counter()
    run(args.runs, args.large_runs, args.large_mib)
    print(f"(stack_latency: {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
