"""Throughput of the running local stack: 1,000 pins of small fresh content
submitted concurrently through the API, until all are `pinned`; and where
the time goes.

One stack (`python -m devstack` on free loopback ports, as `make dev` runs
it). Not timed: N pieces of 1 KiB of fresh random bytes are added to your
node. Then N POST /pins (origins = your node's multiaddrs) are sent from a
pool of 32 threads, and the run ends when every request is `pinned` (or
`failed`). Measured alongside, without touching the stack:

- each POST's latency, as the client sees it;
- each request's way through the worker, from the stack's log (read every
  20 ms, lines timestamped as read): POST answered -> "pinning" logged
  (queue wait, receive, the first status write) -> "pinned" logged (holds,
  Kubo swarm/connect + pin/add + pin/ls on both replicas, dag/stat, the
  status write);
- how many requests are queued and pinning, from the API's counts
  (GET /pins?status=...&limit=1, every 0.25 s), and the pin queue's
  messages received and delayed (handed back by the worker to continue
  later), from the emulated SQS's queue attributes;
- the CPU time of each process of the stack (the devstack process: API,
  emulated AWS and scheduled jobs; the worker process if separate; each
  Kubo node), and of the whole machine.

    .venv/bin/python -m bench.stack_throughput [--pins 1000] [--concurrency 32] [--quick]
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.support import LocalStack, local_stack, print_table
from chalicelib.pins.model import STATUSES

CONTENT_BYTES = 1024
TAIL_SECONDS = 0.02
COUNT_SECONDS = 0.25
DEADLINE_SECONDS = 1800.0
# The readable log line of a pin state change: "HH:MM:SS worker: pinned request_id=... cid=..."
STATE_LINE = re.compile(r": (pinning|pinned|failed) .*\brequest_id=(\S+)")


class LogTail:
    """Reads the stack's log files as they grow; when each request's
    state-change lines appeared (seconds, perf_counter)."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self._offsets: dict[Path, int] = {path: path.stat().st_size for path in state_dir.glob("*.log")}
        self._partial: dict[Path, str] = {}
        self.seen: dict[str, dict[str, float]] = {}  # request id -> state -> first seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LogTail:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _run(self) -> None:
        while not self._stop.wait(TAIL_SECONDS):
            self._read()

    def _read(self) -> None:
        for path in self._state_dir.glob("*.log"):
            with path.open("rb") as stream:
                stream.seek(self._offsets.get(path, 0))
                data = stream.read()
            now = time.perf_counter()
            self._offsets[path] = self._offsets.get(path, 0) + len(data)
            text = self._partial.pop(path, "") + data.decode(errors="replace")
            *lines, rest = text.split("\n")
            if rest:
                self._partial[path] = rest
            for line in lines:
                match = STATE_LINE.search(line)
                if match:
                    self.seen.setdefault(match.group(2), {}).setdefault(match.group(1), now)


class Counts:
    """The API's counts by status over time, less those before the run; and
    the pin queue's messages: waiting, received (in flight) and delayed (a
    pin handed back by the worker to continue later)."""

    QUEUE = {
        "ApproximateNumberOfMessages": "waiting",
        "ApproximateNumberOfMessagesNotVisible": "in flight",
        "ApproximateNumberOfMessagesDelayed": "delayed",
    }

    def __init__(self, stack: LocalStack) -> None:
        import boto3
        import requests

        from bench.support import fake_credentials

        self._url = f"{stack.url}/pins"
        self._session = requests.Session()
        self._session.headers.update(stack.auth())
        described = json.loads((stack.state_dir / "stack.json").read_text(encoding="utf-8"))
        fake_credentials()
        self._sqs = boto3.client("sqs", endpoint_url=described["aws_endpoint_url"], region_name="us-east-1")
        self._queue_url = described["pin_queue_url"]
        self._before = self._read()
        self.samples: list[tuple[float, dict[str, int]]] = []

    def _read(self) -> dict[str, int]:
        counts = {
            status: int(self._session.get(self._url, params={"status": status, "limit": 1}, timeout=60).json()["count"])
            for status in STATUSES
        }
        attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=list(self.QUEUE))
        counts.update({name: int(attributes["Attributes"].get(key, 0)) for key, name in self.QUEUE.items()})
        return counts

    def latest(self, status: str) -> int:
        return self.samples[-1][1][status] if self.samples else 0

    def until_done(self, wanted: int, deadline: float) -> None:
        while time.perf_counter() < deadline:
            now = self._read()
            self.samples.append(
                (
                    time.perf_counter(),
                    {name: now[name] - self._before[name] if name in STATUSES else now[name] for name in now},
                )
            )
            if self.latest("pinned") + self.latest("failed") >= wanted:
                return
            time.sleep(COUNT_SECONDS)
        raise SystemExit(f"FATAL: not all {wanted} pins done within {DEADLINE_SECONDS:g} s: {self.samples[-1][1]}")


class CpuMeter:
    """CPU seconds of the stack's processes (by role) and the machine's busy fraction, between two snapshots."""

    def __init__(self, pid: int) -> None:
        import psutil

        root = psutil.Process(pid)
        self._processes = {self._role(p): p for p in [root, *root.children(recursive=True)]}
        self._start = self._snapshot()
        self._machine = psutil.cpu_times()
        self._began = time.perf_counter()

    @staticmethod
    def _role(process: Any) -> str:
        command = " ".join(process.cmdline())
        repo = re.search(r"--repo \S*/([^/\s]+)", command)
        if repo:
            return f"Kubo node {repo.group(1)}"
        if "devstack.worker" in command:
            return "worker process"
        if "-m devstack" in command:
            return "devstack process (API, emulated AWS, jobs)"
        return f"other: {command[:40]}"

    def _snapshot(self) -> dict[str, float]:
        taken = {}
        for role, process in self._processes.items():
            try:
                times = process.cpu_times()
                taken[role] = times.user + times.system
            except Exception:  # a process that ended meanwhile (a restarted worker)
                taken[role] = 0.0
        return taken

    def cores(self) -> tuple[dict[str, float], float]:
        """Average cores each role used since the start, and the machine's busy cores."""
        import psutil

        wall = time.perf_counter() - self._began
        end = self._snapshot()
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        busy -= sum(self._machine) - self._machine.idle - getattr(self._machine, "iowait", 0.0)
        return {role: (end[role] - self._start[role]) / wall for role in end}, busy / wall


def _median_max(samples: Sequence[tuple[float, dict[str, int]]], name: str) -> str:
    values = [sample[name] for _, sample in samples]
    return f"{statistics.median(values):.0f} / {max(values)}"


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _ms_spread(values: Sequence[float]) -> list[str]:
    return [f"{_pct(values, q) * 1000:.0f}" for q in (0.5, 0.9, 0.99)] + [f"{max(values) * 1000:.0f}"]


def run(pins: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-stack-throughput-") as base, local_stack(Path(base)) as stack:
        return measure(stack, pins, concurrency)


class _Clients:
    """`concurrency` client threads, each with one kept-alive connection, all
    opened at once as clients starting together would (the dev API server's
    listen backlog was once 5 and such a burst got resets: counted and retried)."""

    def __init__(self, stack: LocalStack, concurrency: int) -> None:
        self._stack = stack
        self.concurrency = concurrency
        self.resets: list[str] = []
        self.posts: list[tuple[float, float, str]] = []  # sent, answered, request id
        self._sessions: queue.Queue[Any] = queue.Queue()
        with ThreadPoolExecutor(concurrency) as pool:
            for session in pool.map(self._connect, range(concurrency)):
                self._sessions.put(session)

    def _retrying(self, call: Callable[[], Any]) -> Any:
        import requests

        try:
            return call()
        except requests.ConnectionError as error:  # refused before it was read: nothing was created
            self.resets.append(str(error))
            return call()

    def _connect(self, _: int) -> Any:
        import requests

        session = requests.Session()
        session.headers.update(self._stack.auth())
        self._retrying(lambda: session.get(f"{self._stack.url}/pins", params={"limit": 1}, timeout=60))
        return session

    def submit(self, cid: str, origins: list[str]) -> None:
        session = self._sessions.get()
        try:
            sent = time.perf_counter()
            answer = self._retrying(
                lambda: session.post(f"{self._stack.url}/pins", json={"cid": cid, "origins": origins}, timeout=120)
            )
            if answer.status_code != 202:
                raise SystemExit(f"FATAL: POST /pins answered {answer.status_code}: {answer.text[:300]}")
            self.posts.append((sent, time.perf_counter(), answer.json()["requestid"]))
        finally:
            self._sessions.put(session)


@dataclass
class _Run:
    """One run's observations: the clients' POSTs, the API's counts, the log, the CPU."""

    pins: int
    add_seconds: float
    clients: _Clients
    counts: Counts
    started: float
    submitted: float
    done: float
    logged: list[dict[str, float]]
    cores: dict[str, float]
    machine_cores: float

    @property
    def ids(self) -> list[str]:
        return [request_id for _, _, request_id in self.clients.posts]

    @property
    def answered(self) -> dict[str, float]:
        return {request_id: at for _, at, request_id in self.clients.posts}


def _run(stack: LocalStack, pins: int, concurrency: int) -> _Run:
    your = stack.your_node()
    origins = your.multiaddrs()
    began = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        cids = list(pool.map(lambda _: your.add_random(CONTENT_BYTES), range(pins)))
    add_seconds = time.perf_counter() - began

    clients = _Clients(stack, concurrency)
    counts = Counts(stack)
    cpu = CpuMeter(stack.process.pid)
    with LogTail(stack.state_dir) as log:
        started = time.perf_counter()
        counter = threading.Thread(target=counts.until_done, args=(pins, started + DEADLINE_SECONDS), daemon=True)
        counter.start()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda cid: clients.submit(cid, origins), cids))
        submitted = time.perf_counter()
        counter.join()
        if counts.latest("pinned") + counts.latest("failed") < pins:
            raise SystemExit(f"FATAL: not all {pins} pins done within {DEADLINE_SECONDS:g} s")
        counted_done = counts.samples[-1][0]
    cores, machine_cores = cpu.cores()
    logged = [log.seen.get(request_id, {}) for _, _, request_id in clients.posts]
    pinned_at = [seen["pinned"] for seen in logged if "pinned" in seen]
    # The last `pinned` line, as read, when every pin logged one; else the count that saw them all.
    done = max(pinned_at) if len(pinned_at) == pins else counted_done
    return _Run(pins, add_seconds, clients, counts, started, submitted, done, logged, cores, machine_cores)


def _print_summary(run: _Run) -> None:
    pins, counts = run.pins, run.counts
    total, submitting = run.done - run.started, run.submitted - run.started
    summary = [
        ["pins submitted / pinned / failed", f"{pins} / {counts.latest('pinned')} / {counts.latest('failed')}"],
        ["POST concurrency (client threads)", str(run.clients.concurrency)],
        ["requests whose connection was reset (retried)", str(len(run.clients.resets))],
        ["first POST -> all pinned, s", f"{total:.1f}"],
        ["throughput, pins/s", f"{pins / total:.1f}"],
        ["submitting all POSTs, s (POSTs/s)", f"{submitting:.1f} ({pins / submitting:.1f})"],
        ["most queued at once (API counts)", str(max(s["queued"] for _, s in counts.samples))],
        ["pinning at once, median / max (API counts)", _median_max(counts.samples, "pinning")],
        ["pin queue: received, not yet done, median / max", _median_max(counts.samples, "in flight")],
        ["pin queue: handed back to continue later, median / max", _median_max(counts.samples, "delayed")],
        ["adding the content to your node (not timed), s", f"{run.add_seconds:.1f}"],
    ]
    print_table(
        f"Throughput of the local stack: {pins} pins of {CONTENT_BYTES} B of fresh content via origins",
        ["", "value"],
        summary,
    )


def _request_times(run: _Run) -> tuple[list[float], list[float], list[float]]:
    """Per request traced in the log: queue wait, work, and POST answered -> pinned (seconds)."""
    answered, traced = run.answered, list(zip(run.ids, run.logged, strict=False))
    waits = [seen["pinning"] - answered[rid] for rid, seen in traced if "pinning" in seen]
    works = [seen["pinned"] - seen["pinning"] for _, seen in traced if "pinning" in seen and "pinned" in seen]
    whole = [seen["pinned"] - answered[rid] for rid, seen in traced if "pinned" in seen]
    return waits, works, whole


def _print_request_times(run: _Run, waits: list[float], works: list[float], whole: list[float]) -> None:
    rows = [["POST /pins latency (client)", *_ms_spread([at - sent for sent, at, _ in run.clients.posts])]]
    if works:
        rows += [
            ["POST answered -> 'pinning' logged (queue wait, receive)", *_ms_spread(waits)],
            ["'pinning' -> 'pinned' logged (holds, Kubo, status write)", *_ms_spread(works)],
            ["POST answered -> 'pinned' logged", *_ms_spread(whole)],
        ]
    print_table(
        f"Where a request's time goes (ms; {len(works)} of {run.pins} requests traced in the log)",
        ["", "p50", "p90", "p99", "max"],
        rows,
        note="Log lines are timestamped when read (every 20 ms).",
    )


def _print_cpu(run: _Run, waits: list[float], works: list[float]) -> None:
    cores = run.cores
    cpu_rows = [[role, f"{used:.2f}"] for role, used in sorted(cores.items(), key=lambda item: -item[1])]
    cpu_rows.append(["whole machine (all processes, busy cores)", f"{run.machine_cores:.2f}"])
    print_table(
        "CPU during the run (average cores used, first POST -> all pinned)",
        ["process", "cores"],
        cpu_rows,
        note="A Python process runs Python code on one core at a time (the GIL): ~1.0 is its ceiling.",
    )
    busiest, most = max(cores.items(), key=lambda item: item[1])
    share = sum(works) / max(1e-9, sum(works) + sum(waits)) if works else 0.0
    print(
        f"busiest process: {busiest} at {most:.2f} cores; of the worker's part of a pin's time, "
        f"{share:.0%} is 'pinning' -> 'pinned' and {1 - share:.0%} waiting in the queue."
    )


def measure(stack: LocalStack, pins: int, concurrency: int) -> dict[str, Any]:
    """Measures on a running stack (with nothing else queued) and prints the tables."""
    run = _run(stack, pins, concurrency)
    _print_summary(run)
    waits, works, whole = _request_times(run)
    _print_request_times(run, waits, works, whole)
    _print_cpu(run, waits, works)
    return {
        "pins_per_second": pins / (run.done - run.started),
        "cores": run.cores,
        "failed": run.counts.latest("failed"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--pins", type=int, default=1000, help="pin requests (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight at once (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="100 pins")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    run(100 if args.quick else args.pins, args.concurrency)
    print(f"(stack_throughput: {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
