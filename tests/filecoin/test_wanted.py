"""The copies a request wants: its meta, else its tenant's, else the stage's;
a meta value out of range is refused at POST /pins."""

from __future__ import annotations

import pytest

from chalicelib.filecoin.wanted import WantedCopies, checked_copies
from chalicelib.pins.model import FILECOIN_MAX_COPIES, InvalidRequest, check_meta
from tests.support.cids import cid_v1
from tests.support.memory.filecoin_tenants import MemoryTenantCopies


@pytest.fixture
def wanted() -> WantedCopies:
    return WantedCopies(MemoryTenantCopies({"alice": 3, "bob": None, "carol": 0}), stage_copies=2)


@pytest.mark.parametrize(
    ("tenant_id", "meta", "copies"),
    [
        ("alice", {"filecoin.copies": "1"}, 1),  # the request's own wins
        ("alice", {"filecoin.copies": "0"}, 0),  # even 0: this request wants none
        ("alice", {}, 3),  # else the tenant's
        ("carol", {}, 0),  # a tenant's 0 is its own (off)
        ("bob", {}, 2),  # else the stage's
        ("nobody", {"other": "x"}, 2),
    ],
)
def test_copies_come_from_meta_then_tenant_then_stage(wanted, tenant_id, meta, copies):
    assert wanted.of_request(tenant_id, meta) == copies


@pytest.mark.parametrize("value", ["-1", "x", "", "1.5", " 2", str(FILECOIN_MAX_COPIES + 1), "٣"])
def test_a_meta_value_out_of_range_is_invalid(value):
    with pytest.raises(InvalidRequest) as raised:
        check_meta({"filecoin.copies": value})
    assert raised.value.reason == "INVALID_META"
    assert "filecoin.copies" in raised.value.details


def test_every_value_in_range_is_valid():
    for copies in range(FILECOIN_MAX_COPIES + 1):
        assert check_meta({"filecoin.copies": str(copies)}) == {"filecoin.copies": str(copies)}


def test_a_stage_or_tenant_setting_out_of_range_is_refused():
    with pytest.raises(ValueError):
        checked_copies(FILECOIN_MAX_COPIES + 1)
    with pytest.raises(ValueError):
        WantedCopies(MemoryTenantCopies(), stage_copies=-1)


@pytest.mark.parametrize("value", ["11", "two"])
def test_post_pins_with_a_bad_value_is_a_400_in_the_failure_shape(api, value):
    # When a pin asks for copies out of range
    reply = api.request("POST", "/pins", json_body={"cid": cid_v1("copies"), "meta": {"filecoin.copies": value}})
    # Then it is refused, saying which key and what it may be; nothing is pinned
    assert reply.status == 400
    assert reply.json["error"]["reason"] == "INVALID_META"
    assert "filecoin.copies" in reply.json["error"]["details"]
    assert api.request("GET", "/pins").json["count"] == 0


def test_post_pins_with_a_good_value_is_accepted(api):
    reply = api.request("POST", "/pins", json_body={"cid": cid_v1("copies"), "meta": {"filecoin.copies": "3"}})
    assert reply.status == 202
    assert reply.json["pin"]["meta"] == {"filecoin.copies": "3"}
