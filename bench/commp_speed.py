"""CommP and the CAR reader against plain SHA-256 of the same bytes, in one run.

    .venv/bin/python -m bench.commp_speed [--quick]

The archive worker will stream each DAG's CAR once and compute, per chunk,
its SHA-256, its piece commitment (chalicelib/cold/commp.py) and its block
index (chalicelib/cold/car.py, which verifies every block). This measures
each of those alone and all three together over the same seeded random
bytes (64 MiB; 8 MiB with --quick), fed in 1 MiB chunks as an S3 or HTTP
stream would deliver them, and prints MiB/s, medians of 3 runs (each repeats a subject for
0.5 s at least), and each
one's time relative to SHA-256. The CAR holds the bytes as 256 KiB raw
blocks under a dag-pb root (Kubo's `add` shape). Peak memory of each
streaming consumer is measured apart (tracemalloc slows what it traces).
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from bench.support import median, print_table, quick_flag
from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.car import CarReader, write_car
from chalicelib.cold.cids import Cid, cid_from_bytes
from chalicelib.cold.commp import CommP, PieceCommitment
from chalicelib.cold.varints import encode_varint

CHUNK = 1 << 20
BLOCK = 256 << 10
RUNS = 3
MIN_SECONDS = 0.5
SEED = 20261128


def data_of(size: int) -> bytes:
    return random.Random(SEED).randbytes(size)


def _raw_cid(block: bytes) -> Cid:
    digest = hashlib.sha256(block).digest()
    return cid_from_bytes(b"\x01\x55\x12\x20" + digest)


def build_car(data: bytes) -> bytes:
    """`data` as 256 KiB raw blocks, and a dag-pb root (its links only: this
    measures bytes, not UnixFS)."""
    blocks = [(_raw_cid(data[i : i + BLOCK]), data[i : i + BLOCK]) for i in range(0, len(data), BLOCK)]
    links = b"".join(
        b"\x12" + encode_varint(len(cid.binary) + 2) + b"\x0a" + bytes([len(cid.binary)]) + cid.binary
        for cid, _ in blocks
    )
    root_cid = cid_from_bytes(b"\x01\x70\x12\x20" + hashlib.sha256(links).digest())
    return b"".join(write_car([root_cid], [(root_cid, links), *blocks]))


def chunks(data: bytes) -> Iterator[memoryview]:
    view = memoryview(data)
    return (view[i : i + CHUNK] for i in range(0, len(view), CHUNK))


def sha256_of(data: bytes) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks(data):
        hasher.update(chunk)
    return hasher.hexdigest()


def commp_of(data: bytes) -> PieceCommitment:
    hasher = CommP()
    for chunk in chunks(data):
        hasher.update(chunk)
    return hasher.digest()


def index_of(car: bytes) -> BlockIndex:
    reader = CarReader()
    return BlockIndex.from_blocks(reader.blocks(chunks(car)))


def archive_pass(car: bytes) -> tuple[str, PieceCommitment, BlockIndex]:
    """What the archive worker does per chunk: SHA-256, CommP and the verified block index."""
    sha, piece, reader = hashlib.sha256(), CommP(), CarReader()
    index = BlockIndex()
    for chunk in chunks(car):
        sha.update(chunk)
        piece.update(chunk)
        for block in reader.feed(chunk):
            index.add(block.cid, block.offset, block.length)
    reader.close()
    return sha.hexdigest(), piece.digest(), index


@dataclass(frozen=True)
class Row:
    label: str
    mib: float  # MiB processed per run
    seconds: list[float]
    peak_bytes: int  # tracemalloc peak of one separate run

    @property
    def mib_s(self) -> float:
        return self.mib / median(self.seconds)


@dataclass(frozen=True)
class Outcome:
    size: int
    car_size: int
    rows: list[Row]
    piece: PieceCommitment
    blocks: int
    index_bytes: int


def _timed(work: Callable[[], object], min_seconds: float) -> float:
    """Seconds of one pass, passes repeated for `min_seconds` at least, so the
    fast subjects (sha256 takes ~0.05 s) are not one scheduler tick."""
    passes = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds or not passes:
        work()
        passes += 1
    return elapsed / passes


def _peak(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(size: int, runs: int = RUNS, min_seconds: float = MIN_SECONDS) -> Outcome:
    data = data_of(size)
    car = build_car(data)
    mib, car_mib = size / 2**20, len(car) / 2**20
    subjects: list[tuple[str, float, Callable[[], object]]] = [
        ("sha256 of the data, one call", mib, lambda: hashlib.sha256(data).digest()),
        ("sha256 of the data, 1 MiB chunks", mib, lambda: sha256_of(data)),
        ("CommP of the data, 1 MiB chunks", mib, lambda: commp_of(data)),
        ("CAR reader + block index (verified), 1 MiB chunks", car_mib, lambda: index_of(car)),
        ("archive pass over the CAR: sha256 + CommP + index", car_mib, lambda: archive_pass(car)),
    ]
    # Interleaved, so a change in the machine's load touches every subject alike.
    seconds: dict[str, list[float]] = {label: [] for label, _, _ in subjects}
    for _ in range(runs):
        for label, _, work in subjects:
            seconds[label].append(_timed(work, min_seconds))
    rows = [Row(label, amount, seconds[label], _peak(work)) for label, amount, work in subjects]
    _, piece, index = archive_pass(car)
    return Outcome(size, len(car), rows, piece, len(index), len(index.to_bytes()))


def report(outcome: Outcome) -> None:
    base = outcome.rows[0].mib_s
    print_table(
        f"Throughput over {outcome.size / 2**20:.0f} MiB of random data (CAR: {outcome.car_size:,} bytes), "
        f"median of {len(outcome.rows[0].seconds)} runs",
        ["what", "MiB/s", "s a pass, each run", "time vs sha256", "peak traced memory"],
        [
            [
                row.label,
                f"{row.mib_s:.1f}",
                " ".join(f"{s:.3f}" for s in row.seconds),
                f"{base / row.mib_s:.1f}x",
                f"{row.peak_bytes / 2**20:.1f} MiB",
            ]
            for row in outcome.rows
        ],
        note=(
            f"piece: {outcome.piece.cid_v1}, padded {outcome.piece.padded_size:,} bytes; "
            f"v2 {outcome.piece.cid_v2}\n"
            f"block index: {outcome.blocks} blocks in {outcome.index_bytes:,} bytes "
            f"({outcome.index_bytes / outcome.blocks:.1f} bytes a block); "
            f"1-min load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
        ),
    )


def main(argv: Sequence[str] | None = None) -> None:
    report(measure((8 if quick_flag(argv) else 64) << 20))


if __name__ == "__main__":
    main()
