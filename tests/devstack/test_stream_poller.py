"""The local stack's count folder: devstack.stream_poller reading moto's
stream of the pins table and calling the app's `fold_counts`, as Lambda's
event source mapping does on AWS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Attr
from moto.dynamodbstreams.models import ShardIterator, dynamodbstreams_backends

from chalicelib.storage.pin_item import PinItem
from devstack import moto_streams
from devstack.stream_poller import StreamPoller, streams_client
from infra.render import FOLD_RETRIES
from tests.api.helpers import ALL_STATUSES
from tests.support.cids import cid_v1

BOUND_S = 10


@pytest.fixture
def pins_created(api) -> Iterator[Any]:
    """Twelve pins created through the API (so their changes are in the stream); the API client."""
    for n in range(12):
        api.pin(cid_v1(f"stream-{n}"), name=f"pin {n}")
    yield api


def changes_left() -> int:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(PinItem.Meta.table_name)
    # Count changes sit atop streams, two items each: `p#~<change>`, `s#<status>#~<change>`;
    # no other sort key holds "#~".
    items = table.scan(FilterExpression=Attr("sk").contains("#~"), ConsistentRead=True)["Items"]
    return len({item["sk"].split("~", 1)[1] for item in items})


def poller(handler: Any) -> StreamPoller:
    return StreamPoller(streams_client(), PinItem.Meta.table_name, handler, timeout_seconds=30)


def app_handler() -> Any:
    import app as app_module

    return app_module.fold_counts


def test_given_pins_created_through_the_api_when_the_stream_is_polled_then_every_change_is_folded(pins_created):
    # Given twelve pins whose count changes are not folded yet
    api = pins_created
    unfolded = changes_left()
    assert unfolded >= 12 and api.list(status=ALL_STATUSES)["count"] == 12
    # When the poller reads the stream and calls the app's handler
    folded = poller(app_handler()).poll_once()
    # Then it delivered exactly the inserted changes, and the shards hold none any more
    assert folded == unfolded
    assert changes_left() == 0
    # and the counts are unchanged
    assert api.list(status=ALL_STATUSES)["count"] == 12
    assert api.list(status="queued")["count"] == 12
    assert api.list(status="pinned")["count"] == 0


def test_given_a_started_poller_then_changes_are_folded_within_a_bounded_wait_and_it_stops(pins_created):
    # Given the poller running as the stack runs it, every 0.5 s
    running = poller(app_handler())
    running.start()
    try:
        # When pins were created, then their changes are folded within the bound
        deadline = time.monotonic() + BOUND_S
        while changes_left() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert changes_left() == 0
    finally:
        # and it stops when asked
        running.stop()
    assert pins_created.list(status=ALL_STATUSES)["count"] == 12


class FailingHandler:
    """Reports the third record of its first batch failed for its first
    `failures` deliveries; `None`: every delivery raises."""

    def __init__(self, failures: int | None) -> None:
        self.batches: list[list[str]] = []
        self._failures = failures
        self.failing: str | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
        self.batches.append(sequence_numbers)
        if self._failures is None:
            raise RuntimeError("fold crashed")
        self.failing = self.failing or sequence_numbers[2]
        if len(self.batches) > self._failures:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": self.failing}]}


def test_given_a_failed_record_then_the_batch_comes_back_from_it_until_it_is_folded(pins_created):
    # Given a handler that reports the third record failed twice
    handler = FailingHandler(failures=2)
    stream = poller(handler)
    # When the stream is polled three times
    folded = [stream.poll_once() for _ in range(3)]
    # Then the first poll folds the two records before it, the next two deliver
    # the batch again from it, the last of them folding it and the rest
    first = handler.batches[0]
    assert handler.batches == [first, first[2:], first[2:]]
    assert folded == [2, 0, len(first) - 2]
    # and nothing is delivered again after
    assert stream.poll_once() == 0 and len(handler.batches) == 3


def test_given_a_handler_that_keeps_failing_then_its_batch_is_skipped_after_the_retries(pins_created, capsys):
    # Given a handler that fails every delivery
    handler = FailingHandler(failures=None)
    stream = poller(handler)
    # When the stream is polled once and then as often as the mapping retries
    folded = [stream.poll_once() for _ in range(1 + FOLD_RETRIES)]
    # Then every delivery was the whole batch, none folded, and the batch is given up on with a line
    assert folded == [0] * (1 + FOLD_RETRIES)
    assert len(handler.batches) == 1 + FOLD_RETRIES and len({tuple(b) for b in handler.batches}) == 1
    assert f"gave up on {len(handler.batches[0])} stream record(s)" in capsys.readouterr().out
    # and the next poll delivers nothing again
    assert stream.poll_once() == 0 and len(handler.batches) == 1 + FOLD_RETRIES


def test_given_the_stacks_moto_patch_then_polling_leaves_no_used_iterators_behind(pins_created):
    # Given moto's streams patched as the stack patches them
    moto_streams.install()
    stream = poller(app_handler())
    # When the stream is polled fifty times
    for _ in range(50):
        stream.poll_once()
    # Then moto holds the next iterator of the stream's one shard and no other
    assert len(dynamodbstreams_backends["123456789012"]["us-east-1"].shard_iterators) == 1
    assert len(ShardIterator.instances_tracked) == 1
