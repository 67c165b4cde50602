"""Which storage providers a CID's new copies go to: the documented rule.

A provider is a candidate when all of these hold:
1. the backend's registry lists it as active;
2. it is on the allow-list (FILECOIN_PROVIDERS), when the stage has one;
3. it is not excluded (FILECOIN_EXCLUDED_PROVIDERS);
4. its region is one of FILECOIN_REGIONS, when the stage names some and the
   registry tells the provider's region (an unknown region is not refused:
   registries rarely say);
5. it never had a copy of the CID, in any state: never two copies with one
   provider; a repair goes to another provider; and a copy ended as no
   longer wanted is not made again with the same provider (a backend may
   authorise one copy per provider and piece: PDP's authorisation nonce is
   derived from them, so a second copy would find the first, ended, and
   the tracker would ask again and again). When the CID has been with
   every provider, it waits with "no provider available".

Candidates are taken in the order of SHA-256(CID, provider id): the same
CID always prefers the same providers (a retry or a second tracker picks
the same ones, which the repository's conditional write then refuses),
while different CIDs spread over all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from chalicelib.filecoin.backend import Provider


@dataclass(frozen=True)
class ProviderRule:
    """The stage's settings of the rule (empty: no allow-list, no region limit)."""

    allowed: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()

    def admits(self, provider: Provider) -> bool:
        if not provider.active or provider.provider_id in self.excluded:
            return False
        if self.allowed and provider.provider_id not in self.allowed:
            return False
        return not (self.regions and provider.region is not None and provider.region not in self.regions)


def choose(
    cid: str, providers: Sequence[Provider], count: int, rule: ProviderRule, shunned: Collection[str]
) -> list[Provider]:
    """Up to `count` providers for new copies of `cid`, never one of `shunned`
    (those which had a copy of it)."""
    candidates = [p for p in providers if rule.admits(p) and p.provider_id not in shunned]
    unique = {provider.provider_id: provider for provider in candidates}
    return sorted(unique.values(), key=lambda provider: _spread(cid, provider.provider_id))[: max(count, 0)]


def _spread(cid: str, provider_id: str) -> bytes:
    return hashlib.sha256(f"{cid}\0{provider_id}".encode()).digest()


def id_list(raw: str) -> frozenset[str]:
    """A setting's comma-separated ids or regions."""
    return frozenset(part.strip() for part in raw.split(",") if part.strip())
