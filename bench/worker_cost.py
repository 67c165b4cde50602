"""What the pin worker spends per pin on the happy path: DynamoDB requests
(by operation and table), Kubo RPC calls (by endpoint, per pin and per
replica), SQS sends, and the worker's own CPU time.

A new CID, 2 replicas on a 3-node fleet, once without origins and once with
2 origins, against fake Kubo nodes that answer at once (one block,
seconds_per_block 0). Each pin is created through the pin service, received
from the queue and handled by `process_batch` alone, one pin at a time, so
every request and call is the pin's own.

The emulated AWS (moto in server mode) and every fake Kubo node run in child
processes on loopback: `time.process_time()` around the worker's handling
then measures only the worker's CPU (botocore, requests, JSON, threads), as
a Lambda container would spend it, not the emulators'.

    .venv/bin/python -m bench.worker_cost [--quick]

The other worker benchmarks (worker_throughput) reuse `Backends` and
`worker_stack` from here.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.support import DynamoMeter, SqsMeter, cid_for, fake_credentials, print_table, quick_flag

PEERS = [
    "12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N",
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
    "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
]
# Origins the fakes "dial" (they answer success without dialing anything).
ORIGINS = (
    "/ip4/127.0.0.1/tcp/4101/p2p/12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N",
    "/ip4/127.0.0.1/tcp/4102/p2p/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
)
REGION = "us-east-1"


# -- child processes: the emulated AWS and the fake Kubo nodes ----------------


def _moto_child(conn: Any) -> None:
    from devstack.aws import MotoServer, use_fake_aws

    use_fake_aws()
    from devstack import moto_transactions

    moto_transactions.install()  # else moto deep-copies whole tables per transaction
    server = MotoServer(0)
    server.start()
    conn.send(server.endpoint_url)
    conn.recv()  # ("stop",)
    server.stop()
    conn.send(None)


def _fake_child(conn: Any, peer_id: str, seconds_per_block: float, tick: float) -> None:
    from tests.support import fake_kubo
    from tests.support.fake_kubo import FakeKubo

    # http.server sends the headers and the body of an answer in two writes;
    # without TCP_NODELAY the second waits for the client's delayed ACK, which
    # adds ~40 ms to every call on a kept-alive connection. Kubo (Go) sets
    # TCP_NODELAY, so the fake here does too.
    fake_kubo._Handler.disable_nagle_algorithm = True
    fake = FakeKubo(peer_id=peer_id, seconds_per_block=seconds_per_block, tick=tick, stream_limit=60.0)
    fake.start()
    conn.send(fake.url)
    while True:
        command, *args = conn.recv()
        try:
            if command == "stop":
                fake.stop()
                conn.send(None)
                return
            if command == "add":
                cids, blocks, per_block = args
                for cid in cids:
                    fake.add_content(cid, blocks)
                    if per_block is not None:
                        fake.slow(cid, per_block)
                conn.send(None)
            elif command == "counts":
                with fake._lock:
                    conn.send(dict(Counter(call.path for call in fake.calls)))
            else:
                conn.send(ValueError(f"unknown command {command!r}"))
        except Exception as error:  # noqa: BLE001 - handed to the parent
            conn.send(error)


class _Child:
    """A spawned process answering commands over a pipe; its first message is its address."""

    def __init__(self, target: Any, *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self._process = context.Process(target=target, args=(theirs, *args), daemon=True)
        self._process.start()
        if not self._conn.poll(60):
            self._process.kill()
            raise RuntimeError(f"{target.__name__} did not start within 60 s")
        self.address: str = self._conn.recv()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the child so far (Linux /proc; 0 elsewhere)."""
        try:
            with open(f"/proc/{self._process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def call(self, *command: Any) -> Any:
        self._conn.send(command)
        reply = self._conn.recv()
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def close(self) -> None:
        if self._process.is_alive():
            try:
                self._conn.send(("stop",))
                if self._conn.poll(15):
                    self._conn.recv()
            except (OSError, EOFError):
                pass
            self._process.join(15)
        if self._process.is_alive():
            self._process.kill()  # this process's own child only
            self._process.join(5)


class Backends:
    """moto (server mode) and `nodes` FakeKubo nodes, each in its own process."""

    def __init__(self, nodes: int = 3, seconds_per_block: float = 0.0, tick: float = 0.01) -> None:
        self._children: list[_Child] = []
        try:
            self._moto = self._start(_moto_child)
            self.fakes = [self._start(_fake_child, PEERS[i], seconds_per_block, tick) for i in range(nodes)]
        except BaseException:
            self.close()
            raise

    def _start(self, target: Any, *args: Any) -> _Child:
        child = _Child(target, *args)
        self._children.append(child)
        return child

    @property
    def endpoint_url(self) -> str:
        return self._moto.address

    @property
    def kubo_urls(self) -> list[str]:
        return [fake.address for fake in self.fakes]

    def add_content(self, cids: Sequence[str], blocks: int = 1, seconds_per_block: float | None = None) -> None:
        """Make `cids` fetchable on every node (`seconds_per_block` overrides the node's)."""
        for fake in self.fakes:
            fake.call("add", list(cids), blocks, seconds_per_block)

    def kubo_counts(self) -> Counter:
        """Calls by endpoint, over every node, since the start."""
        total: Counter = Counter()
        for fake in self.fakes:
            total.update(fake.call("counts"))
        return total

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time so far of the emulated AWS and of the fake nodes together."""
        return {"aws": self._moto.cpu_seconds(), "kubo": sum(fake.cpu_seconds() for fake in self.fakes)}

    def close(self) -> None:
        for child in reversed(self._children):
            child.close()

    def __enter__(self) -> Backends:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- the service, wired to the backends ----------------------------------------


@dataclass
class WorkerStack:
    settings: Any
    services: Any
    tenant_id: str
    sqs: Any

    def create(self, cid: str, origins: Sequence[str] = ()) -> Any:
        from chalicelib.pins.cids import parse_cid
        from chalicelib.pins.model import PinRequest

        return self.services.pins.create(self.tenant_id, PinRequest(parse_cid(cid), origins=tuple(origins)))

    def receive(self, wanted: int = 10, wait_seconds: float = 10.0) -> list[Any]:
        """Up to `wanted` (<= 10) messages, deleted on receipt as the Lambda event source does."""
        from chalicelib.worker.batch import QueuedMessage

        url = self.settings.queue_url
        got: list[Any] = []
        deadline = time.monotonic() + wait_seconds
        while len(got) < wanted and time.monotonic() < deadline:
            answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=wanted - len(got))
            messages = answer.get("Messages", [])
            if messages:
                self.sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
            got += [QueuedMessage(m["MessageId"], m["Body"]) for m in messages]
        return got


def worker_stack(backends: Backends, prefix: str, **changes: Any) -> WorkerStack:
    """Queue, tables, the fleet's nodes registered, a tenant; settings as in
    tests/worker (replication 2) with `changes` on top."""
    import botocore.session

    from chalicelib.config import Settings
    from chalicelib.storage.tables import create_tables
    from chalicelib.wiring import build_services

    endpoint = backends.endpoint_url
    sqs = botocore.session.get_session().create_client("sqs", region_name=REGION, endpoint_url=endpoint)
    queue_url = sqs.create_queue(QueueName=f"{prefix}-pins")["QueueUrl"]
    settings = replace(
        Settings(),
        table_prefix=prefix,
        queue_url=queue_url,
        region=REGION,
        aws_endpoint_url=endpoint,
        replication_factor=2,
        allow_private_origins=True,  # the origins are loopback addresses the fakes accept
        **changes,
    )
    create_tables(settings)
    services = build_services(settings)
    if settings.archive_bucket:
        # An S3 client of a botocore session of its own: a process that also
        # made boto3 sessions on the shared one (the test suite) could not
        # build a second S3 client there (tests/cold/s3.py).
        services.__dict__["s3"] = botocore.session.Session().create_client(
            "s3", region_name=REGION, endpoint_url=endpoint
        )
    for i, url in enumerate(backends.kubo_urls):
        services.registry.register(f"node-{i}", url, PEERS[i], [f"/ip4/127.0.0.1/tcp/{4001 + i}"])
    tenant_id = services.admin.create_tenant(prefix).tenant_id
    return WorkerStack(settings, services, tenant_id, sqs)


# -- the measurement -----------------------------------------------------------


def _short(table: str) -> str:
    return "+".join(sorted({name.split("-", 1)[-1] for name in table.split(",")})) if table else "?"


def _dynamo_key(call: Any) -> str:
    items = f", {call.tx_items} items" if call.operation.startswith("Transact") else ""
    return f"{call.operation}({_short(call.table)}{items})"


@dataclass
class PinCost:
    dynamo: Counter
    dynamo_errors: int
    kubo: Counter
    sqs_sends: int
    cpu_ms: float
    wall_ms: float


def measure_pins(stack: WorkerStack, backends: Backends, label: str, n: int, origins: Sequence[str]) -> list[PinCost]:
    from chalicelib.worker.batch import process_batch

    services = stack.services
    meter, sqs_meter = DynamoMeter(), SqsMeter()
    costs = []
    cids = [cid_for(f"worker-cost/{label}/{i}") for i in range(n)]
    backends.add_content(cids, blocks=1)
    for cid in cids:
        record = stack.create(cid, origins)
        batch = stack.receive(1)
        if len(batch) != 1:
            raise SystemExit(f"FATAL: expected the pin's message, got {len(batch)}")
        meter.attach()  # the models' clients exist by now; attach is idempotent
        sqs_meter.attach(services)
        kubo_before = backends.kubo_counts()
        mark, sends = meter.mark(), sqs_meter.sends
        cpu, wall = time.process_time(), time.perf_counter()
        result = process_batch(batch, services.worker, services.publisher, 60.0)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        tally = meter.since(mark)
        kubo = backends.kubo_counts() - kubo_before
        stored = services.store.get(record.tenant_id, record.created_ms)
        if result["batchItemFailures"] or stored is None or stored.status != "pinned":
            raise SystemExit(f"FATAL: pin not pinned: {result} {stored and stored.status} {stored and stored.info}")
        costs.append(
            PinCost(
                dynamo=Counter(_dynamo_key(call) for call in tally.calls),
                dynamo_errors=sum(1 for call in tally.calls if call.error),
                kubo=kubo,
                sqs_sends=sqs_meter.sends - sends,
                cpu_ms=cpu * 1000,
                wall_ms=wall * 1000,
            )
        )
    return costs


def _med(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def _p90(values: Iterable[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def _num(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


def _spread(values: list[float]) -> str:
    """median, and the range when the pins differ."""
    lo, hi = min(values), max(values)
    return _num(_med(values)) if lo == hi else f"{_num(_med(values))} ({_num(lo)}-{_num(hi)})"


def _excluding_connects(kubo: Counter) -> int:
    return sum(count for path, count in kubo.items() if path != "swarm/connect")


class _Columns:
    """One table column per run (label), each cell the spread of a value over its pins."""

    def __init__(self, runs: dict[str, list[PinCost]]) -> None:
        self.runs = runs
        self.labels = list(runs)

    def spread(self, extract: Callable[[PinCost], float]) -> list[str]:
        return [_spread([float(extract(cost)) for cost in self.runs[label]]) for label in self.labels]

    def median(self, extract: Callable[[PinCost], float]) -> dict[str, float]:
        return {label: _med(extract(cost) for cost in self.runs[label]) for label in self.labels}

    def formatted(self, summary: Callable[[Iterable[float]], float], extract: Callable[[PinCost], float]) -> list[str]:
        return [f"{summary(extract(cost) for cost in self.runs[label]):.2f}" for label in self.labels]


def _verdict(values_by_label: dict[str, float], limit: float) -> str:
    return "met" if all(value <= limit for value in values_by_label.values()) else "NOT MET"


def _dynamo_rows(columns: _Columns) -> list[list[Any]]:
    keys = sorted({key for costs in columns.runs.values() for cost in costs for key in cost.dynamo})
    total = columns.median(lambda cost: sum(cost.dynamo.values()))
    rows: list[list[Any]] = [
        [
            "DynamoDB requests per pin",
            *columns.spread(lambda cost: sum(cost.dynamo.values())),
            "<= 6",
            _verdict(total, 6),
        ]
    ]
    rows += [[f"  {key}", *columns.spread(lambda cost, k=key: cost.dynamo.get(k, 0)), "", ""] for key in keys]
    rows.append(["  of which failed (conditions)", *columns.spread(lambda cost: cost.dynamo_errors), "", ""])
    return rows


def _kubo_rows(columns: _Columns, replicas: int) -> list[list[Any]]:
    keys = sorted({key for costs in columns.runs.values() for cost in costs for key in cost.kubo} - {"swarm/connect"})
    per_pin = columns.median(lambda cost: _excluding_connects(cost.kubo))
    rows: list[list[Any]] = [
        [
            "Kubo calls per pin, excl. swarm/connect",
            *columns.spread(lambda cost: _excluding_connects(cost.kubo)),
            "<= 4 per pin",
            _verdict(per_pin, 4),
        ]
    ]
    rows += [[f"  {key}", *columns.spread(lambda cost, k=key: cost.kubo.get(k, 0)), "", ""] for key in keys]
    rows.append(
        [
            f"Kubo calls per replica ({replicas}), excl. swarm/connect",
            *columns.spread(lambda cost: _excluding_connects(cost.kubo) / replicas),
            "<= 4 per replica",
            _verdict({label: value / replicas for label, value in per_pin.items()}, 4),
        ]
    )
    return rows


def _connect_rows(columns: _Columns, replicas: int) -> list[list[Any]]:
    connects = columns.median(lambda cost: cost.kubo.get("swarm/connect", 0))
    target = {label: (0 if label == "no origins" else len(ORIGINS)) for label in columns.labels}
    met = all(connects[label] <= target[label] for label in columns.labels)
    return [
        [
            "swarm/connect per pin",
            *columns.spread(lambda cost: cost.kubo.get("swarm/connect", 0)),
            "1 per origin",
            "met" if met else "NOT MET",
        ],
        [
            "swarm/connect per replica",
            *columns.spread(lambda cost: cost.kubo.get("swarm/connect", 0) / replicas),
            "",
            "",
        ],
    ]


def _time_rows(columns: _Columns) -> list[list[Any]]:
    return [
        ["SQS sends per pin", *columns.spread(lambda cost: cost.sqs_sends), "0", ""],
        ["worker CPU ms per pin, median", *columns.formatted(_med, lambda cost: cost.cpu_ms), "", ""],
        ["worker CPU ms per pin, p90", *columns.formatted(_p90, lambda cost: cost.cpu_ms), "", ""],
        ["worker wall ms per pin, median", *columns.formatted(_med, lambda cost: cost.wall_ms), "", ""],
    ]


def _measure(n: int, warm: int) -> dict[str, list[PinCost]]:
    with Backends(nodes=3, seconds_per_block=0.0, tick=0.01) as backends:
        stack = worker_stack(backends, "wcost")
        # Warm container: models' clients, Kubo sessions, the fleet cached, imports done.
        measure_pins(stack, backends, "warm", warm, ORIGINS)
        return {
            "no origins": measure_pins(stack, backends, "plain", n, ()),
            "2 origins": measure_pins(stack, backends, "origins", n, ORIGINS),
        }


def run(quick: bool) -> dict[str, Any]:
    fake_credentials()
    import logging

    logging.getLogger("pinning").setLevel(logging.WARNING)  # no log line per pin in the CPU time
    n = 12 if quick else 60
    replicas = 2
    runs = _measure(n, warm=2 if quick else 5)
    columns = _Columns(runs)
    rows = (
        _dynamo_rows(columns) + _kubo_rows(columns, replicas) + _connect_rows(columns, replicas) + _time_rows(columns)
    )

    print_table(
        f"Worker cost per pin, happy path (new CID, {replicas} replicas of 3 nodes, zero-latency fake Kubo; "
        f"median (range) over {n} pins each, one pin per process_batch call)",
        ["per pin", *columns.labels, "target", "verdict"],
        rows,
        note=(
            "Per pin = all replicas together; per replica = per pin / "
            f"{replicas}. DynamoDB counts every request the worker's PynamoDB clients sent\n"
            "(a transaction is one request; 'items' = its TransactItems). The node list is read once per "
            "node_cache_seconds (30 s) per\ncontainer, so the warm pins here read it from memory. CPU is "
            "time.process_time() of this process around process_batch;\nmoto and the fake nodes run in "
            "child processes, so it is the worker's own CPU (botocore, requests, JSON, threads).\n"
            "The fakes run with TCP_NODELAY, as Kubo does (without it each call waits ~40 ms for a delayed ACK)."
        ),
    )
    return {"runs": runs}


def main(argv: Sequence[str] | None = None) -> int:
    quick = quick_flag(argv)
    started = time.perf_counter()
    run(quick)
    print(f"(worker_cost: {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
