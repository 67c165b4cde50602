"""The local stack's emulated SQS hands out messages as a fair queue would:
the groups (tenants) with the fewest messages in flight first; and answers
as moto does, without its per-message clock reads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto.sqs.models import sqs_backends

from devstack import moto_fair_queues
from devstack.moto_fair_queues import fair_order
from devstack.worker_poller import QueuePoller


def restore_after_test(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, name in moto_fair_queues.PATCHES:
        monkeypatch.setattr(owner, name, owner.__dict__[name])


@pytest.fixture
def fair_sqs(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    restore_after_test(monkeypatch)
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
    order = list(fair_order(waiting, Counter(in_flight)))

    # then: bob's two come first (0 and 1 in flight as they are handed out), then alice's by age
    assert [m.group_id for m in order] == ["bob", "bob", "alice", "alice", "alice"]
    assert order[2] is waiting[0] and order[4] is waiting[3]


def test_one_receive_interleaves_groups_and_a_message_without_a_group_is_a_tenant_of_its_own() -> None:
    # given: nothing in flight, alice's three messages older than bob's two and a drain (no group)
    waiting = [message("alice"), message("alice"), message("alice"), message("bob"), message("bob"), message(None)]

    # when / then: one message of each group in turn, the groupless one with the first
    order = list(fair_order(waiting, Counter()))
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


@given(
    st.lists(st.sampled_from(["alice", "bob", "carol", None]), max_size=40),
    st.lists(st.integers(0, 5), min_size=3, max_size=3),
)
def test_the_order_is_by_rank_in_its_group_then_by_age(groups: list[str | None], flying: list[int]) -> None:
    # given: any waiting messages (oldest first) and any counts in flight
    waiting = [message(group) for group in groups]
    in_flight = Counter(dict(zip(["alice", "bob", "carol"], flying, strict=True)))

    # when: a fair queue orders them
    order = list(fair_order(waiting, in_flight))

    # then: as sorted by (in flight + the group's messages ahead, age), a groupless message ranking 0
    rank: list[int] = []
    ahead: Counter[str] = Counter()
    for m in waiting:
        rank.append(0 if m.group_id is None else in_flight[m.group_id] + ahead[m.group_id])
        ahead[m.group_id or ""] += 1
    expected = [waiting[i] for i in sorted(range(len(waiting)), key=lambda i: (rank[i], i))]
    assert [id(m) for m in order] == [id(m) for m in expected]


def queue_counts(sqs: Any, queue_url: str) -> dict[str, str]:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return {name: attributes[name] for name in names}


def test_the_emulation_counts_a_queues_messages_as_moto_does(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: on moto as it is, a queue with 4 messages waiting, 2 delayed and 3 in flight
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="counted")["QueueUrl"]
    for n in range(7):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"a{n}", MessageGroupId="alice" if n % 2 else "bob")
    sqs.send_message(QueueUrl=queue_url, MessageBody="drain")
    for n in range(2):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"d{n}", MessageGroupId="alice", DelaySeconds=600)
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=3, VisibilityTimeout=600)["Messages"]
    assert len(received) == 3
    by_moto = queue_counts(sqs, queue_url)

    # when: the emulation is installed
    restore_after_test(monkeypatch)
    moto_fair_queues.install()

    # then: the counts are moto's
    assert (
        queue_counts(sqs, queue_url)
        == by_moto
        == {
            "ApproximateNumberOfMessages": "5",
            "ApproximateNumberOfMessagesDelayed": "2",
            "ApproximateNumberOfMessagesNotVisible": "3",
        }
    )


def test_a_message_is_kept_for_the_queues_retention_period_as_moto_keeps_it(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a queue that keeps messages 60 s, with one message sent 61 s ago and one just now
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="kept", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    for body in ("old", "new"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageGroupId="alice")
    backend = sqs_backends["123456789012"]["us-east-1"]
    stored: list[Any] = backend.queues["kept"]._messages
    stored[0].sent_timestamp -= 61_000
    by_moto = [backend.is_message_valid_based_on_retention_period("kept", m) for m in stored]

    # when: the emulation is installed
    restore_after_test(monkeypatch)
    moto_fair_queues.install()

    # then: it keeps the same ones (the old one no more)
    assert [backend.is_message_valid_based_on_retention_period("kept", m) for m in stored] == by_moto == [False, True]


def delete_script(sqs: Any, queue_url: str) -> list[str]:
    """What deletes by current, earlier, repeated and unknown receipt handles do."""
    sqs.send_message(QueueUrl=queue_url, MessageBody="a", MessageGroupId="alice")
    sqs.send_message(QueueUrl=queue_url, MessageBody="b", MessageGroupId="bob")
    first = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=2, VisibilityTimeout=0)["Messages"]
    again = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=2, VisibilityTimeout=600)["Messages"]
    outcomes = []
    for handle in (first[0]["ReceiptHandle"], again[1]["ReceiptHandle"], again[1]["ReceiptHandle"], "no-such-handle"):
        try:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=handle)
            outcomes.append("deleted")
        except sqs.exceptions.ReceiptHandleIsInvalid:
            outcomes.append("invalid")
    outcomes.append(str(queue_counts(sqs, queue_url)))
    return outcomes


def test_the_emulation_deletes_messages_as_moto_does(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: what moto as it is does with deletes by a message's earlier handle, its current one
    # (twice) and a handle no message had
    sqs = boto3.client("sqs", region_name="us-east-1")
    by_moto = delete_script(sqs, sqs.create_queue(QueueName="deleted-by-moto")["QueueUrl"])

    # when: the same with the emulation installed
    restore_after_test(monkeypatch)
    moto_fair_queues.install()
    emulated = delete_script(sqs, sqs.create_queue(QueueName="deleted-emulated")["QueueUrl"])

    # then: the same outcomes, and both messages are gone
    assert emulated == by_moto
    assert by_moto[:4] == ["deleted", "deleted", "deleted", "invalid"]
    assert "'ApproximateNumberOfMessagesNotVisible': '0'" in by_moto[4] and "Messages': '0'" in by_moto[4]


def test_a_long_poll_returns_a_visible_message_and_waits_out_a_delayed_one(fair_sqs: tuple[Any, str]) -> None:
    sqs, queue_url = fair_sqs
    # given: a queue whose only message is delayed 10 minutes
    sqs.send_message(QueueUrl=queue_url, MessageBody="later", MessageGroupId="alice", DelaySeconds=600)

    # when / then: a long poll of 1 s receives nothing
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []) == []

    # and: once a message is visible, a long poll receives it
    sqs.send_message(QueueUrl=queue_url, MessageBody="now", MessageGroupId="alice")
    got = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in got] == ["now"]
