"""The local stack's emulated SQS hands out messages as a fair queue would:
the groups (tenants) with the fewest messages in flight first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto.sqs.models import Queue

from devstack import moto_fair_queues
from devstack.moto_fair_queues import fair_order
from devstack.worker_poller import QueuePoller


@pytest.fixture
def fair_sqs(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    monkeypatch.setattr(Queue, "messages", Queue.messages)  # restored after the test
    moto_fair_queues.install()
    sqs = boto3.client("sqs", region_name="us-east-1")
    yield sqs, sqs.create_queue(QueueName="fair-pins")["QueueUrl"]


def received_groups(sqs: Any, queue_url: str, count: int) -> list[str]:
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=count, AttributeNames=["All"])
    return [message["Attributes"].get("MessageGroupId", "-") for message in got.get("Messages", [])]


def message(group: str | None) -> Any:
    return SimpleNamespace(group_id=group)


def test_the_groups_with_the_fewest_messages_in_flight_go_first_then_the_oldest() -> None:
    # given: alice has 3 messages in flight and 3 older ones waiting, bob none in flight
    waiting = [message("alice"), message("alice"), message("bob"), message("alice"), message("bob")]
    in_flight = {"alice": 3}

    # when: a fair queue orders them
    order = fair_order(waiting, Counter(in_flight))

    # then: bob's two come first (0 and 1 in flight as they are handed out), then alice's by age
    assert [m.group_id for m in order] == ["bob", "bob", "alice", "alice", "alice"]
    assert order[2] is waiting[0] and order[4] is waiting[3]


def test_one_receive_interleaves_groups_and_a_message_without_a_group_is_a_tenant_of_its_own() -> None:
    # given: nothing in flight, alice's three messages older than bob's two and a drain (no group)
    waiting = [message("alice"), message("alice"), message("alice"), message("bob"), message("bob"), message(None)]

    # when / then: one message of each group in turn, the groupless one with the first
    order = fair_order(waiting, Counter())
    assert [m.group_id for m in order] == ["alice", "bob", None, "alice", "bob", "alice"]


def test_the_emulated_queue_delivers_a_quiet_tenant_before_a_backlog_sent_earlier(
    fair_sqs: tuple[Any, str],
) -> None:
    sqs, queue_url = fair_sqs
    # given: alice queued 30 messages and a worker holds 10 of them
    for n in range(30):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"a{n}", MessageGroupId="alice")
    assert received_groups(sqs, queue_url, 10) == ["alice"] * 10
    # and: bob queues 2 after all of alice's
    for n in range(2):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"b{n}", MessageGroupId="bob")

    # when: the next receive
    groups = received_groups(sqs, queue_url, 10)

    # then: bob's come first, then alice's backlog
    assert groups == ["bob", "bob"] + ["alice"] * 8


def test_without_the_emulation_moto_delivers_oldest_first(aws: None) -> None:
    # given: moto as it is (what a standard queue without message groups does on AWS)
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="plain-pins")["QueueUrl"]
    for n in range(12):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"a{n}", MessageGroupId="alice")
    sqs.send_message(QueueUrl=queue_url, MessageBody="b", MessageGroupId="bob")

    # when / then: bob waits behind alice's backlog
    assert received_groups(sqs, queue_url, 10) == ["alice"] * 10


def test_the_poller_takes_as_many_messages_as_its_batch_size_says(fair_sqs: tuple[Any, str]) -> None:
    # given: five queued messages and a poller whose worker process says "one at a time"
    sqs, queue_url = fair_sqs
    for n in range(5):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"a{n}", MessageGroupId="alice")
    batches: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        batches.append(len(event["Records"]))
        return {"batchItemFailures": []}

    poller = QueuePoller(sqs, queue_url, handler, 30, "test-poller", batch_size=lambda: 1)

    # when: it polls twice
    handled = poller.poll_once() + poller.poll_once()

    # then: each batch held one message, and each was deleted as Lambda would
    assert handled == 2 and batches == [1, 1]
    assert (
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
        == "3"
    )
