"""What usage metering and quotas add to DynamoDB work, counted on the
clients the service uses (bench.support.DynamoMeter), before and after.

"Before" is the same run with the usage items left out of the pins'
transactions and no quota check (the service as it was); "after" is the
service as it is, for a tenant on the stage's default plan (`unlimited`) and
for one on `free` (every limit set, so every check reads). Per request:
read and write requests, transaction items and the usage items among them;
per pin lifecycle (create, pinning, pinned, delete; and a replace of a
pinned pin): the same, with the worker's bytes check where the pin becomes
pinned; and the stream function's fold of the lifecycle's changes.

    .venv/bin/python -m bench.usage_cost [--quick]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.support import (
    DynamoMeter,
    Tally,
    api_client,
    build_stack,
    cheap_moto_transactions,
    cid_for,
    fake_credentials,
    median,
    print_table,
    quick_flag,
    verdict,
)

MODES = ("before", "after: unlimited plan", "after: free plan")
FOLD = "fold (stream function), per lifecycle"


@dataclass
class Counted:
    reads: list[float]
    writes: list[float]
    tx_items: list[float]
    usage_items: list[float]
    rcu: list[float]


class UsageItemMeter:
    """Counts the usage items (usage_keys: `u#~` changes) put in each
    transaction, and the operator's unique-bytes items (a CID's hold, the
    operator's months) written in them."""

    def __init__(self) -> None:
        self.items = 0
        self.unique_items = 0

    def attach(self, client: Any) -> None:
        client.meta.events.register(
            "before-parameter-build.dynamodb.TransactWriteItems", self._before, unique_id=f"usage-{id(self)}"
        )

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        for entry in params.get("TransactItems", []):
            put = entry.get("Put", {}).get("Item", {})
            if put.get("sk", {}).get("S", "").startswith("u#~"):
                self.items += 1
            key = put or entry.get("Update", {}).get("Key", {})
            if key.get("pk", {}).get("S", "").startswith(("#cid#", "#operator#")):
                self.unique_items += 1


@contextmanager
def _mode(services: Any, mode: str) -> Iterator[None]:
    """The service as it was (no usage items, no quotas) for `before`."""
    from chalicelib.storage import pin_store

    if mode != "before":
        yield
        return
    real_items, real_quotas = pin_store.usage_change_items, services.pins._quotas
    pin_store.usage_change_items = lambda *_: []  # type: ignore[assignment]
    services.pins._quotas = None
    try:
        yield
    finally:
        pin_store.usage_change_items = real_items  # type: ignore[assignment]
        services.pins._quotas = real_quotas


def measure(n: int) -> dict[str, dict[str, Counted]]:
    """Each step `n` times, in each mode."""
    fake_credentials()
    cheap_moto_transactions()
    from moto import mock_aws

    results: dict[str, dict[str, Counted]] = {}
    with mock_aws():
        stack = build_stack("usagecost")
        services = stack.services
        meter, usage_items = DynamoMeter(), UsageItemMeter()
        free_tenant, free_token = stack.new_tenant("free")
        services.plan_admin.set_plan(free_tenant, "free")
        tokens = {MODES[0]: stack.token, MODES[1]: stack.token, MODES[2]: free_token}
        tenants = {MODES[0]: stack.tenant_id, MODES[1]: stack.tenant_id, MODES[2]: free_tenant}
        with api_client(services, stack.token) as api:
            meter.attach()
            usage_items.attach(services.dynamo.connection.client)
            for mode in MODES:
                api.token, tenant = tokens[mode], tenants[mode]
                # Warm: token, fleet and plan cached, as in a warm container.
                warm = api.ok("POST", "/pins", 202, body={"cid": cid_for(f"warm/{mode}")})
                api.ok("GET", f"/pins/{warm['requestid']}", 200)
                with _mode(services, mode):
                    results[mode] = _scenario(api, services, tenant, mode, n, meter, usage_items)
    return results


def _scenario(
    api: Any, services: Any, tenant: str, mode: str, n: int, meter: DynamoMeter, usage: UsageItemMeter
) -> dict[str, Counted]:
    found: dict[str, Counted] = {}

    def each(label: str, step: Callable[[int], Any]) -> None:
        counted = Counted([], [], [], [], [])
        for i in range(n):
            mark, items = meter.mark(), usage.items
            step(i)
            tally: Tally = meter.since(mark).without("-api-tokens")
            counted.reads.append(tally.reads)
            counted.writes.append(tally.writes)
            counted.tx_items.append(sum(tally.tx_items))
            counted.usage_items.append(usage.items - items)
            counted.rcu.append(tally.rcu)
        found[label] = counted

    created: list[str] = []
    pinned: list[str] = []

    def post(i: int) -> None:
        created.append(api.ok("POST", "/pins", 202, body={"cid": cid_for(f"{mode}/{i}")})["requestid"])

    def worker_pins(i: int) -> None:
        """The worker's writes (pinning; pinned with the DAG's size) and its bytes check."""
        pin = services.pins.get(tenant, created[i])
        pinning = services.store.update(pin, status="pinning")
        if services.pins._quotas is not None:
            services.quota_check.over_bytes(tenant, 1000)
        services.store.update(pinning, status="pinned", info={"dag_size": "1000"})
        pinned.append(created[i])

    def replace(i: int) -> None:
        body = {"cid": cid_for(f"{mode}/{i}/v2")}
        created[i] = api.ok("POST", f"/pins/{created[i]}", 202, body=body)["requestid"]

    each("POST /pins", post)
    each("GET /pins/{requestid}", lambda i: api.ok("GET", f"/pins/{created[i]}", 200))
    each("GET /pins?status=pinned", lambda i: api.ok("GET", "/pins", 200, params={"status": "pinned"}))
    each("worker: pinning, pinned", worker_pins)
    each("POST /pins/{requestid} (replace a pinned pin)", replace)
    each("DELETE /pins/{requestid}", lambda i: api.ok("DELETE", f"/pins/{created[i]}", 202))
    if mode != MODES[0]:
        each("GET /usage", lambda i: api.ok("GET", "/usage", 200))
    found[FOLD] = _fold_per_lifecycle(services, f"{tenant}#0", mode, n, meter, usage)
    return found


def _fold_per_lifecycle(
    services: Any, shard: str, mode: str, n: int, meter: DynamoMeter, usage: UsageItemMeter
) -> Counted:
    """The stream function's fold of the `n` lifecycles' changes, at once (as
    a busy shard's are), divided by `n`; its usage items: the unique bytes' ones."""
    mark, unique = meter.mark(), usage.unique_items
    _fold(services, shard, mode)
    tally: Tally = meter.since(mark)
    per = [tally.reads / n], [tally.writes / n], [sum(tally.tx_items) / n], [(usage.unique_items - unique) / n]
    return Counted(*per, [tally.rcu / n])


def _fold(services: Any, shard: str, mode: str) -> None:
    """The stream function's work, spread over the lifecycles: all of them folded by the first."""
    services.folder.fold(shard)
    if mode != MODES[0]:
        services.usage_folder.fold(shard)


def _cell(values: Sequence[float]) -> str:
    return f"{median(values):.3g} / {max(values):.3g}" if values else "-"


def report(results: dict[str, dict[str, Counted]]) -> bool:
    before = results[MODES[0]]
    rows = []
    met = True
    for label in results[MODES[2]]:
        for mode in MODES:
            counted = results[mode].get(label)
            if counted is None:
                continue
            extra_reads = (
                ""
                if mode == MODES[0] or label not in before
                else f"{median(counted.reads) - median(before[label].reads):+.3g}"
            )
            rows.append(
                [
                    label,
                    mode,
                    _cell(counted.reads),
                    extra_reads,
                    f"{median(counted.rcu):.1f}",
                    _cell(counted.writes),
                    _cell(counted.tx_items),
                    _cell(counted.usage_items),
                ]
            )
            if label.startswith("GET /pins") and mode != MODES[0]:
                met = met and median(counted.reads) == median(before[label].reads)
            if mode != MODES[0] and label not in ("GET /usage",) and not label.startswith("fold"):
                met = met and median(counted.writes) == median(before[label].writes)
                met = met and max(counted.usage_items) <= (2 if label.startswith("worker") else 1)
    print_table(
        "usage_cost: DynamoDB requests per request and per lifecycle step (median / max), beyond authentication",
        ["step", "service", "read reqs", "extra reads", "~RCU", "write reqs", "items in tx", "usage items"],
        rows,
        note="usage items: items of the usage ledger in the step's transactions (one per status change that moves bytes: "
        "the pinned write; a delete or replace of a pinned pin). The worker step is two status changes. The fold: "
        "every lifecycle's changes folded at once, divided by the lifecycles; each pins a CID of its own, whose "
        "hold starts and ends: its usage items are the unique bytes' (the CIDs' holds, read in one BatchGetItem, "
        "and the operator's month items), in the fold's transaction.",
    )
    print(
        "verdict: "
        + verdict(met, "no extra reads on GETs, no extra write requests, at most one usage item per status change")
    )
    return met


def run(quick: bool) -> dict[str, Any]:
    results = measure(5 if quick else 30)
    return {"met": report(results), "results": results}


if __name__ == "__main__":
    run(quick_flag())
