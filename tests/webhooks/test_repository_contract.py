"""EndpointRepository contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

import pytest

from chalicelib.storage.webhook_repository import DynamoWebhookRepository
from chalicelib.webhooks.endpoints import Attempt, Endpoint
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.webhooks import MemoryWebhooks


@pytest.fixture(params=BACKENDS)
def repository(request):
    if request.param == "memory":
        return MemoryWebhooks()
    dynamo_connection(request)
    return DynamoWebhookRepository()


def endpoint(tenant: str, endpoint_id: str) -> Endpoint:
    return Endpoint(tenant, endpoint_id, f"https://{endpoint_id}.example/hook", ("pin.pinned",), "whsec_c2VjcmV0", 7)


def attempt(endpoint_id: str, at_ms: int, number: int, status: int | None) -> Attempt:
    error = None if status == 200 else "timed out"
    return Attempt(endpoint_id, at_ms, "msg_1", "pin.pinned", number, status, error, 12)


def test_a_tenants_endpoints_are_its_own_and_read_back_whole(repository):
    # Given endpoints of two tenants
    mine, other = endpoint("alice", "ep_a"), endpoint("bob", "ep_b")
    repository.add(mine)
    repository.add(other)
    # When each tenant's are read
    # Then each sees its own, whole, and none of the other's
    assert repository.of_tenant("alice") == [mine]
    assert repository.get("alice", "ep_a") == mine
    assert repository.get("alice", "ep_b") is None
    assert repository.of_tenant("carol") == []


def test_removing_an_endpoint_says_whether_there_was_one(repository):
    # Given one endpoint
    repository.add(endpoint("alice", "ep_a"))
    # When it is removed twice, and another tenant tries to remove it
    assert repository.remove("bob", "ep_a") is False
    assert repository.remove("alice", "ep_a") is True
    assert repository.remove("alice", "ep_a") is False
    # Then it is gone
    assert repository.get("alice", "ep_a") is None


def test_attempts_come_newest_first_up_to_the_limit(repository):
    # Given three attempts of one endpoint and one of another
    for at_ms, number, status in ((1000, 1, None), (2000, 2, 500), (3000, 3, 200)):
        repository.log(attempt("ep_a", at_ms, number, status), expires_ms=9_000_000)
    repository.log(attempt("ep_b", 1500, 1, 200), expires_ms=9_000_000)
    # When the endpoint's last two are read
    last = repository.attempts("ep_a", 2)
    # Then they are the newest, whole
    assert last == [attempt("ep_a", 3000, 3, 200), attempt("ep_a", 2000, 2, 500)]
    assert [a.delivered for a in last] == [True, False]
