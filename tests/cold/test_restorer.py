"""Restores from the cold archive (chalicelib.cold.restorer), on memory archive
records, S3 on moto and fake Kubo nodes: every block verified before it
reaches a node, a bad archive refused with nothing pinned, a thaw waited
for, and without an archive the copy as it always was."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import pytest

from chalicelib.cold.archive_objects import ArchiveObjects
from chalicelib.cold.archive_repository import ArchivedCar, ArchiveHolder, ArchiveLease
from chalicelib.cold.car import CarReader, encode_header, encode_section, write_car
from chalicelib.cold.cids import Cid
from chalicelib.cold.restorer import (
    HAND_OFF_FRESH_MS,
    HANDED_OFF,
    LONGEST_TURN_SECONDS,
    MAX_DELAY_SECONDS,
    LongRestore,
    Restorer,
    RestoreRefused,
    copy_or_restore,
    hand_off,
    verified_car,
)
from chalicelib.config import Settings
from chalicelib.fleet.node import Node
from chalicelib.kubo.client import KuboClient
from tests.cold.dags import unixfs_file
from tests.cold.s3 import s3_client
from tests.support.fake_kubo import FakeKubo
from tests.support.memory.archives import MemoryArchives

BUCKET = "pinning-test-archives"


@dataclass
class Cold:
    """A restorer over memory records, moto's S3 and two fake nodes."""

    s3: object
    archives: MemoryArchives
    kubos: dict[str, FakeKubo]
    restorer: Restorer
    metrics: io.StringIO
    copies: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def node(self, node_id: str, healthy: bool = True) -> Node:
        kubo = self.kubos[node_id]
        return Node(
            node_id, kubo.url, f"peer-{node_id}", (f"/ip4/8.8.8.8/tcp/4001/p2p/peer-{node_id}",), healthy=healthy
        )

    def archive(self, root: Cid, car: bytes, storage_class: str = "STANDARD") -> ArchivedCar:
        """`car` archived as the CAR of `root`."""
        cid = str(root)
        archived = ArchivedCar(f"archives/{cid}.car", f"archives/{cid}.idx", len(car), "", "", "", 0, 0)
        self.s3.put_object(Bucket=BUCKET, Key=archived.car_key, Body=car, StorageClass=storage_class)  # type: ignore[attr-defined]
        self.archives.hold(ArchiveHolder(cid, "alice", "request-1"))
        self.archives.take_lease(cid, ArchiveLease("archiver", 10**15), 0)
        self.archives.record_archived(cid, "archiver", archived)
        return archived

    def copy(self, node: Node, sources: Sequence[str]) -> None:
        """The pin path, recorded: pins on the fake node as pin/add does."""
        self.copies.append((node.node_id, tuple(sources)))
        KuboClient(node.rpc_url).pin_add(str(_SAMPLE_ROOT), stall_seconds=0.3, deadline=time.monotonic() + 5)

    def emitted(self) -> list[str]:
        """The metrics emitted, by name (one line each)."""
        lines = [json.loads(line) for line in self.metrics.getvalue().splitlines()]
        return [metric["Name"] for line in lines for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]]


@pytest.fixture
def cold(settings: Settings) -> Iterator[Cold]:
    s3 = s3_client()
    s3.create_bucket(Bucket=BUCKET)
    archives = MemoryArchives()
    kubos = {node_id: FakeKubo().start() for node_id in ("node-1", "node-2")}
    metrics = io.StringIO()
    restorer = Restorer(
        replace(settings, archive_bucket=BUCKET),
        archives,
        ArchiveObjects(s3, BUCKET),
        lambda node: KuboClient(node.rpc_url),
        metrics=metrics,
    )
    yield Cold(s3, archives, kubos, restorer, metrics)
    for kubo in kubos.values():
        kubo.stop()


def _dag(size: int = 700_000, seed: int = 3) -> tuple[Cid, list[tuple[Cid, bytes]], bytes]:
    root, blocks = unixfs_file(random.Random(seed).randbytes(size), chunk=64 * 1024)
    return root, blocks, b"".join(write_car([root], blocks))


_SAMPLE_ROOT, _SAMPLE_BLOCKS, _SAMPLE_CAR = _dag()


def _tampered(blocks: list[tuple[Cid, bytes]], at: int) -> bytes:
    """The CAR with one byte of block `at` changed (its CID kept)."""
    cid, data = blocks[at]
    changed = [*blocks[:at], (cid, bytes([data[0] ^ 1]) + data[1:]), *blocks[at + 1 :]]
    return b"".join(write_car([blocks[0][0]], changed))


def _eventually(read: Callable[[], list[str]], seconds: float = 5.0) -> list[str]:
    """What `read` gives once it is not empty (the fake node's thread records a call after its client moved on)."""
    until = time.monotonic() + seconds
    while not (found := read()) and time.monotonic() < until:
        time.sleep(0.01)
    return found


def _far() -> float:
    return time.monotonic() + 60


def test_an_archive_is_restored_onto_a_node_every_block_verified_and_pinned(cold: Cold) -> None:
    # Given an archived DAG and a node that holds nothing of it
    archived = cold.archive(_SAMPLE_ROOT, _SAMPLE_CAR)
    cid = str(_SAMPLE_ROOT)
    # When it is restored onto the node
    cold.restorer.restore(cold.node("node-1"), cid, archived, _far())
    # Then the node pins it, holds the very CAR, and the restore is counted
    assert cid in cold.kubos["node-1"].pinned
    assert cold.kubos["node-1"].car_of(cid) == _SAMPLE_CAR
    assert cold.emitted() == ["Restored"]


def test_only_verified_bytes_go_out_and_a_tampered_block_stops_them(cold: Cold) -> None:
    # Given a CAR whose fifth block was changed after it was archived
    car = _tampered(_SAMPLE_BLOCKS, 5)
    fifth = list(CarReader(verify=False).blocks([car]))[5]
    # When it passes through the verifier in small chunks
    sent = bytearray()
    with pytest.raises(RestoreRefused, match="failed verification"):
        for chunk in verified_car(str(_SAMPLE_ROOT), (car[i : i + 1000] for i in range(0, len(car), 1000))):
            sent += chunk
    # Then every byte sent came before the changed block's section, and all of them were the CAR's
    assert 0 < len(sent) < fifth.offset - len(fifth.cid.binary)
    assert car.startswith(bytes(sent))


def test_a_tampered_archive_is_refused_counted_and_nothing_is_pinned(cold: Cold) -> None:
    # Given an archive with one changed block
    archived = cold.archive(_SAMPLE_ROOT, _tampered(_SAMPLE_BLOCKS, 3))
    # When it is restored onto a node
    with pytest.raises(RestoreRefused, match="failed verification"):
        cold.restorer.restore(cold.node("node-1"), str(_SAMPLE_ROOT), archived, _far())
    # Then the node was sent a cut body (it sees the hang-up in its own time) and pins nothing; the failure is counted
    kubo = cold.kubos["node-1"]
    assert _eventually(lambda: [call.path for call in kubo.calls]) == ["dag/import"]
    assert kubo.pinned == set() and kubo.car_of(str(_SAMPLE_ROOT)) is None
    assert cold.emitted() == ["RestoreFailed"]


def test_an_archive_cut_between_two_blocks_is_refused_before_its_end_reaches_the_node(cold: Cold) -> None:
    # Given an archive that ends cleanly after a section, without the DAG's last blocks
    cut = encode_header([_SAMPLE_ROOT]) + b"".join(encode_section(cid, data) for cid, data in _SAMPLE_BLOCKS[:-2])
    archived = cold.archive(_SAMPLE_ROOT, cut)
    # When it is restored
    with pytest.raises(RestoreRefused, match="lacks 2 block"):
        cold.restorer.restore(cold.node("node-1"), str(_SAMPLE_ROOT), archived, _far())
    # Then nothing is pinned (Kubo would pin the root of a whole-looking CAR)
    assert cold.kubos["node-1"].pinned == set()


def test_a_car_of_another_root_is_refused(cold: Cold) -> None:
    other, _, other_car = _dag(size=100_000, seed=9)
    archived = cold.archive(_SAMPLE_ROOT, other_car)
    with pytest.raises(RestoreRefused, match="other roots"):
        cold.restorer.restore(cold.node("node-1"), str(_SAMPLE_ROOT), archived, _far())
    assert cold.kubos["node-1"].pinned == set()


def test_a_deep_archive_is_thawed_first_and_the_wait_is_shown_capped_to_sqs(cold: Cold) -> None:
    # Given an archive a lifecycle rule moved to Deep Archive, and no live copy
    cold.archive(_SAMPLE_ROOT, _SAMPLE_CAR, storage_class="DEEP_ARCHIVE")
    # When a node is to get it
    done = copy_or_restore(
        cold.restorer, str(_SAMPLE_ROOT), [cold.node("node-1")], [cold.node("node-2")], (), _far(), cold.copy
    )
    # Then it waits for the thaw (SQS's longest delay at a time), nothing was sent to the node
    assert done.wait is not None and done.wait.delay_seconds == MAX_DELAY_SECONDS
    assert "waiting for the cold archive to thaw (DEEP_ARCHIVE" in done.wait.details
    assert cold.kubos["node-1"].calls_to("dag/import") == [] and cold.copies == []
    # And once S3 made its copy (moto's is at once), the next attempt restores
    again = copy_or_restore(
        cold.restorer, str(_SAMPLE_ROOT), [cold.node("node-1")], [cold.node("node-2")], (), _far(), cold.copy
    )
    assert again.restored == ["node-1"] and str(_SAMPLE_ROOT) in cold.kubos["node-1"].pinned


def test_with_no_live_copy_the_archive_is_restored_on_every_target(cold: Cold) -> None:
    # Given an archive, and a holder that is down (it does not answer)
    cold.archive(_SAMPLE_ROOT, _SAMPLE_CAR)
    cold.kubos["node-2"].down()
    # When both nodes are to hold it
    done = copy_or_restore(
        cold.restorer,
        str(_SAMPLE_ROOT),
        [cold.node("node-1"), cold.node("node-2")],
        [cold.node("node-2")],
        ("/ip4/8.8.4.4/tcp/4001/p2p/origin",),
        _far(),
        cold.copy,
    )
    # Then the one that answers is restored, the other's failure reported; nothing was fetched
    assert done.restored == ["node-1"] and len(done.errors) == 1 and done.live == []
    assert cold.copies == []


def test_a_live_copy_is_copied_from_and_the_archive_left_alone(cold: Cold) -> None:
    # Given an archive, and a holder that still pins the CID
    cold.archive(_SAMPLE_ROOT, _SAMPLE_CAR)
    for kubo in cold.kubos.values():
        kubo.add_car(str(_SAMPLE_ROOT), _SAMPLE_CAR)
    cold.kubos["node-2"].pinned.add(str(_SAMPLE_ROOT))
    cold.archives.step = lambda operation: pytest.fail(f"the archive was read ({operation})")
    # When node-1 is to hold it
    done = copy_or_restore(
        cold.restorer, str(_SAMPLE_ROOT), [cold.node("node-1")], [cold.node("node-2")], ("/origin",), _far(), cold.copy
    )
    # Then it is copied, dialing the live holder first
    assert done.restored == [] and done.errors == []
    assert cold.copies == [("node-1", (cold.node("node-2").multiaddrs[0], "/origin"))]


def test_without_an_archive_the_copy_goes_as_before(cold: Cold) -> None:
    # Given no archive and holders that lost the CID
    for kubo in cold.kubos.values():
        kubo.add_car(str(_SAMPLE_ROOT), _SAMPLE_CAR)
    # When node-1 is to hold it
    done = copy_or_restore(
        cold.restorer, str(_SAMPLE_ROOT), [cold.node("node-1")], [cold.node("node-2")], ("/origin",), _far(), cold.copy
    )
    # Then it is fetched from the origins, as a pin is
    assert done.restored == [] and done.errors == [] and done.refused is None
    assert cold.copies == [("node-1", ("/origin",))]
    assert cold.kubos["node-1"].calls_to("dag/import") == []


def test_without_a_cold_tier_every_holder_is_dialed_and_nobody_asked(cold: Cold) -> None:
    done = copy_or_restore(
        None, str(_SAMPLE_ROOT), [cold.node("node-1")], [cold.node("node-2")], ("/origin",), _far(), cold.copy
    )
    assert done.live is None and done.errors  # nothing to fetch it from: the pin stalls
    assert cold.copies == [("node-1", (cold.node("node-2").multiaddrs[0], "/origin"))]
    assert cold.kubos["node-2"].calls == []


def test_a_refused_archive_falls_back_to_the_network(cold: Cold) -> None:
    # Given a tampered archive, and origins that can still provide the CID
    cold.archive(_SAMPLE_ROOT, _tampered(_SAMPLE_BLOCKS, 1))
    cold.kubos["node-1"].add_car(str(_SAMPLE_ROOT), _SAMPLE_CAR)
    # When node-1 is to hold it
    done = copy_or_restore(cold.restorer, str(_SAMPLE_ROOT), [cold.node("node-1")], [], ("/origin",), _far(), cold.copy)
    # Then the refusal is reported and counted, and the node fetched it instead
    assert isinstance(done.refused, RestoreRefused) and done.errors == []
    assert cold.copies == [("node-1", ("/origin",))]
    assert cold.emitted() == ["RestoreFailed"]


def test_a_car_larger_than_the_turn_left_waits_for_a_new_turn_and_one_no_turn_fits_is_refused(cold: Cold) -> None:
    settings = replace(Settings(), restore_bytes_per_second=1024 * 1024, continue_delay_seconds=7)
    restorer = Restorer(settings, cold.archives, ArchiveObjects(cold.s3, BUCKET), lambda node: KuboClient(node.rpc_url))  # type: ignore[arg-type]
    car = ArchivedCar("k.car", "k.idx", 20 * 1024 * 1024, "", "", "", 0, 0)
    # 20 MiB at 1 MiB/s: 10 s left is too little; a new turn comes back after the continue delay
    with pytest.raises(LongRestore) as wait:
        restorer.check_time(car, time.monotonic() + 10)
    assert wait.value.delay_seconds == 7 and "continuing in a new turn" in wait.value.details
    # (a long turn imports it in 20 s)
    assert (wait.value.car_bytes, wait.value.import_seconds) == (20 * 1024 * 1024, 20)
    restorer.check_time(car, time.monotonic() + 30)
    # and a CAR no 15-minute turn (less the 15 s margin) can import is refused, saying why
    huge = replace(car, car_bytes=(LONGEST_TURN_SECONDS + 1) * 1024 * 1024)
    with pytest.raises(RestoreRefused, match=r"too large to restore in one turn: .* the longest worker turn \(885 s\)"):
        restorer.check_time(huge, time.monotonic() + 10_000)


def test_a_hand_off_is_sent_once_while_in_flight_and_again_once_its_note_is_stale() -> None:
    wait = LongRestore("too long for this turn", 30, 2 * 1024**3, 2048)
    # Given a request with no hand-off: one is sent, noted with its time, looked at again after 15 minutes at most
    first = hand_off({"replicas": "node-1"}, wait, 1_000)
    assert first.send and first.delay_seconds == MAX_DELAY_SECONDS
    assert first.info == {
        "replicas": "node-1",
        "status_details": "restoring 2.0 GiB from the cold archive in a long turn",
        HANDED_OFF: "1000",
    }
    # When it is asked again while that one is in flight: the note is kept, nothing is sent
    again = hand_off(first.info, wait, 1_000 + HAND_OFF_FRESH_MS - 1)
    assert not again.send and again.info == first.info
    # When the note is stale (its message lost for good): another is sent
    stale = hand_off(first.info, wait, 1_000 + HAND_OFF_FRESH_MS)
    assert stale.send and stale.info[HANDED_OFF] == str(1_000 + HAND_OFF_FRESH_MS)
