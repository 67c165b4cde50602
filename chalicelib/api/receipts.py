"""GET /pins/{requestid}/receipts (an extension, openapi.yaml): a request's
Filecoin copies, wanted and proving, and the receipt of every copy of its
CID ever begun (chalicelib.filecoin): live, lost and ended, oldest first.

The copies belong to the CID, shared by every request holding its archive;
what a request wants is its own (`meta["filecoin.copies"]`, its tenant's,
the stage's: chalicelib.filecoin.wanted), recorded when its archive is held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.filecoin.backend import BackendUnavailable, CopyState, FilecoinBackend
from chalicelib.filecoin.repository import CopyRecord, CopyRepository
from chalicelib.filecoin.tracker import OFF, PENDING
from chalicelib.pins.pin import Pin
from chalicelib.pins.timestamps import format_ms

logger = logging.getLogger("pinning.api")

# How long a container keeps the providers' names (the registry changes rarely).
NAMES_SECONDS = 600.0


class ProviderNames:
    """The backend's providers' names by id, read at most every NAMES_SECONDS
    per container; unreadable (the chain RPC down), the last ones read, or none."""

    def __init__(
        self, backend: FilecoinBackend, seconds: float = NAMES_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._backend = backend
        self._seconds = seconds
        self._clock = clock
        self._names: dict[str, str] = {}
        self._read_at: float | None = None

    def __call__(self) -> Mapping[str, str]:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._seconds:
            try:
                self._names = {provider.provider_id: provider.name for provider in self._backend.providers()}
            except BackendUnavailable as error:
                logger.warning("provider names unavailable", extra={"error": str(error)})
            self._read_at = now
        return self._names


class Receipts:
    """The receipts document of a request (read scope; the caller found the pin)."""

    def __init__(
        self,
        copies: CopyRepository,
        wanted: Callable[[str, Mapping[str, str]], int],
        names: Callable[[], Mapping[str, str]],
    ) -> None:
        self._copies = copies
        self._wanted = wanted
        self._names = names

    def of(self, pin: Pin) -> dict[str, Any]:
        records = self._copies.records(pin.cid_key)
        recorded = next(
            (
                want.copies
                for want in records.wants
                if (want.tenant_id, want.request_id) == (pin.tenant_id, pin.request_id)
            ),
            None,
        )
        # As the tracker last showed it (a plan's quota may cap the want); else as
        # recorded; not recorded yet (the archive comes first): what it will want.
        wanted = _shown_wanted(pin.info)
        if wanted is None:
            wanted = self._wanted(pin.tenant_id, pin.meta) if recorded is None else recorded
        proving = sum(1 for record in records.copies if record.receipt.state is CopyState.PROVING)
        names = self._names() if records.copies else {}
        return {
            "copies_wanted": wanted,
            "copies_proving": min(proving, wanted),
            # The tracker's word on the request's info, once it has shown one.
            "filecoin": pin.info.get("filecoin") or (PENDING if wanted else OFF),
            "receipts": [receipt_json(record, names) for record in records.copies],
        }


def _shown_wanted(info: Mapping[str, str]) -> int | None:
    """The wanted part of info's `filecoin_copies` ("<proving>/<wanted>"), if shown."""
    _, slash, wanted = info.get("filecoin_copies", "").partition("/")
    return int(wanted) if slash and wanted.isdigit() else None


def receipt_json(record: CopyRecord, names: Mapping[str, str]) -> dict[str, Any]:
    receipt = record.receipt
    return {
        "provider_id": receipt.provider_id,
        "provider": names.get(receipt.provider_id),
        "piece_cid": receipt.piece_cid,
        "state": receipt.state.value,
        "data_set_id": receipt.data_set_id,
        "piece_id": receipt.piece_id,
        "transactions": list(receipt.transactions),
        "last_proven_epoch": receipt.last_proven_epoch,
        "ends_epoch": receipt.ends_epoch,
        "detail": receipt.detail,
        "created": format_ms(record.created_ms),
        "updated": format_ms(record.updated_ms),
    }
