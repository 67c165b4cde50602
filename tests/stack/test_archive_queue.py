"""The local stack archives through the archive function's own queue, as on
AWS: the pin worker sends the archive message there, the stack's poller of
the archive function (one message at a time) archives it."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from devstack.env_file import read_env_file
from devstack.state import SERVICE_ENV
from tests.stack.stack_client import Stack, running_stack, wait_until

PIN_TIMEOUT_S = 30
ARCHIVE_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Without Filecoin copies (running_stack's default): the tracker would queue copy messages here.
    with running_stack(tmp_path_factory, [], {}) as started:
        yield started


def test_a_pinned_request_is_archived_from_the_archive_queue(stack: Stack) -> None:
    # Given the stack's own archive queue (and the pin worker told of it)
    info = stack.served.info()
    archive_queue = info["archive_queue_url"]
    assert archive_queue.endswith("-archives") and archive_queue != info["pin_queue_url"]
    assert read_env_file(stack.served.state_dir / SERVICE_ENV)["ARCHIVE_QUEUE_URL"] == archive_queue

    # When content is pinned
    cid, data = stack.content()
    created = stack.pin(cid)
    stack.pinned(created["requestid"], PIN_TIMEOUT_S)

    # Then its archive is made, and the archive queue is left empty
    request_id = created["requestid"]
    archived = wait_until(
        stack.api, [request_id], lambda status: status["info"].get("cold") == "archived", ARCHIVE_TIMEOUT_S, "archived"
    )
    assert int(archived[request_id]["info"]["car_bytes"]) > len(data)
    sqs = boto3.client("sqs", endpoint_url=info["aws_endpoint_url"], region_name="us-east-1")
    counts = sqs.get_queue_attributes(QueueUrl=archive_queue, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
