"""The pin worker's function hands an archive message it reads (queued there
before the stage had an archive queue) on to the archive queue, and pins the
rest of its batch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest

from chalicelib.config import Settings
from chalicelib.queue import messages
from chalicelib.queue.messages import ArchiveRequested, UnpinRequested
from chalicelib.wiring import Services, build_services
from chalicelib.worker.batch import QueuedMessage
from tests.worker.conftest import sqs_event

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.fixture
def staged(settings: Settings) -> Iterator[Services]:
    archive_queue_url = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="archives")["QueueUrl"]
    services = build_services(replace(settings, archive_queue_url=archive_queue_url))
    import app as app_module

    app_module.services.install(services)
    yield services
    app_module.services.install(None)


def bodies_on(queue_url: str) -> list[str]:
    got = boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [message["Body"] for message in got.get("Messages", [])]


def test_the_pin_worker_forwards_an_archive_message_to_the_archive_queue(staged: Services) -> None:
    from chalice.test import Client

    import app as app_module

    # given: an archive message and an unpin (of no node: nothing to call) on the pin queue
    archive = messages.encode(ArchiveRequested("tenant-a", "r1", 1, CID, ("node-1",)))
    unpin = messages.encode(UnpinRequested("tenant-a", "r2", CID, ()))
    batch = [QueuedMessage("m-archive", archive), QueuedMessage("m-unpin", unpin)]

    # when: the pin worker's function reads them
    with Client(app_module.app) as client:
        result = client.lambda_.invoke("pin_worker", sqs_event(batch)).payload

    # then: both succeed, and the archive message waits on the archive queue, not on the pin queue
    assert result == {"batchItemFailures": []}
    assert staged.settings.archive_queue_url is not None and staged.settings.queue_url is not None
    assert bodies_on(staged.settings.archive_queue_url) == [archive]
    assert bodies_on(staged.settings.queue_url) == []
