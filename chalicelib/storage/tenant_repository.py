"""The tenants and api-tokens tables behind chalicelib.tenants.repository.

A throttled table raises StorageBusy, as every repository does."""

from __future__ import annotations

from collections.abc import Iterator

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import condition_failed
from chalicelib.storage.tenant_record import TENANT_DIRECTORY, ApiTokenRecord, TenantRecord
from chalicelib.tenants.rate_limits import RateLimits
from chalicelib.tenants.repository import AlreadyExists, ApiToken, Tenant
from chalicelib.tenants.scopes import DEFAULT_SCOPE


class DynamoTenantRepository:
    @busy_as_storage_busy()
    def add(self, tenant: Tenant) -> None:
        record = TenantRecord(tenant.tenant_id, name=tenant.name, created_ms=tenant.created_ms)
        try:
            record.save(condition=TenantRecord.tenant_id.does_not_exist())
        except PutError as error:
            if condition_failed(error):
                raise AlreadyExists(tenant.tenant_id) from None
            raise

    @busy_as_storage_busy()
    def get(self, tenant_id: str) -> Tenant | None:
        try:
            return _tenant_of(TenantRecord.get(tenant_id))
        except TenantRecord.DoesNotExist:
            return None

    def all(self) -> Iterator[Tenant]:
        return (_tenant_of(record) for record in TenantRecord.by_creation.query(TENANT_DIRECTORY))

    @busy_as_storage_busy()
    def set_tier(self, tenant_id: str, tier: str | None, cold_after_days: int | None) -> Tenant | None:
        record = TenantRecord(tenant_id)
        actions: list[Action] = [
            TenantRecord.tier.remove() if tier is None else TenantRecord.tier.set(tier),
            TenantRecord.cold_after_days.remove()
            if cold_after_days is None
            else TenantRecord.cold_after_days.set(cold_after_days),
        ]
        return _tenant_of(record) if update_tenant(record, actions) else None

    @busy_as_storage_busy()
    def set_rate_limits(self, tenant_id: str, limits: RateLimits | None) -> Tenant | None:
        record = TenantRecord(tenant_id)
        values = (
            (TenantRecord.rate_per_second, None if limits is None else limits.per_second),
            (TenantRecord.rate_burst, None if limits is None else limits.burst),
            (TenantRecord.token_rate_per_second, None if limits is None else limits.token_per_second),
            (TenantRecord.token_rate_burst, None if limits is None else limits.token_burst),
        )
        actions: list[Action] = [
            attribute.remove() if value is None else attribute.set(value) for attribute, value in values
        ]
        return _tenant_of(record) if update_tenant(record, actions) else None


def update_tenant(record: TenantRecord, actions: list[Action]) -> bool:
    """Applies `actions` to a tenant's record in place (`record` reads back
    the result); False, and nothing written, when there is no such tenant."""
    try:
        record.update(actions=actions, condition=TenantRecord.tenant_id.exists())
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


class DynamoTokenRepository:
    @busy_as_storage_busy()
    def add(self, token: ApiToken) -> None:
        record = ApiTokenRecord(
            token.token_hash,
            token_id=token.token_id,
            tenant_id=token.tenant_id,
            label=token.label,
            created_ms=token.created_ms,
            revoked_ms=token.revoked_ms,
            scope=token.scope,
        )
        try:
            record.save(condition=ApiTokenRecord.token_hash.does_not_exist())
        except PutError as error:
            if condition_failed(error):
                raise AlreadyExists(token.token_id) from None
            raise

    @busy_as_storage_busy()
    def get(self, token_hash: str) -> ApiToken | None:
        # Every API request reads its token: throttled, the client is told to retry.
        try:
            return _token_of(ApiTokenRecord.get(token_hash))
        except ApiTokenRecord.DoesNotExist:
            return None

    @busy_as_storage_busy()
    def of_tenant(self, tenant_id: str) -> list[ApiToken]:
        return [_token_of(record) for record in ApiTokenRecord.by_tenant.query(tenant_id)]

    @busy_as_storage_busy()
    def revoke(self, token: ApiToken, revoked_ms: int) -> ApiToken:
        record = ApiTokenRecord(token.token_hash)
        try:
            # Set if absent: the first revocation's time stays.
            record.update(
                actions=[ApiTokenRecord.revoked_ms.set(revoked_ms)],
                condition=ApiTokenRecord.token_hash.exists() & ApiTokenRecord.revoked_ms.does_not_exist(),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            stored = self.get(token.token_hash)
            return token if stored is None else stored
        return _token_of(record)


def _tenant_of(record: TenantRecord) -> Tenant:
    return Tenant(
        record.tenant_id,
        record.name,
        record.created_ms,
        record.tier,
        record.cold_after_days,
        rate_limits=_rate_limits_of(record),
    )


def _rate_limits_of(record: TenantRecord) -> RateLimits | None:
    if record.rate_per_second is None:
        return None
    return RateLimits(record.rate_per_second, record.rate_burst, record.token_rate_per_second, record.token_rate_burst)


def _token_of(record: ApiTokenRecord) -> ApiToken:
    return ApiToken(
        record.token_hash,
        record.token_id,
        record.tenant_id,
        record.label,
        record.created_ms,
        record.revoked_ms,
        scope=record.scope or DEFAULT_SCOPE,
    )
