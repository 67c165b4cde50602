"""Pins per second of one worker process handling SQS batches of 10 with
`process_batch`, when every pin/add takes 200 ms on the node.

3 fake Kubo nodes (each in its own process; one block of content per CID,
fetched in 200 ms), replication 2, moto in server mode in another process.
Workers with node_concurrency 4 (the default) and 10 take turns, batch by
batch, on fresh pins of one tenant; a third worker (node_concurrency 4)
handles batches whose content the nodes have at once (0 ms pins), which
shows the service's own time per batch. Only `process_batch` is timed.

For each batch the Kubo-bound time is also computed: the busiest node's
replica pins, in waves of node_concurrency, 200 ms each.

    .venv/bin/python -m bench.worker_throughput [--quick]
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.support import cid_for, fake_credentials, print_table, quick_flag
from bench.worker_cost import Backends, worker_stack

PIN_SECONDS = 0.2
BATCH = 10


@dataclass
class Batch:
    size: int
    wall_s: float
    cpu_s: float
    kubo_bound_s: float
    busiest_node_pins: int
    failures: int
    aws_cpu_s: float
    kubo_cpu_s: float
    dynamo_ms: list[float]


class DynamoLatency:
    """Wall time of each DynamoDB request the models' clients send (before-call to after-call)."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._hooked: dict[int, Any] = {}

    def attach(self) -> None:
        from chalicelib.storage.tables import MODELS

        for model in MODELS:
            client = model._get_connection().connection.client
            if id(client) in self._hooked:
                continue
            self._hooked[id(client)] = client
            client.meta.events.register("before-call.dynamodb.*", self._before, unique_id=f"lat-b-{id(self)}")
            client.meta.events.register("after-call.dynamodb.*", self._after, unique_id=f"lat-a-{id(self)}")

    @staticmethod
    def _before(context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def _after(self, context: dict[str, Any], **_: Any) -> None:
        started = context.get("bench_started")
        if started is not None:
            self.ms.append((time.perf_counter() - started) * 1000)


def _worker(stack: Any, node_concurrency: int) -> Any:
    from chalicelib.fleet.holds import PinHolds
    from chalicelib.storage.hold_repository import DynamoHoldRepository
    from chalicelib.worker.pin_worker import PinWorker

    services = stack.services
    settings = replace(services.settings, node_concurrency=node_concurrency)
    return PinWorker(
        settings,
        services.store,
        services.registry,
        PinHolds(DynamoHoldRepository(services.dynamo), lease_seconds=15 * 60),
        services.kubo,
    )


def _one_batch(
    stack: Any,
    backends: Backends,
    worker: Any,
    concurrency: int,
    label: str,
    pin_seconds: float,
    latency: DynamoLatency,
    size: int = BATCH,
) -> Batch:
    from chalicelib.queue.messages import decode
    from chalicelib.worker.batch import process_batch

    cids = [cid_for(f"throughput/{label}/{i}") for i in range(size)]
    backends.add_content(cids, blocks=1, seconds_per_block=pin_seconds)
    records = [stack.create(cid) for cid in cids]
    batch = stack.receive(size)
    if len(batch) != size:
        raise SystemExit(f"FATAL: received {len(batch)} of {size} messages")
    per_node = Counter(node for message in batch for node in decode(message.body).node_ids)
    busiest = max(per_node.values())
    latency.attach()
    mark = len(latency.ms)
    children = backends.cpu_seconds()
    cpu, wall = time.process_time(), time.perf_counter()
    result = process_batch(batch, worker, stack.services.publisher, 120.0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = backends.cpu_seconds()
    dynamo_ms = latency.ms[mark:]
    pinned = sum(
        1
        for r in records
        if (stored := stack.services.store.get(r.tenant_id, r.created_ms)) and stored.status == "pinned"
    )
    if pinned != size:
        raise SystemExit(f"FATAL: {pinned} of {size} pinned; {result}")
    return Batch(
        size,
        wall,
        cpu,
        math.ceil(busiest / concurrency) * pin_seconds,
        busiest,
        len(result["batchItemFailures"]),
        after["aws"] - children["aws"],
        after["kubo"] - children["kubo"],
        dynamo_ms,
    )


@dataclass(frozen=True)
class Config:
    """One worker configuration measured: `repeat` batches of `size` messages a round."""

    label: str
    node_concurrency: int
    pin_seconds: float
    size: int
    repeat: int


CONFIGS = [
    Config("node_concurrency 4 (default)", 4, PIN_SECONDS, BATCH, 1),
    Config("node_concurrency 10", 10, PIN_SECONDS, BATCH, 1),
    Config("node_concurrency 4, 0 ms pins", 4, 0.0, BATCH, 1),
    Config("1 message a batch, 0 ms pins", 4, 0.0, 1, 3),
]


def _measure(rounds: int) -> dict[str, list[Batch]]:
    """The configurations' batches, interleaved round by round, after one warm batch each."""
    results: dict[str, list[Batch]] = {config.label: [] for config in CONFIGS}
    latency = DynamoLatency()
    with Backends(nodes=3, seconds_per_block=PIN_SECONDS, tick=0.05) as backends:
        stack = worker_stack(backends, "wtput")
        workers = {config.label: _worker(stack, config.node_concurrency) for config in CONFIGS}

        def batch_of(config: Config, label: str) -> Batch:
            worker = workers[config.label]
            return _one_batch(
                stack, backends, worker, config.node_concurrency, label, config.pin_seconds, latency, config.size
            )

        for config in CONFIGS:  # warm: clients, sessions, threads, imports
            batch_of(config, f"warm/{config.label}")
        for round_ in range(rounds):
            for config in CONFIGS:
                results[config.label] += [
                    batch_of(config, f"{round_}/{again}/{config.label}") for again in range(config.repeat)
                ]
    return results


def _row(config: Config, batches: list[Batch]) -> list[Any]:
    med = statistics.median
    wall = med(b.wall_s for b in batches)
    rate = med(b.size / b.wall_s for b in batches)
    bound = med(b.kubo_bound_s for b in batches)
    has_target = bool(config.pin_seconds)
    return [
        config.label,
        sum(b.size for b in batches),
        f"{rate:.1f}",
        f"{wall * 1000:.0f}",
        f"{bound * 1000:.0f}",
        f"{med(b.busiest_node_pins for b in batches):g}",
        f"{(wall - bound) * 1000:.0f}",
        f"{med(ms for b in batches for ms in b.dynamo_ms):.1f}",
        f"{med(b.cpu_s / b.wall_s for b in batches):.2f}",
        f"{med(b.aws_cpu_s / b.wall_s for b in batches):.2f}",
        f"{med(b.kubo_cpu_s / b.wall_s for b in batches):.2f}",
        f"{config.size / bound:.1f}" if bound else "-",
        ">= 8" if has_target else "-",
        ("met" if rate >= 8 else "NOT MET") if has_target else "-",
    ]


def run(quick: bool) -> dict[str, Any]:
    fake_credentials()
    import logging

    logging.getLogger("pinning").setLevel(logging.WARNING)
    rounds = 2 if quick else 6
    results = _measure(rounds)
    rows = [_row(config, results[config.label]) for config in CONFIGS]
    print_table(
        f"Worker throughput: one process, process_batch, 3 nodes, 2 replicas, pin/add {PIN_SECONDS * 1000:.0f} ms "
        f"(median over {rounds} rounds, configurations interleaved; {os.cpu_count()} cores)",
        [
            "worker",
            "pins",
            "pins/s",
            "batch ms",
            "Kubo-bound ms",
            "busiest node pins",
            "batch - bound ms",
            "DynamoDB req ms",
            "worker CPU/wall",
            "moto CPU/wall",
            "fakes CPU/wall",
            "Kubo-bound pins/s",
            "target",
            "verdict",
        ],
        rows,
        note=(
            "Kubo-bound ms = ceil(replica pins on the busiest node / node_concurrency) x pin/add time: the batch "
            "cannot end sooner;\n'batch - bound' is the rest. pins/s = messages / batch time (a batch ends with "
            "its slowest pin). 'DynamoDB req ms' = median wall time of\nthe worker's DynamoDB requests during "
            "the batches. CPU/wall = CPU seconds of the worker process, of moto (one process) and of\nthe 3 fake "
            "nodes together, per second of batch (1.00 = one core busy). DynamoDB is moto in server mode: "
            "one Python process\n(one GIL) for every request, unlike DynamoDB, and it does not model "
            "TransactionConflict between the batch's concurrent\ntransactions on the tenant's counter items."
        ),
    )
    return {"results": results}


def main(argv: Sequence[str] | None = None) -> int:
    quick = quick_flag(argv)
    started = time.perf_counter()
    run(quick)
    print(f"(worker_throughput: {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
