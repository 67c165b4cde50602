"""A restore from the cold archive against a fresh pin of the same content
from a peer node, side by side in one run.

    .venv/bin/python -m bench.restore_speed [--quick]

Two embedded Kubo nodes (devstack, one process each, loopback only, no
bootstrap): the target and a peer. The peer adds random bytes (100 MiB and
16 MiB; 4 and 1 MiB with --quick), the service pins them on both nodes and
archives them into S3 through its own worker (`process_batch`: pin, then
archive). Then, on the target, each run starts from a node that does not
hold the content (its pins of the CID removed, then every block of the DAG
deleted from its flatfs blockstore: the embedded node has no `repo/gc`,
so this is its GC, as in tests/e2e/test_restore_embedded.py), its process
started again (so its block cache forgets those blocks; see `fresh_start`;
not timed), and either

- restore: `Restorer.restore`, the service's one restore path: the CAR
  streamed from S3, every block verified (`verified_car`), `dag/import`
  into the target pinning the root, confirmed with `pin/ls`;
- pin from the peer: the worker's copy path (`PinWorker.copy_to`):
  `swarm/connect` to the peer then `pin/add` (Kubo's bitswap over
  loopback), confirmed with `pin/ls`.

Both interleaved, their order alternating, after a warm-up run of each;
medians of 5 runs (2 with --quick). A third line times the S3 GET of the
CAR alone (read and dropped), to show what the emulator costs. As the
target restarts before every run, each pin dials the peer afresh.

AWS is moto in server mode in a child process (bench.worker_cost's
`Backends`), not in-process moto: the CAR then crosses a loopback socket as
it would from S3, and moto's work (serving 100 MiB) is not done on the GIL
of the process that verifies the blocks."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.support import KuboRpc, fake_credentials, print_table, quick_flag
from bench.worker_cost import Backends, WorkerStack, worker_stack

TOKEN = "bench-kubo-token"
BUCKET = "bench-cold-archives"
MIB = 1 << 20
RUNS = 5
TURN_SECONDS = 900.0  # a Lambda's longest turn
# The worker is done with a content once the queue stays empty this long (its messages come within ms).
DRAINED_SECONDS = 2.0
# The adapter's note when a dag/import pin is stuck on its block cache (see devstack/kubo/rpc_adapter.py).
RESTART_NOTE = "is stuck: restarting the node"


@dataclass
class ColdFleet:
    """The service (moto server, archive bucket) and two embedded nodes,
    both registered as fleet nodes: the target (first) and the peer."""

    stack: WorkerStack
    nodes: list[Any]  # devstack RunningNode

    @property
    def services(self) -> Any:
        return self.stack.services

    def record(self, index: int) -> Any:
        """The registry's record of node `index` (what the worker and the restorer take)."""
        name = self.nodes[index].name
        return next(node for node in self.services.registry.nodes(fresh=True) if node.node_id == name)

    def objects(self) -> Any:
        from chalicelib.cold.archive_objects import ArchiveObjects

        return ArchiveObjects(self.services.s3, BUCKET)


@contextlib.contextmanager
def cold_fleet(prefix: str, **settings: Any) -> Iterator[ColdFleet]:
    """moto server, two embedded Kubo nodes, the service wired to both with
    an archive bucket; `settings` on top of bench.worker_cost's."""
    from devstack.kubo.fleet import running_fleet

    fake_credentials()
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-") as base,
        Backends(nodes=0) as backends,
        running_fleet(2, Path(base), prefix=prefix, auth_token=TOKEN) as nodes,
    ):
        stack = worker_stack(
            backends,
            prefix,
            archive_bucket=BUCKET,
            kubo_rpc_secret=TOKEN,
            stall_seconds=60,
            continue_delay_seconds=0,
            **settings,
        )
        stack.services.s3.create_bucket(Bucket=BUCKET)
        for node in nodes:
            stack.services.registry.register(node.name, node.rpc_url, node.peer_id, [node.multiaddr])
        yield ColdFleet(stack, nodes)


def archived_content(fleet: ColdFleet, size: int) -> tuple[str, Any]:
    """`size` random bytes added on the peer, pinned by the service on both
    nodes and archived by its worker: the CID (CIDv1) and its ArchivedCar."""
    from chalicelib.pins.cids import parse_cid
    from chalicelib.worker.batch import process_batch

    cid = parse_cid(KuboRpc(fleet.nodes[1].rpc_url, TOKEN).add_random(size)).key
    fleet.stack.create(cid, origins=[fleet.nodes[1].multiaddr])
    services = fleet.services
    while batch := fleet.stack.receive(wanted=1, wait_seconds=DRAINED_SECONDS):
        result = process_batch(batch, services.worker, services.publisher, TURN_SECONDS)
        if result["batchItemFailures"]:
            raise SystemExit(f"FATAL: the worker failed {result}")
    car = services.restorer.archive_of(cid)
    if car is None:
        raise SystemExit(f"FATAL: {cid} was not archived by the worker")
    return cid, car


def _block_files(fleet: ColdFleet, index: int, car: Any) -> list[Path]:
    """The files the DAG's blocks have (or would have) in node `index`'s flatfs blockstore."""
    from chalicelib.cold.cids import cid_from_bytes
    from devstack.kubo.blockstore import Blockstore

    store = Blockstore(fleet.nodes[index].repo)
    return [store.path_of(cid_from_bytes(entry.key)) for entry in fleet.objects().index(car)]


def drop(fleet: ColdFleet, index: int, cid: str, car: Any) -> None:
    """Node `index` loses the content: its recursive pins of the CID (any
    spelling) removed, then every block of the DAG deleted from its repo."""
    from chalicelib.pins.cids import parse_cid

    kubo = fleet.services.kubo(fleet.record(index))
    for pinned in [pin for pin in kubo.recursive_pins() if parse_cid(pin).key == cid]:
        kubo.pin_rm(pinned)
    files = _block_files(fleet, index, car)
    for file in files:
        file.unlink(missing_ok=True)
    if kubo.is_pinned(cid) or any(file.exists() for file in files):
        raise SystemExit(f"FATAL: {fleet.nodes[index].name} still holds {cid}")


def check_holds(fleet: ColdFleet, index: int, cid: str, car: Any) -> None:
    """Node `index` pins the CID and has every block of the DAG on disk."""
    if not fleet.services.kubo(fleet.record(index)).is_pinned(cid):
        raise SystemExit(f"FATAL: {cid} is not pinned on {fleet.nodes[index].name}")
    missing = sum(1 for file in _block_files(fleet, index, car) if not file.exists())
    if missing:
        raise SystemExit(f"FATAL: {fleet.nodes[index].name} pins {cid} without {missing} of its blocks")


def restarts(node: Any) -> int:
    """How often the node's adapter restarted it for a stuck import pin (the run is then not clean)."""
    return Path(node.log_path).read_text(errors="replace").count(RESTART_NOTE)


@dataclass
class SizeResult:
    size: int
    car_bytes: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    cut: list[str] = field(default_factory=list)  # the way of each run done again (see _timed_run)

    def median(self, label: str) -> float:
        return statistics.median(self.seconds[label])


RESTORE = "restore from the archive (S3 -> verify -> dag/import -> pin/ls)"
PEER_PIN = "fresh pin from the peer (swarm/connect + pin/add -> pin/ls)"
S3_ONLY = "  the S3 GET of the CAR alone (read, dropped)"


def fresh_start(fleet: ColdFleet, index: int) -> None:
    """Node `index`'s process stopped and started again on its repo (new
    ports, registered again). Blocks deleted under a running node stay in
    its block cache, which then tells bitswap it has them: they are not
    written again and the pin stalls. The embedded node has no `repo/gc`
    that would go through that cache, so a restart empties it."""
    from devstack.kubo.fleet import start_node

    old = fleet.nodes[index]
    old.stop()
    new = start_node(old.name, old.repo.parent, auth_token=TOKEN)
    fleet.nodes[index] = new
    fleet.services.registry.register(new.name, new.rpc_url, new.peer_id, [new.multiaddr])


Work = Callable[[Any], None]  # the run's work on the target's registry record


def _variants(fleet: ColdFleet, cid: str, car: Any) -> list[tuple[str, Work]]:
    services = fleet.services
    peer = fleet.nodes[1].multiaddr

    def restore(target: Any) -> None:
        services.restorer.restore(target, cid, car, time.monotonic() + TURN_SECONDS)

    def pin(target: Any) -> None:
        services.worker.copy_to(target, cid, [peer], time.monotonic() + TURN_SECONDS)

    return [(RESTORE, restore), (PEER_PIN, pin)]


def _timed_run(fleet: ColdFleet, cid: str, car: Any, way: tuple[str, Work], cut: list[str]) -> float:
    """One run from a target without the content, freshly started. A run
    whose call met a connection the node's adapter had dropped is counted in
    `cut` and run again: after a dag/import the devstack adapter leaves the
    chunked body's last bytes unread, so the next call on that kept-alive
    connection may find it closed (the adapter's bug, not the service's)."""
    from chalicelib.kubo.errors import KuboUnavailable

    label, work = way
    for _ in range(3):
        drop(fleet, 0, cid, car)
        fresh_start(fleet, 0)
        target = fleet.record(0)
        started = time.perf_counter()
        try:
            work(target)
        except KuboUnavailable:
            cut.append(label)
            continue
        elapsed = time.perf_counter() - started
        check_holds(fleet, 0, cid, car)
        return elapsed
    raise SystemExit("FATAL: three runs in a row met a dropped connection")


def _s3_read(fleet: ColdFleet, car: Any) -> float:
    started = time.perf_counter()
    read = sum(len(chunk) for chunk in fleet.objects().car_chunks(car))
    elapsed = time.perf_counter() - started
    if read != car.car_bytes:
        raise SystemExit(f"FATAL: read {read} bytes of a {car.car_bytes}-byte CAR")
    return elapsed


def measure_size(fleet: ColdFleet, size: int, runs: int) -> SizeResult:
    cid, car = archived_content(fleet, size)
    variants = _variants(fleet, cid, car)
    result = SizeResult(size, car.car_bytes, {label: [] for label, _ in variants})
    for way in variants:  # warm-up: connections, caches, imports
        _timed_run(fleet, cid, car, way, result.cut)
    result.seconds[S3_ONLY] = []
    for i in range(runs):
        for way in variants[i % 2 :] + variants[: i % 2]:
            result.seconds[way[0]].append(_timed_run(fleet, cid, car, way, result.cut))
        result.seconds[S3_ONLY].append(_s3_read(fleet, car))
    return result


def measure(sizes: Sequence[int], runs: int) -> tuple[list[SizeResult], int]:
    """Each size's runs on one fleet; and the adapter's restarts of the target (0 in a clean run)."""
    import logging

    logging.getLogger("pinning").setLevel(logging.ERROR)
    with cold_fleet("restore") as fleet:
        results = [measure_size(fleet, size, runs) for size in sizes]
        return results, restarts(fleet.nodes[0])


def size_label(size: int) -> str:
    return f"{size / MIB:.0f} MiB" if size >= MIB else f"{size >> 10} KiB"


def _cut(results: Sequence[SizeResult]) -> str:
    ways = [label.split(" ")[0] for result in results for label in result.cut]
    return f"{len(ways)}" + (f" ({', '.join(f'{way} {ways.count(way)}' for way in sorted(set(ways)))})" if ways else "")


def report(results: Sequence[SizeResult], restarted: int, load_before: float) -> None:
    rows: list[list[Any]] = []
    for result in results:
        mib, name = result.size / MIB, size_label(result.size)
        for label in (RESTORE, PEER_PIN, S3_ONLY):
            seconds = result.seconds[label]
            rows.append(
                [
                    f"{name}: {label}",
                    f"{result.median(label):.2f}",
                    f"{mib / result.median(label):.1f}",
                    " ".join(f"{s:.2f}" for s in seconds),
                ]
            )
        ratio = result.median(RESTORE) / result.median(PEER_PIN)
        rows.append([f"{name}: ratio restore / pin from the peer", f"{ratio:.2f}x", "", ""])
    runs = len(results[0].seconds[RESTORE]) if results else 0
    print_table(
        f"Restore from the cold archive vs a fresh pin from a peer, embedded Kubo on loopback, "
        f"S3 = moto server (median of {runs} runs each, interleaved)",
        ["what", "median s", "MiB/s", "each run (s)"],
        rows,
        note=(
            "Each run starts from a target without the content (pins removed, blocks deleted, node restarted). CAR sizes: "
            + ", ".join(f"{size_label(r.size)} -> {r.car_bytes:,} bytes" for r in results)
            + f".\nAdapter restarts of the target for a stuck import pin: {restarted}; runs done again after a "
            f"connection the adapter dropped: {_cut(results)}.\n"
            f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} cores."
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    quick = quick_flag(argv)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    sizes = [4 * MIB, 1 * MIB] if quick else [100 * MIB, 16 * MIB]
    results, restarted = measure(sizes, 2 if quick else RUNS)
    report(results, restarted, load)
    print(f"(restore_speed: {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
