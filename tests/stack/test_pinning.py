"""Pinning through the served stack, as a user does it: content added to
your node, pinned with your node as origin, replaced and deleted; the fleet
nodes' own `pin/ls` says what they hold. And the stack archives through the
archive function's own queue, as on AWS: the pin worker sends the archive
message there, the stack's poller of the archive function (one message at a
time) archives it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import groupby

import boto3
import pytest

from devstack.env_file import read_env_file
from devstack.state import SERVICE_ENV
from tests.stack.stack_client import Stack, follow, get_status, running_stack, wait_for, wait_until

LIFECYCLE = ["queued", "pinning", "pinned"]
PIN_TIMEOUT_S = 30
ARCHIVE_TIMEOUT_S = 60
QUEUE_DRAINED_S = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Without Filecoin copies (running_stack's default): the tracker would queue copy messages for the archives.
    with running_stack(tmp_path_factory, [], {}) as started:
        yield started


# First in the module: the archive queue holds this test's message alone.
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

    def queue_empty() -> bool:
        counts = sqs.get_queue_attributes(QueueUrl=archive_queue, AttributeNames=["All"])["Attributes"]
        return (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")

    # (the poller deletes the message once the handler, which wrote `cold`, has returned: a moment later)
    wait_for(queue_empty, QUEUE_DRAINED_S, "the archive queue empty")


def is_subsequence(seen: list[str], order: list[str]) -> bool:
    """`seen` (repeats collapsed) skips steps of `order` at most, never goes back."""
    remaining = iter(order)
    return all(status in remaining for status, _ in groupby(seen))


def test_given_content_only_on_your_node_when_pinned_with_it_as_origin_then_the_fleet_nodes_hold_it(
    stack: Stack,
) -> None:
    # Given content that exists only on your node
    cid, data = stack.content()

    # When it is pinned with your node as origin
    created = stack.pin(cid, name="e2e")
    seen, final = follow(stack.api, created["requestid"], PIN_TIMEOUT_S)

    # Then it went queued -> pinning -> pinned (polling may miss a step), and
    # the fleet nodes, the delegates, say they hold it
    assert is_subsequence([created["status"], *seen], LIFECYCLE), seen
    assert final["status"] == "pinned", final
    assert sorted(created["delegates"]) == sorted(node.multiaddr for node in stack.fleet)
    holders = stack.holders(cid)
    assert len(holders) == stack.replication_factor
    assert sorted(final["info"]["replicas"].split(",")) == sorted(holders)
    assert int(final["info"]["dag_size"]) >= len(data)


def test_given_a_pinned_request_when_deleted_then_it_is_gone_and_the_fleet_lets_go_of_the_content(stack: Stack) -> None:
    # Given a request pinned on the fleet
    cid, _ = stack.content()
    created = stack.pin(cid)
    stack.pinned(created["requestid"], PIN_TIMEOUT_S)
    assert len(stack.holders(cid)) == stack.replication_factor

    # When it is deleted
    deleted = stack.api.request("DELETE", f"/pins/{created['requestid']}")

    # Then it is gone at once, and from the fleet nodes soon after
    assert deleted.status == 202, deleted.body
    assert stack.is_gone(created["requestid"])
    wait_for(lambda: stack.holders(cid) == [], PIN_TIMEOUT_S, "unpinned on every fleet node")


def test_given_a_pinned_request_when_replaced_then_the_new_cid_is_pinned_under_a_new_id_and_the_old_is_unpinned(
    stack: Stack,
) -> None:
    # Given a request pinned on the fleet
    old, _ = stack.content()
    new, _ = stack.content()
    first = stack.pin(old)
    stack.pinned(first["requestid"], PIN_TIMEOUT_S)

    # When it is replaced by another CID
    replaced = stack.replace(first["requestid"], new)

    # Then the replacement is a new request that gets pinned, the old one is
    # gone, and so is its CID from the fleet
    assert replaced["requestid"] != first["requestid"]
    assert replaced["pin"]["cid"] == new
    assert stack.is_gone(first["requestid"])
    stack.pinned(replaced["requestid"], PIN_TIMEOUT_S)
    assert len(stack.holders(new)) == stack.replication_factor
    wait_for(lambda: stack.holders(old) == [], PIN_TIMEOUT_S, "the replaced CID unpinned on every fleet node")


def test_given_two_requests_for_one_cid_when_one_is_replaced_then_the_other_keeps_it_pinned_until_deleted(
    stack: Stack,
) -> None:
    # Given two requests for one CID, pinned
    old, _ = stack.content()
    new, _ = stack.content()
    first, second = stack.pin(old), stack.pin(old)
    wait_until(
        stack.api, [first["requestid"], second["requestid"]], lambda s: s["status"] == "pinned", PIN_TIMEOUT_S, "pinned"
    )

    # When one of them is replaced, then the other still holds the old CID on the fleet
    stack.pinned(stack.replace(first["requestid"], new)["requestid"], PIN_TIMEOUT_S)
    time.sleep(1)  # the worker lets go of the replaced pin right after writing `pinned`
    assert len(stack.holders(old)) == stack.replication_factor
    assert get_status(stack.api, second["requestid"])["status"] == "pinned"

    # When the last request for it is deleted, then it leaves the fleet (and the new CID stays)
    assert stack.api.request("DELETE", f"/pins/{second['requestid']}").status == 202
    wait_for(lambda: stack.holders(old) == [], PIN_TIMEOUT_S, "the old CID unpinned on every fleet node")
    assert len(stack.holders(new)) == stack.replication_factor
