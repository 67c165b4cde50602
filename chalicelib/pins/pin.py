"""A pin request as the service keeps it: a plain, immutable value.

Storage returns these and takes them back; nothing outside storage sees how
they are laid out in a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # an annotation only: the value loads without multiformats
    from chalicelib.pins.model import PinRequest


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class Pin:
    tenant_id: str
    created_ms: int
    request_id: str
    status: str
    cid: str  # as the client spelled it
    cid_key: str  # the content's canonical spelling (CIDv0 and v1 alike)
    name: str | None = None
    origins: Sequence[str] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    info: Mapping[str, str] = field(default_factory=dict)
    delegates: Sequence[str] = ()
    # Nodes that may hold the content for this request: an unpin releases each.
    node_ids: Sequence[str] = ()
    # Writes since creation: every update states the version it read (see PinRepository).
    version: int = 0

    def __post_init__(self) -> None:
        # Copies, so neither the caller nor a repository can change a pin in place.
        object.__setattr__(self, "origins", tuple(self.origins))
        object.__setattr__(self, "delegates", tuple(self.delegates))
        object.__setattr__(self, "node_ids", tuple(self.node_ids))
        object.__setattr__(self, "meta", _frozen_map(self.meta))
        object.__setattr__(self, "info", _frozen_map(self.info))

    def updated(
        self,
        status: str | None = None,
        info: Mapping[str, str] | None = None,
        node_ids: Sequence[str] | None = None,
    ) -> Pin:
        """The pin as an update of what is given writes it: one version on."""
        return replace(
            self,
            status=self.status if status is None else status,
            info=self.info if info is None else info,
            node_ids=self.node_ids if node_ids is None else node_ids,
            version=self.version + 1,
        )

    @property
    def finished(self) -> bool:
        """Pinned or failed: no worker changes its status any more."""
        return self.status in ("pinned", "failed")


def queued_pin(
    tenant_id: str,
    created_ms: int,
    request_id: str,
    request: PinRequest,
    delegates: Sequence[str],
    node_ids: Sequence[str],
) -> Pin:
    """A new request, before any worker has seen it."""
    return Pin(
        tenant_id=tenant_id,
        created_ms=created_ms,
        request_id=request_id,
        status="queued",
        cid=request.cid.text,
        cid_key=request.cid.key,
        name=request.name,
        origins=request.origins,
        meta=request.meta,
        delegates=delegates,
        node_ids=node_ids,
    )
