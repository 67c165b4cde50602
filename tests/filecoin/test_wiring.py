"""The Filecoin copies wired into the service on emulated AWS (moto): a copy
message goes to the archive queue and the archive function makes the copy
from the archive in S3; the schedule runs the tracker; all of it on the
DynamoDB tables."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest
from chalice.test import Client

from chalicelib.cold.archive_repository import ArchivedCar, ArchiveHolder, ArchiveLease
from chalicelib.config import Settings
from chalicelib.filecoin.backend import CopyState, Receipt
from chalicelib.filecoin.repository import CopyRecord, Want
from chalicelib.queue import messages
from chalicelib.queue.messages import FilecoinCopyRequested
from chalicelib.queue.publisher import is_archive
from chalicelib.storage.archive_repository import DynamoArchiveRepository
from chalicelib.wiring import Services, build_services
from chalicelib.worker.batch import QueuedMessage
from chalicelib.worker.outcomes import Done
from devstack.stack import scheduled_event
from tests.cold.s3 import s3_client
from tests.support.memory.filecoin_backend import MemoryBackend
from tests.worker.conftest import sqs_event

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
BUCKET = "archives"
CAR = b"the CAR of the CID"


@pytest.fixture
def staged(settings: Settings) -> Iterator[Services]:
    import app as app_module

    sqs = boto3.client("sqs", region_name="us-east-1")
    archive_queue_url = sqs.create_queue(QueueName="archives")["QueueUrl"]
    s3_client().create_bucket(Bucket=BUCKET)
    staged = replace(settings, archive_queue_url=archive_queue_url, archive_bucket=BUCKET, filecoin_spend_cap=10**9)
    services = build_services(staged)
    services.__dict__["s3"] = s3_client()  # see tests/cold/s3.py
    services.filecoin_backend = MemoryBackend.with_providers("f01", "f02", "f03")
    app_module.services.install(services)
    yield services
    app_module.services.install(None)


def archived(services: Services) -> ArchivedCar:
    """The CID archived in S3 and recorded, as the archiver leaves it."""
    s3_client().put_object(Bucket=BUCKET, Key=f"archives/{CID}.car", Body=CAR)
    archives = DynamoArchiveRepository(services.dynamo)
    archives.hold(ArchiveHolder(CID, "alice", "r1"))
    archives.take_lease(CID, ArchiveLease("m", 2**40), 0)
    car = ArchivedCar(f"archives/{CID}.car", f"archives/{CID}.idx", len(CAR), "ab", "baga", "bafkzcib", 128, 1)
    archives.record_archived(CID, "m", car)
    return car


def test_a_copy_message_is_long_work_and_reads_back_as_sent() -> None:
    body = messages.encode(FilecoinCopyRequested(CID, "f01", 2))
    assert is_archive(body)
    assert messages.decode(body) == FilecoinCopyRequested(CID, "f01", 2)
    assert messages.group_of(body) is None  # fleet work: no tenant's share


def test_the_archive_function_makes_a_pending_copy_from_the_archived_car(staged: Services) -> None:
    import app as app_module

    # Given an archived CID with a pending copy recorded
    archived(staged)
    copies = staged.filecoin_copies
    copies.add_copy(CopyRecord(CID, 0, Receipt("f02", "bafkzcib", CopyState.PENDING), 1, 1), 0)
    body = messages.encode(FilecoinCopyRequested(CID, "f02", 0))
    # When the archive function reads its message, twice (a redelivery)
    with Client(app_module.app) as client:
        for delivery in ("m1", "m2"):
            result = client.lambda_.invoke("archive_worker", sqs_event([QueuedMessage(delivery, body)])).payload
            assert result == {"batchItemFailures": []}
    # Then the provider holds the CAR once, and the receipt is recorded
    backend = staged.filecoin_backend
    assert isinstance(backend, MemoryBackend)
    assert backend.stored_bytes == {("f02", "bafkzcib"): CAR}
    (record,) = copies.copies(CID)
    assert (record.receipt.state, record.receipt.data_set_id, record.attempt) == (CopyState.ADDING, "ds-f02", 1)


def test_the_schedule_runs_the_tracker_on_the_tables(staged: Services) -> None:
    import app as app_module

    # Given an archived CID a request wants 2 copies of
    archived(staged)
    staged.filecoin_copies.want(CID, Want("alice", "r1", 2), 0)
    # When the schedule runs, then it begins 2 copies and sends their messages to the archive queue
    report = app_module.track_filecoin_copies(scheduled_event("track_filecoin_copies"), None)
    assert (report["visited"], report["made"]) == (1, 2)
    assert {r.receipt.state for r in staged.filecoin_copies.copies(CID)} == {CopyState.PENDING}
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = staged.settings.archive_queue_url
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(messages.decode(m["Body"]).kind for m in got) == ["filecoin_copy", "filecoin_copy"]


def test_without_a_backend_nothing_is_tracked_or_wanted(settings: Settings) -> None:
    import app as app_module

    services = build_services(replace(settings, archive_bucket=BUCKET))
    services.__dict__["s3"] = s3_client()  # see tests/cold/s3.py
    app_module.services.install(services)
    try:
        assert app_module.track_filecoin_copies(scheduled_event("track_filecoin_copies"), None) == {}
        assert (services.copy_wants, services.copy_maker, services.filecoin_tracker) == (None, None, None)
        # And a copy message still queued is dropped, not failed
        assert services.worker.handle(FilecoinCopyRequested(CID, "f01", 0), "m1", time.monotonic() + 5) == Done()
    finally:
        app_module.services.install(None)
