"""Deliveries to a loopback receiver (cli.webhook_receiver): signed per
Standard Webhooks and verified with its library, retried with backoff after
500s and timeouts, never replayed, never sent to a refused address, and
stopped by removing the endpoint."""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.webhooks.addresses import AddressCheck
from chalicelib.webhooks.delivery import BACKOFF_SECONDS, MAX_ATTEMPTS, Deliverer, deliver_batch
from chalicelib.webhooks.endpoints import InvalidEndpoint
from chalicelib.webhooks.messages import Delivery
from chalicelib.webhooks.sender import HttpPoster, signed_headers
from tests.support.fake_dns import FakeDns
from tests.webhooks.conftest import TENANT

REQUEST = "0192f0a0-0000-7000-8000-000000000001"


class HiddenFor:
    """The queue's visibility changes, recorded: time passes in the test
    without waiting for it (the next receive is simply the next attempt)."""

    def __init__(self) -> None:
        self.seconds: list[int] = []

    def hide(self, receipt_handle: str, seconds: int) -> None:
        self.seconds.append(seconds)


def delivery(endpoint_id: str, message_id: str = "msg_1", event_type: str = "pin.pinned", at_ms: int = 0) -> Delivery:
    body = json.dumps({"type": event_type, "timestamp": "2026-11-28T00:00:00.000Z", "data": {"requestid": REQUEST}})
    return Delivery(TENANT, endpoint_id, message_id, event_type, REQUEST, at_ms, body)


def queue_record(sent: Delivery, attempt: int, message_id: str = "m1") -> dict:
    return {
        "messageId": message_id,
        "receiptHandle": f"r-{message_id}-{attempt}",
        "body": sent.body(),
        "attributes": {"ApproximateReceiveCount": str(attempt)},
    }


def test_a_delivery_is_signed_as_the_library_verifies_and_logged(listening, deliverer, repository, answers, clock):
    # Given a registered endpoint and its receiver
    registered, receiver = listening.endpoint, listening.receiver
    # When a delivery is made
    outcome = deliverer.deliver(delivery(registered.endpoint_id, at_ms=clock.ms - 250), attempt=1)
    # Then the receiver verified its signature with the library and got the event
    assert outcome.done
    assert [event["type"] for event in receiver.events] == ["pin.pinned"]
    assert receiver.events[0]["data"]["requestid"] == REQUEST
    assert receiver.refused == []
    # and the attempt is in the endpoint's log
    (logged,) = repository.attempts(registered.endpoint_id, 10)
    assert (logged.status_code, logged.error, logged.attempt, logged.at_ms) == (200, None, 1, clock.ms)


def test_a_receiver_with_another_secret_refuses_the_delivery(webhooks, receiver_for, deliverer, repository):
    # Given a receiver verifying with a secret that is not the endpoint's
    server = receiver_for("whsec_" + "QUJD" * 8)
    registered = webhooks.register(TENANT, server.url, ["pin.pinned"])
    # When a delivery is made
    outcome = deliverer.deliver(delivery(registered.endpoint_id), attempt=1)
    # Then the receiver refused it and it is not delivered
    assert not outcome.done
    assert server.receiver.refused == ["No matching signature found"]
    assert repository.attempts(registered.endpoint_id, 1)[0].error == "answered 400"


def test_500s_are_retried_with_growing_backoff_until_delivered(listening, deliverer, answers, repository):
    # Given a receiver that answers 500 twice, then 200
    registered, receiver = listening.endpoint, listening.receiver
    answers.statuses = [500, 500]
    sent, hidden = delivery(registered.endpoint_id), HiddenFor()
    # When the queue hands the delivery over again after each failure
    reports = [deliver_batch([queue_record(sent, attempt)], deliverer, hidden) for attempt in (1, 2, 3)]
    # Then the first two failed (and were held for 5 s, then 30 s), the third was delivered
    assert [report.failed for report in reports] == [["m1"], ["m1"], []]
    assert hidden.seconds == [5, 30]
    assert len(receiver.events) == 1
    log = repository.attempts(registered.endpoint_id, 10)
    assert [(a.attempt, a.status_code) for a in reversed(log)] == [(1, 500), (2, 500), (3, 200)]


def test_the_backoff_lasts_more_than_a_day_before_the_dead_letter_queue():
    # Given the schedule of waits between attempts
    # Then the attempts span more than 24 hours, each wait at least the one before, and fit a visibility timeout
    assert sum(BACKOFF_SECONDS) > 24 * 3600
    assert list(BACKOFF_SECONDS) == sorted(BACKOFF_SECONDS)
    assert max(BACKOFF_SECONDS) <= 12 * 3600
    assert MAX_ATTEMPTS == len(BACKOFF_SECONDS) + 1


def test_a_receiver_that_does_not_answer_in_time_is_retried(listening, repository, answers, clock):
    # Given a receiver that holds every delivery, and a sender that waits 0.3 s for an answer
    registered = listening.endpoint
    answers.hold.clear()
    deliverer = Deliverer(repository, AddressCheck(allow_loopback=True), HttpPoster(timeout=0.3), clock)
    hidden = HiddenFor()
    # When a delivery is made
    report = deliver_batch([queue_record(delivery(registered.endpoint_id), 1)], deliverer, hidden)
    # Then it failed on the timeout and is held for the first backoff
    assert report.failed == ["m1"] and hidden.seconds == [5]
    assert "timed out" in repository.attempts(registered.endpoint_id, 1)[0].error
    answers.hold.set()


def test_a_replayed_delivery_is_not_taken_again_and_an_old_one_is_refused(listening, deliverer, answers):
    # Given a delivery received once
    registered, receiver = listening.endpoint, listening.receiver
    sent = delivery(registered.endpoint_id, message_id="msg_replayed")
    assert deliverer.deliver(sent, attempt=1).done
    host, port = registered.url.removeprefix("http://").rstrip("/").split(":")

    def post(at: datetime, message_id: str) -> int:
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("POST", "/", sent.payload, signed_headers(registered.secret, message_id, at, sent.payload))
        return connection.getresponse().status

    # When the same message is posted again, and a new one signed ten minutes ago
    again = post(datetime.now(UTC), "msg_replayed")
    old = post(datetime.now(UTC) - timedelta(minutes=10), "msg_old")
    # Then the replay is acknowledged but not taken again, and the old one refused
    assert again == 200 and receiver.duplicates == ["msg_replayed"]
    assert old == 400 and receiver.refused == ["Message timestamp too old"]
    assert len(receiver.events) == 1


def test_a_non_global_url_is_refused_at_registration_and_at_delivery(repository, clock, receiver_for):
    # Given production's rules, with a name that resolves to a global address when registered
    dns = FakeDns(a={"hooks.example": ["93.184.215.14"]})
    from chalicelib.webhooks.endpoints import Webhooks

    webhooks = Webhooks(repository, AddressCheck(dns), clock)
    # When private URLs are registered
    # Then they are refused
    for url in ("https://10.0.0.1/hook", "https://169.254.169.254/", "http://hooks.example/"):
        with pytest.raises(InvalidEndpoint):
            webhooks.register(TENANT, url, ["pin.pinned"])
    registered = webhooks.register(TENANT, "https://hooks.example/hook", ["pin.pinned"])
    # When the name points inside the network by the time of a delivery
    dns.records["A"]["hooks.example"] = ["10.0.0.9"]
    posted: list[str] = []

    class Recording:
        def post(self, target, headers, body):
            posted.append(target.address)
            return 200

    outcome = Deliverer(repository, AddressCheck(dns), Recording(), clock).deliver(
        delivery(registered.endpoint_id), attempt=1
    )
    # Then nothing is posted and the attempt is logged as refused
    assert not outcome.done and posted == []
    assert "refused: hooks.example resolves to 10.0.0.9" in repository.attempts(registered.endpoint_id, 1)[0].error


def test_removing_an_endpoint_stops_its_deliveries(listening, deliverer, webhooks, repository):
    # Given an endpoint with a delivery on its way
    registered, receiver = listening.endpoint, listening.receiver
    sent = delivery(registered.endpoint_id)
    # When the endpoint is removed before the delivery is made
    assert webhooks.remove(TENANT, registered.endpoint_id)
    outcome = deliverer.deliver(sent, attempt=1)
    # Then the delivery is dropped: nothing posted, nothing logged
    assert outcome.done and outcome.attempt is None
    assert receiver.events == [] and repository.attempts(registered.endpoint_id, 5) == []


def test_a_group_stops_at_its_first_failure_while_other_groups_go_on(listening, deliverer, answers):
    # Given a batch: two events of one request, then one of another request
    registered, receiver = listening.endpoint, listening.receiver
    answers.by_request = {REQUEST: [500]}
    first, second = delivery(registered.endpoint_id, "msg_a"), delivery(registered.endpoint_id, "msg_b")
    payload = first.payload.replace(REQUEST, "another-request")
    other = Delivery(TENANT, registered.endpoint_id, "msg_c", "pin.pinned", "another-request", 0, payload)
    records = [queue_record(first, 1, "m1"), queue_record(second, 1, "m2"), queue_record(other, 1, "m3")]
    # When it is delivered and the first event fails
    hidden = HiddenFor()
    report = deliver_batch(records, deliverer, hidden)
    # Then the request's second event was not attempted (it comes back at once, behind the first), the other's was
    assert report.failed == ["m1", "m2"] and hidden.seconds == [5, 0]
    assert len(answers.seen) == 2 and len(receiver.events) == 1


def test_a_redirect_is_not_followed_and_not_a_delivery(listening, deliverer, answers, repository):
    # Given a receiver that answers the delivery with a redirect
    registered, receiver = listening.endpoint, listening.receiver
    answers.statuses = [307]
    # When a delivery is made
    outcome = deliverer.deliver(delivery(registered.endpoint_id), attempt=1)
    # Then it is not delivered (it will be retried), and only the one request was made
    assert not outcome.done
    assert repository.attempts(registered.endpoint_id, 1)[0].error == "answered 307"
    assert len(answers.seen) == 1 and receiver.events == []
