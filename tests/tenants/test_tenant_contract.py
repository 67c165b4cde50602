"""The tenants' and tokens' repositories keep a tenant's own rate limits and
a token's scope the same way in memory and on DynamoDB."""

from __future__ import annotations

import pytest

from chalicelib.storage.tenant_repository import DynamoTenantRepository, DynamoTokenRepository
from chalicelib.tenants.rate_limits import RateLimits
from chalicelib.tenants.repository import ApiToken, Tenant
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.tenants import MemoryTenants, MemoryTokens

ALICE = Tenant("tn_a", "alice", 10)
LIMITS = RateLimits(per_second=50, burst=500, token_per_second=10, token_burst=100)


@pytest.fixture(params=BACKENDS)
def tenants(request):
    if request.param == "memory":
        return MemoryTenants()
    dynamo_connection(request)
    return DynamoTenantRepository()


@pytest.fixture(params=BACKENDS)
def tokens(request):
    if request.param == "memory":
        return MemoryTokens()
    dynamo_connection(request)
    return DynamoTokenRepository()


def test_a_tenants_rate_limits_are_set_read_back_and_cleared(tenants):
    # given a tenant on the stage's limits, with a tier of its own
    tenants.add(ALICE)
    tenants.set_tier("tn_a", "hot-only", None)
    assert tenants.get("tn_a").rate_limits is None
    # when its own limits are set, then they are stored, listed, and the tier kept
    stored = tenants.set_rate_limits("tn_a", LIMITS)
    assert stored == Tenant("tn_a", "alice", 10, "hot-only", None, rate_limits=LIMITS)
    assert tenants.get("tn_a") == stored
    assert list(tenants.all()) == [stored]
    # when cleared, then the tenant follows the stage's again
    assert tenants.set_rate_limits("tn_a", None).rate_limits is None
    assert tenants.get("tn_a") == Tenant("tn_a", "alice", 10, "hot-only", None)


def test_no_rate_limits_are_stored_for_an_unknown_tenant(tenants):
    assert tenants.set_rate_limits("tn_zz", LIMITS) is None
    assert tenants.get("tn_zz") is None


@pytest.mark.parametrize("scope", ["read", "write", "retrieve"])
def test_a_tokens_scope_reads_back_and_survives_revocation(tokens, scope):
    token = ApiToken("hash-1", "tok_1", "tn_a", "laptop", 100, scope=scope)
    tokens.add(token)
    assert tokens.get("hash-1") == token
    assert tokens.of_tenant("tn_a") == [token]
    assert tokens.revoke(token, 300).scope == scope
