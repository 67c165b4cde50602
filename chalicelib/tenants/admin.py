"""Operator actions on tenants and their tokens (the admin CLI's domain)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chalicelib.pins.timestamps import now_ms
from chalicelib.storage.tenant_record import TENANT_DIRECTORY, ApiTokenRecord, TenantRecord
from chalicelib.tenants.tokens import hash_secret, new_secret


class UnknownTenant(LookupError):
    pass


class UnknownToken(LookupError):
    pass


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    tenant_id: str
    label: str
    secret: str  # shown once, never stored


class TenantAdmin:
    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock

    def create_tenant(self, name: str) -> TenantRecord:
        record = TenantRecord("tn_" + secrets.token_hex(8), name=name, created_ms=self._clock())
        record.save(condition=TenantRecord.tenant_id.does_not_exist())
        return record

    def tenants(self) -> Iterator[TenantRecord]:
        return TenantRecord.by_creation.query(TENANT_DIRECTORY)

    def tenant(self, tenant_id: str) -> TenantRecord:
        try:
            return TenantRecord.get(tenant_id)
        except TenantRecord.DoesNotExist:
            raise UnknownTenant(tenant_id) from None

    def issue_token(self, tenant_id: str, label: str) -> IssuedToken:
        self.tenant(tenant_id)
        secret = new_secret()
        record = ApiTokenRecord(
            hash_secret(secret),
            token_id="tok_" + secrets.token_hex(6),
            tenant_id=tenant_id,
            label=label,
            created_ms=self._clock(),
        )
        record.save(condition=ApiTokenRecord.token_hash.does_not_exist())
        return IssuedToken(record.token_id, tenant_id, label, secret)

    def tokens(self, tenant_id: str) -> list[ApiTokenRecord]:
        return list(ApiTokenRecord.by_tenant.query(tenant_id))

    def revoke_token(self, tenant_id: str, token_id: str) -> ApiTokenRecord:
        record: ApiTokenRecord | None = next(
            iter(ApiTokenRecord.by_tenant.query(tenant_id, ApiTokenRecord.token_id == token_id)), None
        )
        if record is None:
            raise UnknownToken(token_id)
        if record.revoked_ms is None:
            record.update(actions=[ApiTokenRecord.revoked_ms.set(self._clock())])
        return record
