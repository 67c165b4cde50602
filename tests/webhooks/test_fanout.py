"""The stream's consumer on its own (memory repositories): which endpoints
get what, a pin gone by then, and a failed send reported to the stream."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from chalicelib.pins.pin import Pin
from chalicelib.storage.pin_keys import change_id, change_sort_keys, entry_key, status_prefix
from chalicelib.webhooks.delivery import BatchReport, emit_delivery_metrics
from chalicelib.webhooks.endpoints import Endpoint
from chalicelib.webhooks.fanout import Fanout
from chalicelib.webhooks.messages import Delivery, delivery_of
from tests.support.memory.webhooks import MemoryWebhooks

TENANT = "alice"
CREATED = 1_764_000_000_123
REQUEST = "0192f0a0-0000-7000-8000-000000000001"


def record(sort_key: str, sequence: str) -> dict[str, Any]:
    keys = {"pk": {"S": f"{TENANT}#0"}, "sk": {"S": sort_key}}
    return {"eventName": "INSERT", "dynamodb": {"Keys": keys, "SequenceNumber": sequence}}


def pinned_copy(sequence: str = "2") -> dict[str, Any]:
    return record(entry_key(status_prefix("pinned"), CREATED), sequence)


def creation(sequence: str = "1") -> dict[str, Any]:
    return record(change_sort_keys(change_id(CREATED, REQUEST, 0), None, "q")[-1], sequence)


class Pins:
    def __init__(self, *pins: Pin) -> None:
        self.pins = {(pin.tenant_id, pin.created_ms): pin for pin in pins}

    def get(self, tenant_id: str, created_ms: int) -> Pin | None:
        return self.pins.get((tenant_id, created_ms))


class Queue:
    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[Delivery] = []
        self._fail_after = fail_after

    def send(self, deliveries: Sequence[Delivery]) -> None:
        if self._fail_after is not None and len(self.sent) + len(deliveries) > self._fail_after:
            raise ConnectionError("SQS unreachable")
        self.sent += deliveries


def endpoints(*wanted: tuple[str, tuple[str, ...]]) -> MemoryWebhooks:
    repository = MemoryWebhooks()
    for endpoint_id, events in wanted:
        repository.add(Endpoint(TENANT, endpoint_id, f"https://{endpoint_id}.example/", events, "whsec_eA==", 0))
    return repository


PIN = Pin(TENANT, CREATED, REQUEST, "pinning", "bafy", "bafy", name="report", info={"k": "v"}, version=1)


def test_each_event_goes_to_each_endpoint_wanting_it_as_a_pinstatus_in_its_status():
    # Given two endpoints, one wanting pinned pins only, and a pin read back as pinning
    queue = Queue()
    fanout = Fanout(
        endpoints(("ep_a", ("pin.pinned",)), ("ep_b", ("pin.queued", "pin.pinned"))), Pins(PIN), queue, lambda: 0
    )
    # When its creation and its pinned copy are consumed
    assert fanout.consume([creation(), pinned_copy()]) == []
    # Then ep_b got both, ep_a the pinned one, each a PinStatus in the event's own status
    assert [(d.endpoint_id, d.event_type) for d in queue.sent] == [
        ("ep_b", "pin.queued"),
        ("ep_a", "pin.pinned"),
        ("ep_b", "pin.pinned"),
    ]
    body = json.loads(queue.sent[1].payload)
    assert body["type"] == "pin.pinned" and body["data"]["status"] == "pinned"
    assert body["data"]["requestid"] == REQUEST and body["data"]["pin"] == {"cid": "bafy", "name": "report"}
    # and every delivery reads back from its queue body whole
    assert [delivery_of(d.body()) for d in queue.sent] == queue.sent


def test_a_pin_gone_by_then_keeps_its_creation_and_loses_the_status_it_passed_through():
    # Given an endpoint of every pin event, and a pin deleted before its records are read
    queue = Queue()
    fanout = Fanout(endpoints(("ep_a", ("pin.queued", "pin.pinned"))), Pins(), queue, lambda: 0)
    # When its creation and its pinned copy are consumed
    assert fanout.consume([creation(), pinned_copy()]) == []
    # Then the creation is sent with what its keys say, the pinned status (no request id left) is not
    assert [d.event_type for d in queue.sent] == ["pin.queued"]
    assert json.loads(queue.sent[0].payload)["data"] == {
        "requestid": REQUEST,
        "created": "2025-11-24T16:00:00.123Z",
        "status": "queued",
    }


def test_a_failed_send_reports_its_record_for_the_stream_to_give_again():
    # Given a queue that takes one delivery and then fails
    queue = Queue(fail_after=1)
    fanout = Fanout(endpoints(("ep_a", ("pin.queued", "pin.pinned"))), Pins(PIN), queue, lambda: 0)
    # When two records are consumed
    failed = fanout.consume([creation("11"), pinned_copy("12")])
    # Then the first was sent and the second is reported: the stream starts again from it
    assert [d.event_type for d in queue.sent] == ["pin.queued"]
    assert failed == ["12"]


def test_a_tenant_without_endpoints_has_no_pin_read_and_nothing_sent():
    # Given no endpoint, and a pin store that must not be read
    class Unread(Pins):
        def get(self, tenant_id: str, created_ms: int) -> Pin | None:
            raise AssertionError("read a pin nobody wants an event of")

    queue = Queue()
    # When records of its pins are consumed
    assert Fanout(endpoints(), Unread(), queue, lambda: 0).consume([creation(), pinned_copy()]) == []
    # Then nothing is sent
    assert queue.sent == []


def test_a_batch_s_deliveries_become_one_metric_line():
    # Given a batch's report
    out = io.StringIO()
    # When its metrics are emitted
    emit_delivery_metrics(BatchReport(failed=["m1"], attempts_failed=1, latencies_ms=[120, 80]), "dev", out)
    # Then one line counts the deliveries and failures and gives the slowest
    line = json.loads(out.getvalue())
    assert (line["WebhooksDelivered"], line["WebhookAttemptsFailed"], line["WebhookLatencyMs"]) == (2, 1, 120)
