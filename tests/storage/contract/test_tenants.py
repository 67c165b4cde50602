"""TenantRepository and TokenRepository contract: the same behaviour in memory and on DynamoDB
(a tenant's own rate limits and a token's scope included)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.storage.tenant_repository import DynamoTenantRepository, DynamoTokenRepository
from chalicelib.tenants.rate_limits import RateLimits
from chalicelib.tenants.repository import AlreadyExists, ApiToken, Tenant
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.tenants import MemoryTenants, MemoryTokens

TOKEN = ApiToken("hash-1", "tok_1", "tn_a", "laptop", 100)
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


def test_tenants_read_back_and_list_oldest_first(tenants):
    newer, older = Tenant("tn_b", "bob", 20), Tenant("tn_a", "alice", 10)
    tenants.add(newer)
    tenants.add(older)
    assert tenants.get("tn_a") == older
    assert tenants.get("tn_zz") is None
    assert list(tenants.all()) == [older, newer]


def test_a_taken_tenant_id_is_refused_and_the_first_tenant_kept(tenants):
    tenants.add(Tenant("tn_a", "alice", 10))
    with pytest.raises(AlreadyExists):
        tenants.add(Tenant("tn_a", "mallory", 11))
    assert tenants.get("tn_a") == Tenant("tn_a", "alice", 10)


def test_tokens_read_back_by_hash_and_by_tenant(tokens):
    other = ApiToken("hash-2", "tok_2", "tn_b", "ci", 200)
    tokens.add(TOKEN)
    tokens.add(other)
    assert tokens.get("hash-1") == TOKEN
    assert tokens.get("hash-9") is None
    assert tokens.of_tenant("tn_a") == [TOKEN]
    assert tokens.of_tenant("tn_c") == []


def test_a_taken_token_hash_is_refused(tokens):
    tokens.add(TOKEN)
    with pytest.raises(AlreadyExists):
        tokens.add(replace(TOKEN, tenant_id="tn_b"))
    assert tokens.get("hash-1") == TOKEN


def test_a_second_revocation_keeps_the_first_time(tokens):
    tokens.add(TOKEN)
    revoked = tokens.revoke(TOKEN, 300)
    assert revoked == replace(TOKEN, revoked_ms=300)
    assert tokens.revoke(TOKEN, 400) == revoked
    assert tokens.get("hash-1") == revoked


def test_a_tenants_tier_is_set_in_place_and_cleared(tenants):
    # Given a tenant following the stage's tier
    tenants.add(Tenant("tn_a", "alice", 10))
    assert (tenants.get("tn_a").tier, tenants.get("tn_a").cold_after_days) == (None, None)
    # When its tier is set, then it is stored (and listed) with it
    assert tenants.set_tier("tn_a", "cold-only", 7) == Tenant("tn_a", "alice", 10, "cold-only", 7)
    assert tenants.get("tn_a") == Tenant("tn_a", "alice", 10, "cold-only", 7)
    assert list(tenants.all()) == [Tenant("tn_a", "alice", 10, "cold-only", 7)]
    # And cleared, it follows the stage again
    assert tenants.set_tier("tn_a", None, None) == Tenant("tn_a", "alice", 10)
    assert tenants.get("tn_a") == Tenant("tn_a", "alice", 10)


def test_no_tier_is_set_on_an_unknown_tenant(tenants):
    assert tenants.set_tier("tn_zz", "hot-only", None) is None
    assert tenants.get("tn_zz") is None


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
