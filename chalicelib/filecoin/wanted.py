"""How many Filecoin copies a request wants.

The request's own `meta["filecoin.copies"]` (chalicelib.pins.model checks it
at POST /pins: a whole number 0..FILECOIN_MAX_COPIES), else its tenant's
setting (`python -m cli.admin tenants filecoin`), else the stage's
FILECOIN_COPIES; 0 wants none. It is read when the request's archive is
held (chalicelib.cold.archiver): a tenant's or the stage's change applies to
requests archived or pinned again after it, as a tier change does, and to
those archived already once an operator says so (chalicelib.filecoin.backfill). A
hot-only request holds no archive, hence wants no copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from chalicelib.pins.model import FILECOIN_MAX_COPIES, filecoin_copies_of


class TenantCopies(Protocol):
    """Each tenant's own setting, where it is kept (the tenants table)."""

    def copies_of(self, tenant_id: str) -> int | None:
        """The tenant's copies, or None: the stage's (or no such tenant)."""

    def set_copies(self, tenant_id: str, copies: int | None) -> bool:
        """Store the tenant's copies (None: the stage's); False, writing
        nothing, when there is no such tenant."""


def checked_copies(copies: int) -> int:
    if not 0 <= copies <= FILECOIN_MAX_COPIES:
        raise ValueError(f"Filecoin copies must be from 0 to {FILECOIN_MAX_COPIES}, not {copies}")
    return copies


class WantedCopies:
    def __init__(self, tenants: TenantCopies, stage_copies: int) -> None:
        self._tenants = tenants
        self._stage = checked_copies(stage_copies)

    def of_request(self, tenant_id: str, meta: Mapping[str, str]) -> int:
        """The copies a request of the tenant with this `meta` wants."""
        own = filecoin_copies_of(meta)
        if own is not None:
            return own
        tenant = self._tenants.copies_of(tenant_id)
        return self._stage if tenant is None else tenant
