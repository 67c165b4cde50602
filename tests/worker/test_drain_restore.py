"""Restores from the cold archive where the service repairs pins: the drain
of a removed node, the reconciler, and a `restore` message, when every hot
copy is gone (DynamoDB and S3 on moto, fake Kubo nodes)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace

import pytest

from chalicelib.cold.car import write_car
from chalicelib.cold.restorer import HANDED_OFF
from chalicelib.queue.messages import Rereplicate, RestoreRequested, decode, encode
from chalicelib.worker.outcomes import Done, Later
from tests.cold.dags import unixfs_file
from tests.cold.s3 import s3_client
from tests.worker.conftest import current, holders, holding, info_of, pin_request, placed

BUCKET = "pinning-test-archives"


@pytest.fixture
def cold(fleet, worker_clock):
    """The fleet's services with ARCHIVE_BUCKET set (the worker, archiver,
    restorer and reconciler built anew), its worker's view of the fleet
    old enough for a drain to end."""
    fleet.settings = replace(fleet.settings, archive_bucket=BUCKET)
    for built in ("worker", "archiver", "restorer", "reconciler", "archive_sweep"):
        fleet.__dict__.pop(built, None)
    fleet.__dict__["s3"] = s3_client()
    fleet.s3.create_bucket(Bucket=BUCKET)
    worker_clock.advance(120)
    return fleet


# A pin worker's turn, and the archive function's (15 minutes less the margin).
SHORT_TURN, LONG_TURN = 20, 885
LONG_TURN_NOTE = "from the cold archive in a long turn"


def slow_restores(cold, car: bytes) -> None:
    """Restores as slow as a 2 GiB CAR's at 32 MiB/s: `car` imports in 64 s,
    more than a short turn has, well within a long one."""
    cold.settings = replace(cold.settings, restore_bytes_per_second=len(car) // 64)
    for built in ("worker", "restorer", "reconciler"):
        cold.__dict__.pop(built, None)


def archived_and_lost(cold, kubos, queue, car: bytes | None = None):
    """A request pinned and archived, whose CID every node then lost (and
    nothing can provide): its record, CID, CAR and replicas. `car`, if
    given, replaces the archived CAR in S3 (a tampered archive)."""
    root, blocks = unixfs_file(random.Random(5).randbytes(300_000), chunk=64 * 1024)
    cid, whole = str(root), b"".join(write_car([root], blocks))
    for kubo in kubos.values():
        kubo.add_car(cid, whole)
    record = cold.pins.create("alice", pin_request(cid))
    queue.run_until_empty()
    assert info_of(current(cold, record))["cold"] == "archived"
    if car is not None:
        cold.s3.put_object(Bucket=BUCKET, Key=f"archives/{cid}.car", Body=car)
    for kubo in kubos.values():
        kubo.lose(cid)
    return record, cid, whole, sorted(info_of(current(cold, record))["replicas"].split(","))


def test_a_drained_node_whose_survivor_lost_the_pin_is_replaced_from_the_archive(cold, kubos, queue):
    # Given a pinned, archived request whose CID both replicas lost
    record, cid, car, (gone, survivor) = archived_and_lost(cold, kubos, queue)
    (spare,) = [node_id for node_id in kubos if node_id not in (gone, survivor)]
    # When one replica is removed and drained
    assert cold.removal.remove(gone)
    queue.run_until_empty(rounds=6)
    # Then the new node has it from the archive, the very CAR, and the request says so, still pinned
    stored = current(cold, record)
    assert stored.status == "pinned"
    assert info_of(stored)["status_details"].startswith(f"restored from the cold archive to {spare}; pinned on 2 nodes")
    assert cid in kubos[spare].pinned and kubos[spare].car_of(cid) == car
    assert [call.path for call in kubos[spare].calls if call.path in ("pin/add", "dag/import")] == ["dag/import"]


def test_the_reconciler_restores_a_pin_missing_on_every_replica(cold, kubos, queue, monkeypatch):
    # Given a pinned, archived request whose CID both replicas lost
    record, cid, car, replicas = archived_and_lost(cold, kubos, queue)
    # and both replicas looking for a live copy before either restores: the reconciler visits the nodes at
    # once, and one that restored first would be copied from, which these fake nodes cannot serve
    both_looked = threading.Barrier(len(replicas), timeout=10)
    restore = cold.restorer.restore

    def restore_once_both_looked(node, cid, car, deadline):
        both_looked.wait()
        return restore(node, cid, car, deadline)

    monkeypatch.setattr(cold.restorer, "restore", restore_once_both_looked)
    # When the reconciler runs
    report = cold.reconciler.run(time.monotonic() + 20)
    # Then both replicas have it back from the archive, and the request says so
    assert (report.missing_found, report.repaired) == (2, 2)
    assert holding(kubos, cid) == replicas
    assert all(kubos[node_id].car_of(cid) == car for node_id in replicas)
    stored = current(cold, record)
    assert stored.status == "pinned"
    assert info_of(stored)["status_details"].startswith("restored from the cold archive to node-")


def test_a_restore_message_makes_the_request_hot_again_once(cold, kubos, queue):
    # Given a pinned, archived request whose CID every node lost
    record, cid, _, replicas = archived_and_lost(cold, kubos, queue)
    message = RestoreRequested(record.tenant_id, record.request_id, record.created_ms, cid, "retrieved")
    # When a restore message is handled
    cold.publisher.send(encode(message))
    queue.run_until_empty()
    # Then its placement nodes have it again, and the request names them
    assert holding(kubos, cid) == sorted(placed(cold, cid)) == replicas
    assert (
        info_of(current(cold, record))["status_details"] == f"restored from the cold archive to {', '.join(replicas)}"
    )
    # And a second one finds it hot and imports nothing
    imports = sum(len(kubo.calls_to("dag/import")) for kubo in kubos.values())
    cold.publisher.send(encode(message))
    queue.run_until_empty()
    assert sum(len(kubo.calls_to("dag/import")) for kubo in kubos.values()) == imports


def test_a_drain_waits_for_a_deep_archive_thaw_and_the_request_says_so(cold, kubos, queue):
    # Given an archived request whose CID both replicas lost, its archive moved to Deep Archive
    record, cid, _, (gone, _survivor) = archived_and_lost(cold, kubos, queue)
    key = f"archives/{cid}.car"
    cold.s3.copy_object(Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": key}, StorageClass="DEEP_ARCHIVE")
    # When a replica is drained: its drain message, then the re-replication
    assert cold.removal.remove(gone)
    ran = [queue.kinds(queue.run_once()[0]) for _ in range(2)]
    assert ran[0] == ["drain"] and "rereplicate" in ran[1]
    # Then the request stays pinned, saying it waits for the thaw, and no node was sent anything
    stored = current(cold, record)
    assert stored.status == "pinned"
    assert info_of(stored)["status_details"].startswith("waiting for the cold archive to thaw (DEEP_ARCHIVE")
    assert all(kubo.calls_to("dag/import") == [] for kubo in kubos.values())
    # And once S3 made its copy (moto's thaw is at once), the re-replication's next delivery restores it
    queue.run_until_empty(rounds=6)
    assert info_of(current(cold, record))["status_details"].startswith("restored from the cold archive to ")


def test_a_tampered_archive_is_not_restored_and_the_request_fails_saying_why(cold, kubos, queue):
    # Given an archived request whose CID every node lost, its archive then changed in one block
    root, blocks = unixfs_file(random.Random(5).randbytes(300_000), chunk=64 * 1024)
    cid_bytes, data = blocks[2]
    tampered = b"".join(write_car([root], [*blocks[:2], (cid_bytes, b"x" + data[1:]), *blocks[3:]]))
    record, cid, _, (first, second) = archived_and_lost(cold, kubos, queue, car=tampered)
    # When both replicas are removed
    cold.removal.remove(first)
    cold.removal.remove(second)
    queue.run_until_empty(rounds=8)
    # Then nothing unverified was pinned anywhere, and the request failed saying why
    assert holding(kubos, cid) == []
    stored = current(cold, record)
    assert stored.status == "failed"
    assert "its cold archive could not be restored: the archive of" in info_of(stored)["failed_reason"]
    assert "failed verification" in info_of(stored)["failed_reason"]


def _with_tier(cold, record, tier: str):
    stored = current(cold, record)
    return cold.store.update(stored, info={**stored.info, "tier": tier})


def test_a_restore_waits_while_the_cooling_sweep_lets_the_hot_copies_go(cold, kubos, queue):
    # Given an archived request the cooling sweep is moving to the cold tier
    record, cid, _, _ = archived_and_lost(cold, kubos, queue)
    _with_tier(cold, record, "cooling")
    # When a restore message is handled
    outcome = cold.worker.handle(
        RestoreRequested(record.tenant_id, record.request_id, record.created_ms, cid, "retrieved"),
        "t",
        time.monotonic() + 20,
    )
    # Then it comes back later, having taken no hold and imported nothing
    assert "moving to the cold tier" in outcome.why
    assert holding(kubos, cid) == []
    assert not any(kubo.calls_to("dag/import") for kubo in kubos.values())


def test_a_cold_request_restored_is_hot_again_in_its_info(cold, kubos, queue):
    # Given a cold request (its hot copies let go by the cooling sweep)
    record, cid, _, replicas = archived_and_lost(cold, kubos, queue)
    _with_tier(cold, record, "cold")
    # When it is restored
    cold.publisher.send(
        encode(RestoreRequested(record.tenant_id, record.request_id, record.created_ms, cid, "retrieved"))
    )
    queue.run_until_empty()
    # Then its info no longer says it lives in the cold tier
    info = info_of(current(cold, record))
    assert "tier" not in info
    assert info["status_details"] == f"restored from the cold archive to {', '.join(replicas)}"


def test_a_drain_hands_a_restore_too_long_for_its_turn_to_a_long_turn(cold, kubos, queue):
    # Given an archived request whose CID both replicas lost, its CAR 2 GiB's worth at the restore speed
    record, cid, car, (gone, _survivor) = archived_and_lost(cold, kubos, queue)
    slow_restores(cold, car)
    assert cold.removal.remove(gone)
    message = Rereplicate(record.tenant_id, record.request_id, record.created_ms, cid, gone)
    # When its re-replication runs in a pin worker's turn
    outcome = cold.worker.handle(message, "t1", time.monotonic() + SHORT_TURN)
    # Then the restore is handed off: one restore message, the re-replication back once a long turn could be over
    import_seconds = -(-len(car) // cold.settings.restore_bytes_per_second)  # 64 s, rounded up
    assert isinstance(outcome, Later) and outcome.delay_seconds == import_seconds and outcome.next is None
    (restore,) = outcome.spawned
    assert (restore.kind, restore.request_id, restore.cid) == ("restore", record.request_id, cid)
    info = info_of(current(cold, record))
    assert info["status_details"].startswith("restoring ") and info["status_details"].endswith(LONG_TURN_NOTE)
    assert not any(kubo.calls_to("dag/import") for kubo in kubos.values())
    # And the removed node's hold stays; the drain's next pass sends no second restore while one is in flight
    assert holders(gone, cid) == 1
    again = cold.worker.handle(message, "t2", time.monotonic() + SHORT_TURN)
    assert isinstance(again, Later) and again.spawned == ()
    # When the restore message runs in the archive function's long turn
    assert cold.worker.handle(restore, "t3", time.monotonic() + LONG_TURN) == Done()
    # Then its placement nodes hold the very CAR, the request names them, the hand-off is over
    targets = placed(cold, cid)
    assert holding(kubos, cid) == sorted(targets) and all(kubos[node_id].car_of(cid) == car for node_id in targets)
    info = info_of(current(cold, record))
    assert info["status_details"] == f"restored from the cold archive to {', '.join(targets)}"
    assert HANDED_OFF not in info
    # And the re-replication's next delivery records the replicas and only then lets the removed node's hold go
    assert cold.worker.handle(message, "t4", time.monotonic() + SHORT_TURN) == Done()
    stored = current(cold, record)
    assert stored.status == "pinned" and info_of(stored)["replicas"].split(",") == targets
    assert gone not in stored.node_ids and holders(gone, cid) == 0


def test_the_reconciler_hands_a_restore_too_long_for_its_run_to_a_long_turn_once(cold, kubos, queue):
    # Given an archived request whose CID both replicas lost, its CAR 2 GiB's worth at the restore speed
    record, cid, car, replicas = archived_and_lost(cold, kubos, queue)
    slow_restores(cold, car)
    sent: list[RestoreRequested] = []
    cold.reconciler.hand_off = sent.append
    # When the reconciler runs (both nodes' runs at once find it missing)
    report = cold.reconciler.run(time.monotonic() + SHORT_TURN)
    # Then one restore message is handed off for the request, the repairs stay, nothing is imported
    assert (report.missing_found, report.repaired) == (2, 0)
    assert [(message.request_id, message.cid) for message in sent] == [(record.request_id, cid)]
    assert info_of(current(cold, record))["status_details"].endswith(LONG_TURN_NOTE)
    assert not any(kubo.calls_to("dag/import") for kubo in kubos.values())
    # And a run while it is in flight sends no other
    cold.reconciler.run(time.monotonic() + SHORT_TURN)
    assert len(sent) == 1
    # When the restore message runs in a long turn
    assert cold.worker.handle(sent[0], "t1", time.monotonic() + LONG_TURN) == Done()
    # Then both replicas have it back, and the next run finds nothing missing
    assert holding(kubos, cid) == replicas
    assert cold.reconciler.run(time.monotonic() + SHORT_TURN).missing_found == 0
    assert (
        info_of(current(cold, record))["status_details"] == f"restored from the cold archive to {', '.join(replicas)}"
    )


def test_a_pin_whose_restore_is_too_long_for_its_turn_hands_it_off_and_is_pinned_after(cold, kubos, queue):
    # Given a CID archived for one request and then lost by every node, its CAR 2 GiB's worth at the restore speed
    _, cid, car, _ = archived_and_lost(cold, kubos, queue)
    slow_restores(cold, car)
    # And a new request for it, its pin message read from the queue
    record = cold.pins.create("bob", pin_request(cid))
    (queued,) = queue.receive()
    message = decode(queued.body)
    # When the pin message runs in a pin worker's turn
    outcome = cold.worker.handle(message, "t1", time.monotonic() + SHORT_TURN)
    # Then the restore is handed off: one restore message, the pin's next turn after the import time, nothing imported
    assert isinstance(outcome, Later) and outcome.next == replace(message, turn=1)
    (restore,) = outcome.spawned
    assert (restore.kind, restore.request_id) == ("restore", record.request_id)
    stored = current(cold, record)
    assert stored.status == "pinning" and info_of(stored)["status_details"].endswith(LONG_TURN_NOTE)
    assert not any(kubo.calls_to("dag/import") for kubo in kubos.values())
    # And its next turn, before the restore ran, sends no other
    again = cold.worker.handle(outcome.next, "t2", time.monotonic() + SHORT_TURN)
    assert isinstance(again, Later) and again.spawned == ()
    # When the restore message runs in a long turn, then the pin's next turn
    assert cold.worker.handle(restore, "t3", time.monotonic() + LONG_TURN) == Done()
    assert current(cold, record).status == "pinning"  # the pin message records it
    assert isinstance(cold.worker.handle(again.next, "t4", time.monotonic() + SHORT_TURN), Done)
    # Then the request is pinned on its placement nodes, which hold the very CAR
    stored = current(cold, record)
    assert stored.status == "pinned" and info_of(stored)["replicas"].split(",") == placed(cold, cid)
    assert all(kubos[node_id].car_of(cid) == car for node_id in placed(cold, cid))
    assert HANDED_OFF not in info_of(stored)
