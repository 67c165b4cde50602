"""The provider selection rule, case by case."""

from __future__ import annotations

import pytest

from chalicelib.filecoin.backend import Provider
from chalicelib.filecoin.selection import ProviderRule, choose, id_list

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def provider(provider_id: str, region: str | None = None, active: bool = True) -> Provider:
    return Provider(provider_id, f"sp {provider_id}", f"https://{provider_id}.example", region, active)


FLEET = [
    provider("f01", "EU"),
    provider("f02", "US"),
    provider("f03"),
    provider("f04", "EU", active=False),
    provider("f05", "AS"),
]


@pytest.mark.parametrize(
    ("rule", "shunned", "expected"),
    [
        # Every active provider is a candidate; an inactive one never is.
        (ProviderRule(), set(), {"f01", "f02", "f03", "f05"}),
        # The allow-list keeps only its own.
        (ProviderRule(allowed=frozenset({"f02", "f04", "f05"})), set(), {"f02", "f05"}),
        # Exclusions drop theirs.
        (ProviderRule(excluded=frozenset({"f01", "f03"})), set(), {"f02", "f05"}),
        # Regions drop a provider of another known region, keep an unknown one.
        (ProviderRule(regions=frozenset({"EU"})), set(), {"f01", "f03"}),
        # A provider with a live copy or a failure of the CID is never chosen.
        (ProviderRule(), {"f01", "f05"}, {"f02", "f03"}),
        # All rules at once.
        (ProviderRule(frozenset({"f01", "f02", "f03"}), frozenset({"f02"}), frozenset({"EU", "US"})), {"f03"}, {"f01"}),
    ],
)
def test_the_rule_admits_only_what_it_documents(rule, shunned, expected):
    # When as many as exist are asked for, then exactly the candidates come back
    chosen = choose(CID, FLEET, 10, rule, shunned)
    assert {p.provider_id for p in chosen} == expected
    assert len(chosen) == len(expected)


def test_the_order_is_the_same_for_one_cid_and_spreads_over_cids():
    # Given the fleet listed in two orders, when one provider is chosen for a CID, then the same one
    assert choose(CID, FLEET, 2, ProviderRule(), set()) == choose(CID, FLEET[::-1], 2, ProviderRule(), set())
    # And over many CIDs every active provider is someone's first choice
    firsts = {choose(f"bafkrei{n}", FLEET, 1, ProviderRule(), set())[0].provider_id for n in range(200)}
    assert firsts == {"f01", "f02", "f03", "f05"}


def test_no_more_than_asked_and_none_for_none():
    assert len(choose(CID, FLEET, 2, ProviderRule(), set())) == 2
    assert choose(CID, FLEET, 0, ProviderRule(), set()) == []


def test_settings_lists_are_comma_separated():
    assert id_list(" f01, f02,,") == frozenset({"f01", "f02"})
    assert id_list("") == frozenset()
