"""A throttled or contended storage answers 503 with Retry-After, not 500:
storage raises StorageBusy (tests/storage/test_pin_store.py shows when), and
a pin that keeps changing under a replace or delete ends the same way."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from chalicelib.busy import StorageBusy
from chalicelib.pins.service import WRITE_ATTEMPTS
from tests.support.cids import cid_v1
from tests.support.memory.pins import MemoryPinRepository


@pytest.fixture
def pins(services) -> MemoryPinRepository:
    """The API's pins in memory, where a test can script storage's faults."""
    repository = MemoryPinRepository()
    services.pins._store = repository
    return repository


def throttled() -> None:
    raise StorageBusy("throttled")


def assert_told_to_retry(reply) -> None:
    assert reply.status == 503
    assert reply.reason == "SERVICE_UNAVAILABLE"
    assert reply.headers["Retry-After"] == "5"


def test_busy_storage_on_list_gives_503_with_retry_after(api, pins):
    # Given tables that keep throttling reads
    pins.before_read = throttled
    # When a client lists its pins, then it is told to come back, in the Failure shape
    assert_told_to_retry(api.request("GET", "/pins"))


def test_other_storage_errors_stay_500(api, pins):
    # Given a storage error that is not about load
    def broken() -> None:
        raise ValueError("bad request to the table")

    pins.before_read = broken
    # When a client lists its pins, then it is a server fault, not a retry hint
    assert api.request("GET", "/pins").status == 500


def test_busy_storage_on_create_gives_503(api, pins, monkeypatch):
    # Given tables that throttle writes
    monkeypatch.setattr(pins, "create", lambda *args, **kwargs: throttled())
    # When a client asks for a pin, then it is told to retry
    reply = api.request("POST", "/pins", json_body={"cid": cid_v1("busy")})
    assert_told_to_retry(reply)


@pytest.mark.parametrize("method", ["DELETE", "POST"], ids=["delete", "replace"])
def test_a_pin_that_keeps_changing_under_a_delete_or_replace_gives_503_after_bounded_tries(api, pins, method):
    # Given a pin that another writer (a worker) changes before every write of the API
    request_id = api.pin(cid_v1("contended"))["requestid"]
    pins.before_write = pins.write_meanwhile
    writes_before = pins.writes
    # When the client deletes or replaces it
    body = {"cid": cid_v1("contended v2")} if method == "POST" else None
    reply = api.request(method, f"/pins/{request_id}", json_body=body)
    # Then after a bounded number of tries it is told to retry, and the pin is untouched
    assert_told_to_retry(reply)
    assert pins.writes - writes_before == WRITE_ATTEMPTS
    pins.before_write = lambda pin: None
    assert api.request("GET", f"/pins/{request_id}").status == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_throttled_tables_give_503_before_any_pin_is_touched(api, services, monkeypatch, method):
    # Given DynamoDB throttling every request (botocore's own retries spent), the token lookup included
    def throttled_request(operation, kwargs, *args, **more):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, operation)

    monkeypatch.setattr(services.dynamo.connection, "dispatch", throttled_request)
    # When a client lists or asks for a pin, then it is told to retry, not handed a server fault
    body = {"cid": cid_v1("throttled")} if method == "POST" else None
    assert_told_to_retry(api.request(method, "/pins", json_body=body))
