"""The archiver on memory repositories, moto's S3 and fake Kubo nodes.

Every figure recorded is recomputed here from the object S3 holds, with the
cold package's own CommP (checked on published vectors in test_commp.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from chalicelib.cold.archive_repository import ARCHIVED, ARCHIVING, FAILED, ArchiveHolder
from chalicelib.cold.archive_sweep import ArchiveSweep
from chalicelib.cold.archiver import Archiver, AttemptFailed
from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.car import write_car
from chalicelib.cold.cids import verify_block
from chalicelib.cold.commp import commp
from chalicelib.config import Settings
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.kubo.client import KuboClient
from chalicelib.pins.pin import Pin
from chalicelib.queue.messages import ArchiveRequested
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.worker.outcomes import Done, Later
from tests.cold.dags import unixfs_file
from tests.cold.s3 import s3_client
from tests.support.fake_kubo import FakeKubo
from tests.support.memory.archives import MemoryArchives
from tests.support.memory.nodes import MemoryNodes
from tests.support.memory.pins import MemoryPinRepository
from tests.worker.conftest import PEERS

BUCKET = "pinning-test-archives"
PART = 5 * 1024 * 1024  # S3's smallest part, so a 6 MiB DAG takes two
GRACE = 3600
NODES = ("node-0", "node-1")


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


@dataclass
class Cold:
    archiver: Archiver
    archives: MemoryArchives
    pins: MemoryPinRepository
    kubos: dict[str, FakeKubo]
    clock: Clock
    metrics: io.StringIO
    settings: Settings
    s3: object

    def another_archiver(self) -> Archiver:
        return build_archiver(self)

    def sweep(self) -> int:
        return ArchiveSweep(self.archives, self.s3, BUCKET, "archives/", GRACE, 10, self.clock).run()


def build_archiver(cold: Cold) -> Archiver:
    """An archiver of its own (as another message's worker has) on the shared records and nodes."""
    registry = NodeRegistry(MemoryNodes(), cache_seconds=0)
    for i, (node_id, kubo) in enumerate(cold.kubos.items()):
        registry.register(node_id, kubo.url, PEERS[i], [f"/ip4/8.8.8.{i}/tcp/4001"])
    return Archiver(
        cold.settings,
        cold.archives,
        cold.s3,
        registry,
        lambda node: KuboClient(node.rpc_url),
        cold.pins,
        cold.clock,
        PART,
        metrics=cold.metrics,
    )


@pytest.fixture
def cold(aws) -> Iterator[Cold]:
    settings = replace(Settings(), archive_bucket=BUCKET, continue_delay_seconds=0, archive_attempts=3)
    s3 = s3_client()
    s3.create_bucket(Bucket=BUCKET)
    kubos = {node_id: FakeKubo(peer_id=PEERS[i]).start() for i, node_id in enumerate(NODES)}
    cold = Cold(None, MemoryArchives(), MemoryPinRepository(), kubos, Clock(), io.StringIO(), settings, s3)  # type: ignore[arg-type]
    cold.archiver = build_archiver(cold)
    yield cold
    for kubo in kubos.values():
        kubo.stop()


def a_dag(cold: Cold, size: int, seed: bytes = b"x") -> tuple[str, bytes, list]:
    """A UnixFS file of `size` bytes that both nodes hold; (CID, CAR, blocks)."""
    data = random.Random(seed).randbytes(size)  # no two leaves alike
    root, blocks = unixfs_file(data)
    car = b"".join(write_car([root], blocks))
    for kubo in cold.kubos.values():
        kubo.add_car(str(root), car, held=True)
    return str(root), car, blocks


def a_pinned_request(cold: Cold, cid: str, request_id: str, created_ms: int, size: int) -> ArchiveRequested:
    pin = Pin("alice", created_ms, request_id, "queued", cid, cid, node_ids=NODES)
    cold.pins.create(pin, OutboxMessage("shard#0", f"{created_ms}#e", "{}", created_ms))
    stored = cold.pins.get("alice", created_ms)
    info = {"dag_size": str(size), "replicas": ",".join(NODES), "status_details": "pinned on 2 nodes"}
    cold.pins.update(stored, status="pinned", info=info)
    return ArchiveRequested("alice", request_id, created_ms, cid, NODES)


def deadline(seconds: float = 20.0) -> float:
    return time.monotonic() + seconds


def stored_object(cold: Cold, key: str) -> bytes:
    return cold.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def bucket_keys(cold: Cold) -> list[str]:
    return [item["Key"] for item in cold.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def open_uploads(cold: Cold) -> list:
    return cold.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def test_a_pinned_dag_is_archived_with_its_figures_and_its_index_reads_every_block(cold):
    # Given a pinned request for a 6 MiB DAG (two parts)
    size = 6 * 1024 * 1024
    cid, car, blocks = a_dag(cold, size)
    message = a_pinned_request(cold, cid, "r1", 1000, size)
    # When it is archived
    assert cold.archiver.archive(message, "m1", deadline()) == Done()
    # Then S3 holds the CAR as exported, and every recorded figure is that of the object
    stored = stored_object(cold, f"archives/{cid}.car")
    assert stored == car
    piece = commp(stored)
    state = cold.archives.state(cid)
    assert state.state == ARCHIVED
    assert (state.car.car_bytes, state.car.car_sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
    assert (state.car.piece_cid_v1, state.car.piece_cid_v2, state.car.padded_size) == (
        piece.cid_v1,
        piece.cid_v2,
        piece.padded_size,
    )
    # And the index object finds every block by its offset in the CAR
    index = BlockIndex.from_bytes(stored_object(cold, f"archives/{cid}.idx"))
    assert len(index) == len(blocks)
    for block_cid, data in blocks:
        entry = index.lookup(block_cid)
        ranged = cold.s3.get_object(
            Bucket=BUCKET, Key=f"archives/{cid}.car", Range=f"bytes={entry.offset}-{entry.offset + entry.length - 1}"
        )["Body"].read()
        assert ranged == data
        verify_block(block_cid, ranged)
    # And the request shows its archive, still pinned
    pin = cold.pins.get("alice", 1000)
    assert pin.status == "pinned"
    assert {key: pin.info[key] for key in ("cold", "piece_cid", "piece_cid_v2", "car_sha256", "car_bytes")} == {
        "cold": "archived",
        "piece_cid": piece.cid_v1,
        "piece_cid_v2": piece.cid_v2,
        "car_sha256": hashlib.sha256(stored).hexdigest(),
        "car_bytes": str(len(stored)),
    }
    assert pin.info["padded_piece_size"] == str(piece.padded_size)
    assert pin.info["dag_size"] == str(size)  # the pin's own keys stay
    assert open_uploads(cold) == []


def test_a_second_request_for_the_cid_holds_the_archive_without_archiving_again(cold):
    # Given an archived CID
    cid, _, _ = a_dag(cold, 1000)
    cold.archiver.archive(a_pinned_request(cold, cid, "r1", 1000, 1000), "m1", deadline())
    exports = sum(len(kubo.calls_to("dag/export")) for kubo in cold.kubos.values())
    # When another request for it is pinned
    assert cold.archiver.archive(a_pinned_request(cold, cid, "r2", 2000, 1000), "m2", deadline()) == Done()
    # Then it holds the same archive, shown in its info, and nothing was exported again
    assert sum(len(kubo.calls_to("dag/export")) for kubo in cold.kubos.values()) == exports
    assert cold.archives.state(cid).holders == 2
    assert cold.pins.get("alice", 2000).info["piece_cid"] == cold.pins.get("alice", 1000).info["piece_cid"]


def test_a_cut_export_aborts_the_upload_and_records_nothing_archived_and_the_retry_succeeds(cold):
    # Given a DAG whose export is cut on every node (Kubo's error only in the trailer)
    cid, car, _ = a_dag(cold, 300_000)
    for kubo in cold.kubos.values():
        kubo.cut_export(cid, after_bytes=len(car) // 2)
    message = a_pinned_request(cold, cid, "r1", 1000, 300_000)
    # When it is archived, then the attempt fails, to be delivered again
    with pytest.raises(AttemptFailed, match="every node"):
        cold.archiver.archive(message, "m1", deadline())
    # And nothing is in the bucket, no upload is left open, the archive is still to do
    assert bucket_keys(cold) == [] and open_uploads(cold) == []
    state = cold.archives.state(cid)
    assert (state.state, state.lease, state.attempts) == (ARCHIVING, None, 1)
    assert "without" in state.last_error or "cut" in state.last_error
    assert cold.pins.get("alice", 1000).info["cold"] == "archiving"
    # When the nodes export it whole again (the trailer's error comes after the whole CAR)
    for kubo in cold.kubos.values():
        kubo.cut_export(cid, after_bytes=len(car))
    # Then the redelivery archives it
    assert cold.archiver.archive(message, "m1", deadline()) == Done()
    assert stored_object(cold, f"archives/{cid}.car") == car
    assert cold.pins.get("alice", 1000).info["cold"] == "archived"


def test_a_cut_export_on_one_node_is_archived_from_the_next(cold):
    cid, car, _ = a_dag(cold, 300_000)
    cold.kubos["node-0"].cut_export(cid, after_bytes=1000)
    assert cold.archiver.archive(a_pinned_request(cold, cid, "r1", 1000, 300_000), "m1", deadline()) == Done()
    assert stored_object(cold, f"archives/{cid}.car") == car
    assert len(cold.kubos["node-1"].calls_to("dag/export")) == 1


def test_of_two_archivers_racing_one_archives_and_the_other_waits(cold):
    # Given two requests for one CID, each message with its own archiver
    cid, _, _ = a_dag(cold, 300_000)
    first = a_pinned_request(cold, cid, "r1", 1000, 300_000)
    second = a_pinned_request(cold, cid, "r2", 2000, 300_000)
    other = cold.another_archiver()
    outcomes = []

    def meanwhile(operation: str) -> None:
        # When the second runs while the first has uploaded but not yet recorded
        if operation == "record_archived" and not outcomes:
            outcomes.append(other.archive(second, "m2", deadline()))

    cold.archives.step = meanwhile
    assert cold.archiver.archive(first, "m1", deadline()) == Done()
    # Then the second waits, without exporting, and finds the archive when it comes back
    assert isinstance(outcomes[0], Later) and "another worker" in outcomes[0].why
    assert sum(len(kubo.calls_to("dag/export")) for kubo in cold.kubos.values()) == 1
    assert other.archive(second, "m2", deadline()) == Done()
    assert cold.pins.get("alice", 2000).info["cold"] == "archived"
    assert bucket_keys(cold) == [f"archives/{cid}.car", f"archives/{cid}.idx"]


def test_the_last_request_gone_orphans_the_archive_and_the_sweep_deletes_it_after_the_grace(cold):
    # Given an archive held by one request
    cid, _, _ = a_dag(cold, 1000)
    cold.archiver.archive(a_pinned_request(cold, cid, "r1", 1000, 1000), "m1", deadline())
    # When the request is deleted (twice: a repeated unpin)
    cold.archiver.release(cid, "alice", "r1")
    cold.archiver.release(cid, "alice", "r1")
    assert cold.archives.state(cid).orphaned_ms == cold.clock.ms
    # Then no sweep deletes it within the grace
    cold.clock.ms += GRACE * 1000 - 1
    assert cold.sweep() == 0 and len(bucket_keys(cold)) == 2
    # And none after it once a holder came back
    cold.archiver.archive(a_pinned_request(cold, cid, "r2", 2000, 1000), "m2", deadline())
    cold.clock.ms += GRACE * 1000
    assert cold.sweep() == 0 and len(bucket_keys(cold)) == 2
    # When that one goes too, then the sweep after the grace deletes the objects and the record
    cold.archiver.release(cid, "alice", "r2")
    cold.clock.ms += GRACE * 1000 + 1
    assert cold.sweep() == 1
    assert bucket_keys(cold) == [] and cold.archives.state(cid) is None


def test_an_archive_for_a_request_deleted_before_its_hold_lets_the_hold_go(cold):
    cid, _, _ = a_dag(cold, 1000)
    message = ArchiveRequested("alice", "gone", 1000, cid, NODES)
    assert cold.archiver.archive(message, "m1", deadline()) == Done()
    state = cold.archives.state(cid)
    assert (state.holders, state.orphaned_ms) == (0, cold.clock.ms)
    assert ArchiveHolder(cid, "alice", "gone") not in cold.archives.holders
    assert bucket_keys(cold) == []


def test_after_every_attempt_failed_the_archive_is_failed_in_info_and_the_pin_stays_pinned(cold):
    # Given a DAG no node exports whole
    cid, car, _ = a_dag(cold, 300_000)
    for kubo in cold.kubos.values():
        kubo.cut_export(cid, after_bytes=100)
    message = a_pinned_request(cold, cid, "r1", 1000, 300_000)
    # When each of its attempts fails
    for _ in range(cold.settings.archive_attempts - 1):
        with pytest.raises(AttemptFailed):
            cold.archiver.archive(message, "m1", deadline())
    # Then the last one fails the archive, says why in info, and emits the metric
    assert cold.archiver.archive(message, "m1", deadline()) == Done()
    assert cold.archives.state(cid).state == FAILED
    pin = cold.pins.get("alice", 1000)
    assert pin.status == "pinned"
    assert pin.info["cold"] == "failed" and "dag/export" in pin.info["cold_error"]
    (line,) = cold.metrics.getvalue().splitlines()
    assert json.loads(line)["ArchiveFailed"] == 1
    assert open_uploads(cold) == []


def test_a_dag_too_large_for_the_turn_fails_the_attempt_before_any_export(cold):
    # Given a DAG a whole turn archives (5 GiB at 18 MiB/s: ~284 s) but not the 60 s left
    cid, _, _ = a_dag(cold, 1000)
    message = a_pinned_request(cold, cid, "r1", 1000, 5 * 1024**3)
    # When it is archived, Then the attempt fails (to be retried) before any export
    with pytest.raises(AttemptFailed, match="takes longer to archive") as failed:
        cold.archiver.archive(message, "m1", deadline(60))
    assert not failed.value.final
    assert cold.archives.state(cid).state != FAILED
    assert all(not kubo.calls_to("dag/export") for kubo in cold.kubos.values())


def test_a_dag_no_turn_can_archive_fails_at_once_with_the_reason(cold):
    # Given a DAG larger than a whole turn archives (100 GiB > 885 s x 18 MiB/s)
    cid, _, _ = a_dag(cold, 1000)
    message = a_pinned_request(cold, cid, "r1", 1000, 100 * 1024**3)
    # When it is archived, with all the time a turn has
    outcome = cold.archiver.archive(message, "m1", deadline(885))
    # Then the archive fails on this first attempt, saying why, and nothing was exported
    assert outcome == Done()
    assert cold.archives.state(cid).state == FAILED
    info = cold.pins.get("alice", 1000).info
    assert info["cold"] == "failed"
    assert info["cold_error"] == "too large to archive in one turn: 100.0 GiB > 15.6 GiB"
    assert all(not kubo.calls_to("dag/export") for kubo in cold.kubos.values())
