"""Archive throughput end to end, against CommP alone and plain SHA-256 of the
same bytes, in one run.

    .venv/bin/python -m bench.archive_speed [--quick]

One embedded Kubo node (devstack, its own process) holds a file of S MiB of
seeded random bytes (16, 64 and 256 MiB; 4 and 16 with --quick), added
through its RPC (not timed). Each run archives a fresh file of that size
with the service's archiver (chalicelib.cold.archiver, wired as the archive
function is: `Services.archiver`): the hold, the lease, `dag/export` from the
node streamed into an S3 multipart upload of 8 MiB parts with SHA-256 and
CommP over the same chunks, the block index, the record. S3 and DynamoDB are
moto in server mode in a child process on loopback, so its work is not done
on the archiver's GIL. Then, over the CAR the archive holds (read back from
S3, not timed), the same process times each part alone: `dag/export` (the
export streamed and every block verified, nothing uploaded), the S3
multipart upload of the CAR (the archiver's `MultipartUpload`, 8 MiB parts,
deleted after), CommP and SHA-256, each fed 1 MiB chunks. Medians of RUNS runs per size; MiB are the
CAR's. The largest DAG one turn of the archive function archives follows
from the end-to-end speed: (900 s - the invocation margin) x MiB/s.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.commp_speed import CHUNK, commp_of, sha256_of
from bench.support import fake_credentials, median, print_table, quick_flag

SIZES_MIB = (16, 64, 256)
QUICK_SIZES_MIB = (4, 16)
RUNS = 3
TOKEN = "bench-archive-token"
BUCKET = "bench-archive-speed"
HTTP_TIMEOUT = 600
# The archive function's timeout (.chalice/config.json).
TURN_SECONDS = 900
SEED = 20261128


@dataclass
class SizeResult:
    mib: int
    car_bytes: int = 0
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def mib_s(self, subject: str) -> float:
        return self.car_bytes / 2**20 / median(self.seconds[subject])


SUBJECTS = (
    "archive, end to end",
    "dag/export alone (verified)",
    "S3 multipart upload alone (moto)",
    "CommP alone",
    "SHA-256 alone",
)


def data_of(size: int, run: int) -> bytes:
    rng, piece = random.Random(f"{SEED}/{size}/{run}"), 16 << 20  # randbytes takes at most 2^31 bits a call
    return b"".join(rng.randbytes(min(piece, size - start)) for start in range(0, size, piece))


def add(rpc_url: str, data: bytes) -> str:
    """`data` added to the node as one UnixFS file; its CID."""
    response = requests.post(
        f"{rpc_url}/api/v0/add",
        files={"file": ("data.bin", data)},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=HTTP_TIMEOUT,
    )
    response.raise_for_status()
    return str(response.json()["Hash"])


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def one_run(services: Any, tenant_id: str, rpc_url: str, size: int, run: int, result: SizeResult) -> None:
    from chalicelib.cold.archiver import MultipartUpload, archive_keys
    from chalicelib.pins.cids import parse_cid
    from chalicelib.pins.model import PinRequest
    from chalicelib.queue.messages import ArchiveRequested
    from chalicelib.storage.archive_repository import DynamoArchiveRepository

    cid = parse_cid(add(rpc_url, data_of(size, run)))
    pin = services.pins.create(tenant_id, PinRequest(cid=cid))
    message = ArchiveRequested(tenant_id, pin.request_id, pin.created_ms, cid.key, ("node-0",))
    archiver = services.archiver
    deadline = time.monotonic() + TURN_SECONDS
    result.seconds.setdefault(SUBJECTS[0], []).append(
        _timed(lambda: archiver.archive(message, f"bench-{size}-{run}", deadline))
    )
    state = DynamoArchiveRepository(services.dynamo).state(cid.key)
    if state is None or state.car is None:
        raise SystemExit(f"FATAL: {cid.key} was not archived: {state}")
    car_key, index_key = archive_keys(services.settings.archive_prefix, cid.key)
    car = services.s3.get_object(Bucket=BUCKET, Key=car_key)["Body"].read()
    if hashlib.sha256(car).hexdigest() != state.car.car_sha256 or commp_of(car).cid_v1 != state.car.piece_cid_v1:
        raise SystemExit(f"FATAL: the archived CAR of {cid.key} is not the one recorded")
    result.car_bytes = len(car)
    node = services.registry.nodes()[0]

    def export_alone() -> None:
        with services.kubo(node).dag_export(cid.key, seconds=TURN_SECONDS) as export:
            for _ in export:
                pass

    def upload_alone() -> None:
        upload = MultipartUpload(services.s3, BUCKET, f"bench/{cid.key}.car")
        for start in range(0, len(car), CHUNK):  # as the export's chunks come
            upload.write(car[start : start + CHUNK])
        upload.complete()
        services.s3.delete_object(Bucket=BUCKET, Key=f"bench/{cid.key}.car")

    subjects = (export_alone, upload_alone, lambda: commp_of(car), lambda: sha256_of(car))
    for subject, work in zip(SUBJECTS[1:], subjects, strict=True):
        result.seconds.setdefault(subject, []).append(_timed(work))
    for key in (car_key, index_key):  # moto keeps objects in memory
        services.s3.delete_object(Bucket=BUCKET, Key=key)


def measure(sizes_mib: Sequence[int], runs: int = RUNS) -> list[SizeResult]:

    from bench.worker_cost import Backends, worker_stack
    from devstack.kubo.fleet import running_fleet

    fake_credentials()
    results = [SizeResult(mib) for mib in sizes_mib]
    with (
        tempfile.TemporaryDirectory(prefix="bench-archive-") as base,
        Backends(nodes=0) as backends,
        running_fleet(1, Path(base), prefix="archive", auth_token=TOKEN) as (node,),
    ):
        stack = worker_stack(backends, "bench-archive", archive_bucket=BUCKET, kubo_rpc_secret=TOKEN)
        s3: Any = stack.services.s3
        s3.create_bucket(Bucket=BUCKET)
        services, tenant_id = stack.services, stack.tenant_id
        services.registry.register("node-0", node.rpc_url, node.peer_id, [node.multiaddr])
        for run in range(runs):  # sizes interleaved, so a change in the machine's load touches each alike
            for result in results:
                one_run(services, tenant_id, node.rpc_url, result.mib << 20, run, result)
    return results


def report(results: Sequence[SizeResult]) -> None:
    from chalicelib.config import Settings

    margin_seconds = Settings().invocation_margin_seconds
    rows = []
    for result in results:
        archive = result.mib_s(SUBJECTS[0])
        for subject in SUBJECTS:
            speed = result.mib_s(subject)
            rows.append(
                [
                    f"{result.mib} MiB file: {subject}",
                    f"{speed:.1f}",
                    " ".join(f"{s:.2f}" for s in result.seconds[subject]),
                    f"{speed / archive:.2f}x",
                ]
            )
    largest = results[-1]
    turn = TURN_SECONDS - margin_seconds
    ceiling = turn * largest.mib_s(SUBJECTS[0]) / 1024
    print_table(
        f"Archive throughput (MiB of CAR a second), median of {len(largest.seconds[SUBJECTS[0]])} runs a size",
        ["what", "MiB/s", "s each run", "speed vs archive"],
        rows,
        note=(
            f"largest CAR {largest.car_bytes:,} bytes; a {TURN_SECONDS} s turn ({turn} s of work) archives "
            f"~{ceiling:.1f} GiB at the {largest.mib} MiB speed; "
            f"1-min load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
        ),
    )


def main(argv: Sequence[str] | None = None) -> None:
    report(measure(QUICK_SIZES_MIB if quick_flag(argv) else SIZES_MIB))


if __name__ == "__main__":
    main()
