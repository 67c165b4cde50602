"""The pin worker and the archiver together: archive messages sent once a
request is pinned, and the archive's hold let go when the request is deleted
(DynamoDB and S3 on moto, fake Kubo nodes)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from chalicelib.cold.archive_repository import ARCHIVED
from chalicelib.cold.car import write_car
from chalicelib.cold.commp import commp
from chalicelib.storage.archive_repository import DynamoArchiveRepository
from tests.cold.dags import unixfs_file
from tests.cold.s3 import s3_client
from tests.worker.conftest import fleet, kubos, pin_request, queue  # noqa: F401 - fixtures

BUCKET = "pinning-test-archives"


@pytest.fixture
def archiving(fleet):  # noqa: F811
    """The fleet's services with ARCHIVE_BUCKET set (its worker and archiver built anew)."""
    fleet.settings = replace(fleet.settings, archive_bucket=BUCKET)
    for built in ("worker", "archiver", "archive_sweep"):
        fleet.__dict__.pop(built, None)
    fleet.__dict__["s3"] = s3_client()
    fleet.s3.create_bucket(Bucket=BUCKET)
    return fleet


def test_a_pinned_request_is_archived_and_its_deletion_orphans_the_archive(archiving, kubos, queue):  # noqa: F811
    # Given a DAG the fleet can fetch
    root, blocks = unixfs_file(random.Random(1).randbytes(600_000))
    cid, car = str(root), b"".join(write_car([root], blocks))
    for kubo in kubos.values():
        kubo.add_car(cid, car)
    # When a request for it is pinned
    record = archiving.pins.create("alice", pin_request(cid))
    queue.run_until_empty()
    # Then its archive is in S3, its figures in the request's info, and the request stays pinned
    stored = archiving.s3.get_object(Bucket=BUCKET, Key=f"archives/{cid}.car")["Body"].read()
    assert stored == car
    pin = archiving.store.get("alice", record.created_ms)
    assert pin.status == "pinned"
    assert (pin.info["cold"], pin.info["piece_cid"], pin.info["car_bytes"]) == (
        "archived",
        commp(car).cid_v1,
        str(len(car)),
    )
    archives = DynamoArchiveRepository(archiving.dynamo)
    assert (archives.state(cid).state, archives.state(cid).holders) == (ARCHIVED, 1)
    # When the request is deleted
    archiving.pins.delete("alice", record.request_id)
    queue.run_until_empty()
    # Then the archive has no holder left, orphaned for the sweep
    state = archives.state(cid)
    assert state.holders == 0 and state.orphaned_ms is not None
