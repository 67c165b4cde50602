"""Tenants and their API tokens."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute

TENANT_DIRECTORY = "tenants"


class TenantsByCreation(GlobalSecondaryIndex["TenantRecord"]):
    """Every tenant in one partition, oldest first: the operator's listing
    is a Query (tenants number in the thousands, not millions)."""

    class Meta:
        index_name = "tenants-by-creation"
        projection = AllProjection()

    directory = UnicodeAttribute(hash_key=True)
    created_ms = IntegerAttribute(range_key=True)


class TenantRecord(Model):
    class Meta:
        table_name = "tenants"
        billing_mode = "PAY_PER_REQUEST"

    tenant_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    created_ms = IntegerAttribute()
    directory = UnicodeAttribute(default=TENANT_DIRECTORY)
    # The tenant's storage tier and cold-after days (chalicelib.cold.tiers); absent: the stage's.
    tier = UnicodeAttribute(null=True)
    cold_after_days = IntegerAttribute(null=True)
    # The Filecoin copies the tenant's requests want (chalicelib.filecoin.wanted); absent: the stage's.
    filecoin_copies = IntegerAttribute(null=True)
    # The tenant's own request limits (chalicelib.tenants.rate_limits), all four or none: the stage's.
    rate_per_second = IntegerAttribute(null=True)
    rate_burst = IntegerAttribute(null=True)
    token_rate_per_second = IntegerAttribute(null=True)
    token_rate_burst = IntegerAttribute(null=True)

    by_creation = TenantsByCreation()


class TokensByTenant(GlobalSecondaryIndex["ApiTokenRecord"]):
    """Admin listing of a tenant's tokens; never on the request path."""

    class Meta:
        index_name = "tenant-tokens"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    token_id = UnicodeAttribute(range_key=True)


class ApiTokenRecord(Model):
    """Keyed by the SHA-256 of the secret: the secret itself is never stored."""

    class Meta:
        table_name = "api-tokens"
        billing_mode = "PAY_PER_REQUEST"

    token_hash = UnicodeAttribute(hash_key=True)
    token_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    label = UnicodeAttribute()
    created_ms = IntegerAttribute()
    revoked_ms = IntegerAttribute(null=True)
    # chalicelib.tenants.scopes; absent (tokens issued before scopes): write.
    scope = UnicodeAttribute(null=True)

    by_tenant = TokensByTenant()
