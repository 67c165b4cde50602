"""A throttled or contended DynamoDB answers 503 with Retry-After, not 500."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError, QueryError

from chalicelib.storage.pin_counter import CountsUnavailable


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "slow down"}}, "Query")


class BusyStore:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def find(self, tenant_id, query):
        raise self.error

    def write(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        CountsUnavailable("2 counter buckets unprocessed"),
        QueryError("throttled", cause=_client_error("ProvisionedThroughputExceededException")),
        QueryError("throttled", cause=_client_error("ThrottlingException")),
    ],
    ids=["counts-unprocessed", "throughput-exceeded", "throttling"],
)
def test_busy_storage_on_list_gives_503_with_retry_after(api, services, error):
    # Given tables that keep throttling
    services.pins._store = BusyStore(error)

    # When a client lists its pins
    reply = api.request("GET", "/pins")

    # Then it is told to come back, in the Failure shape
    assert reply.status == 503
    assert reply.reason == "SERVICE_UNAVAILABLE"
    assert reply.headers["Retry-After"] == "5"


def test_other_storage_errors_stay_500(api, services):
    # Given a storage error that is not about load
    services.pins._store = BusyStore(QueryError("bad", cause=_client_error("ValidationException")))

    # When a client lists its pins
    reply = api.request("GET", "/pins")

    # Then it is a server fault, not a retry hint
    assert reply.status == 500


def test_busy_storage_on_create_gives_503(api, services):
    # Given tables that throttle writes
    services.pins._store = BusyStore(PutError("throttled", cause=_client_error("RequestLimitExceeded")))

    # When a client asks for a pin
    reply = api.request(
        "POST", "/pins", json_body={"cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}
    )

    # Then it is told to retry
    assert reply.status == 503
