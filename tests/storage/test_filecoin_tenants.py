"""TenantCopies contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

import pytest

from chalicelib.storage.filecoin_tenants import DynamoTenantCopies
from chalicelib.storage.tenant_repository import DynamoTenantRepository
from chalicelib.tenants.repository import Tenant
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.filecoin_tenants import MemoryTenantCopies


@pytest.fixture(params=BACKENDS)
def tenant_copies(request):
    # Given one tenant, alice
    if request.param == "memory":
        return MemoryTenantCopies({"alice": None})
    dynamo_connection(request)
    DynamoTenantRepository().add(Tenant("alice", "Alice", 1))
    return DynamoTenantCopies()


def test_a_tenant_has_the_stages_copies_until_it_sets_its_own(tenant_copies):
    assert tenant_copies.copies_of("alice") is None
    assert tenant_copies.set_copies("alice", 3)
    assert tenant_copies.copies_of("alice") == 3
    assert tenant_copies.set_copies("alice", 0)
    assert tenant_copies.copies_of("alice") == 0
    assert tenant_copies.set_copies("alice", None)
    assert tenant_copies.copies_of("alice") is None


def test_no_such_tenant_is_not_created(tenant_copies):
    assert not tenant_copies.set_copies("mallory", 2)
    assert tenant_copies.copies_of("mallory") is None
