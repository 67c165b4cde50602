"""The bytes quota where bytes become known: a pin whose DAG would take its
tenant past the quota fails with the reason and its content is released;
one within it is pinned and counted (worker on fake Kubo nodes, moto)."""

from __future__ import annotations

from chalicelib.usage.plans import TenantPlan
from tests.support.cids import cid_v1
from tests.support.fake_kubo import BLOCK_BYTES
from tests.worker.conftest import current, fleet, holding, info_of, kubos, pin_request, queue  # noqa: F401


def bytes_quota(services, tenant_id: str, quota: int) -> None:
    services.tenant_quotas.stored.put(tenant_id, TenantPlan("unlimited", {"bytes": quota}))


def test_a_pin_past_the_bytes_quota_fails_and_is_released(fleet, kubos, queue):  # noqa: F811
    # given alice may pin 2 blocks' worth and asks for a DAG of 4
    cid = cid_v1("usage/over")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=4)
    bytes_quota(fleet, "alice", 2 * BLOCK_BYTES)
    record = fleet.pins.create("alice", pin_request(cid))
    # when the workers fetch it
    queue.run_until_empty()
    # then it failed saying why, no node keeps it, and nothing counts as pinned
    pin = current(fleet, record)
    assert pin is not None and pin.status == "failed"
    assert info_of(pin)["status_details"].startswith("over the bytes quota: 0 bytes pinned + ")
    assert holding(kubos, cid) == []
    assert fleet.usage.bytes_pinned("alice") == 0


def test_a_pin_within_the_bytes_quota_is_pinned_and_counted(fleet, kubos, queue):  # noqa: F811
    # given alice may pin 4 blocks' worth and asks for a DAG of 3
    cid = cid_v1("usage/within")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=3)
    bytes_quota(fleet, "alice", 4 * BLOCK_BYTES)
    record = fleet.pins.create("alice", pin_request(cid))
    # when the workers fetch it
    queue.run_until_empty()
    # then it is pinned and its DAG's size is alice's bytes
    pin = current(fleet, record)
    assert pin is not None and pin.status == "pinned"
    assert fleet.usage.bytes_pinned("alice") == int(info_of(pin)["dag_size"]) > 0
