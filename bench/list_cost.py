"""Items DynamoDB reads for ONE `GET /pins` page: a small tenant versus one 20x
larger, side by side in one run, each on one shard and again on four.

Every tenant lives in the same tables (moto in-process, `mock_aws`) and is
written through `PinStore.create` only, one transaction per pin as the API
writes it: creation spread over 30 days (half one at a time, half in upload
bursts), each pin at the status it ends with (70% pinned, 10% each queued,
pinning, failed), then its count changes folded as the changes' stream
folds them. The four-shard tenants hold the same pins, their shard plan
raised (`ShardPlans.raise_to`) from before the first. Every tenant's counts
(`PinStore.count`) and every returned `count` and page are checked against a
brute-force answer computed from the bench's own record of what it wrote.
Nothing here reads an item, a key or a counter of the table directly: the
store's layout may change under it.

moto is made faster where it is slow for reasons that have nothing to do
with DynamoDB (a table copy per transaction, a sort of the whole table and a
walk of the whole partition per Query, re-sizing unchanged items); the
answers, ScannedCount and pages are the same with and without (see
bench/support.py and range_scoped_moto_queries).

    .venv/bin/python -m bench.list_cost [--quick]
"""

from __future__ import annotations

import bisect
import contextlib
import importlib
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bench.support import (
    Api,
    DynamoMeter,
    Tally,
    api_client,
    build_stack,
    cheap_moto_transactions,
    cid_for,
    fake_credentials,
    median,
    partition_scoped_moto_queries,
    print_table,
    quick_flag,
    read_only_moto_caches,
    verdict,
)

if TYPE_CHECKING:
    from chalicelib.pins.pin import Pin as StoredPin
    from chalicelib.storage.pin_store import PinStore

DAY_MS = 86_400_000
SPAN_MS = 30 * DAY_MS
END_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z: fixed, so runs are comparable
STATUS_MIX = (("pinned", 70), ("queued", 10), ("pinning", 10), ("failed", 10))
SHARED_NAME = "shared.txt"
SHARED_EVERY = 100  # 1% of a tenant's pins share one name
META_EVERY = 5  # 20% carry meta {"project": "p0".."p3", "rare": "r<k>"}
PROJECTS = 4
RARE_MATCHES = 10  # pins holding each "rare" value, whatever the tenant's size
POSITIONS = tuple(k / 20 for k in range(1, 20))  # `before` at 5%, 10%, ... 95% of the pins; 50% = the middle
SAMPLES = 5  # different cids / names per case
TARGET_RATIO = 1.2
SHARD_COUNTS = (1, 4)
SIZES = (1_000, 20_000)
QUICK_SIZES = (200, 2_000)


@dataclass(frozen=True)
class Planned:
    """One pin as the bench will write it, the same in every tenant of a size."""

    created_ms: int
    status: str
    cid_seed: str
    name: str
    meta: dict[str, str]


@dataclass
class Pin:
    """What the bench wrote: the brute-force answers are computed from these."""

    created_ms: int
    request_id: str
    status: str
    cid_key: str
    name: str | None
    meta: dict[str, str]


@dataclass
class Tenant:
    label: str
    tenant_id: str
    token: str
    shards: int
    pins: list[Pin] = field(default_factory=list)  # in creation order


# -- the emulator ---------------------------------------------------------------


_MOTO_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def _scoped_partition(table: Any, hash_key: Any, range_comparison: Any, range_objs: Any, kwargs: Any) -> Any:
    """The partition key of a base-table Query `<string sort key> BETWEEN a
    AND b` on one existing partition, else None (moto's own Query then)."""
    conditions = kwargs.get("hash_key_conditions") or [(table.hash_key_attr, hash_key)]
    if len(conditions) != 1 or conditions[0][0] != table.hash_key_attr or kwargs.get("index_name"):
        return None
    between = str(range_comparison).upper() == "BETWEEN" and all(value.type == "S" for value in range_objs)
    return conditions[0][1] if between and conditions[0][1] in table.items else None


@contextlib.contextmanager
def range_scoped_moto_queries() -> Iterator[None]:
    """A base-table Query `<sort key> BETWEEN a AND b` runs moto's own Query
    on a view of its partition: the items in that range after the page's
    start key, and the next item beyond it. moto sorts and walks every item
    of the partition on each Query (a pin is several items: a tenant's
    partition holds ~150,000 at 20,000 pins), yet counts and returns only
    items in the range after the start key, and ends a page that reached its
    Limit on the next item, in the range or not: the answer, ScannedCount and
    LastEvaluatedKey are the same. Each partition is sorted (in moto's string
    order) once until a write request comes."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_writes = {name: getattr(DynamoDBBackend, name) for name in _MOTO_WRITES}
    writes = [0]
    in_order: dict[tuple[int, Any], tuple[int, list[Any], list[str]]] = {}

    def counted(write: Any) -> Any:
        def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return write(self, *args, **kwargs)
            finally:
                writes[0] += 1

        return counting

    def view(table: Any, hash_value: Any, range_objs: Any, start: Any, forward: bool) -> dict[Any, Any]:
        cached = in_order.get((id(table), hash_value))
        if cached is None or cached[0] != writes[0]:
            items = sorted(table.items[hash_value].values(), key=lambda item: item.range_key.value)
            cached = in_order[(id(table), hash_value)] = (writes[0], items, [item.range_key.value for item in items])
        _, items, keys = cached
        lo, hi = bisect.bisect_left(keys, range_objs[0].value), bisect.bisect_right(keys, range_objs[1].value)
        if start and forward:
            lo = max(lo, bisect.bisect_right(keys, DynamoType(start[table.range_key_attr]).value))
        elif start:
            hi = min(hi, bisect.bisect_left(keys, DynamoType(start[table.range_key_attr]).value))
        lo, hi = (lo, hi + 1) if forward else (max(lo - 1, 0), hi)
        return {item.range_key: item for item in items[lo:hi]}

    def query(
        self: Any,
        hash_key: Any,
        range_comparison: Any,
        range_objs: Any,
        limit: Any,
        start: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        # moto's backend passes scan_index_forward, projection, index_name... positionally.
        forward, index_name = args[0], args[2] if len(args) > 2 else None
        hash_value = _scoped_partition(
            self, hash_key, range_comparison, range_objs, {**kwargs, "index_name": index_name}
        )
        if hash_value is None:
            return original_query(self, hash_key, range_comparison, range_objs, limit, start, *args, **kwargs)
        everything = self.items
        self.items = {hash_value: view(self, hash_value, range_objs, start, forward)}
        try:
            return original_query(self, hash_key, range_comparison, range_objs, limit, start, *args, **kwargs)
        finally:
            self.items = everything

    Table.query = query  # type: ignore[method-assign, assignment]
    for name, write in original_writes.items():
        setattr(DynamoDBBackend, name, counted(write))
    try:
        yield
    finally:
        Table.query = original_query  # type: ignore[method-assign]
        for name, write in original_writes.items():
            setattr(DynamoDBBackend, name, write)


# -- building a tenant ---------------------------------------------------------


def arrival_times(n: int, rng: random.Random) -> list[int]:
    """n distinct creation milliseconds over the 30 days before END_MS: half of
    them single pins at uniform times, half in bursts of 5-100 pins about 1.5 s
    apart (an uploader pinning a directory)."""
    start = END_MS - SPAN_MS
    times: set[int] = set()
    while len(times) < n // 2:
        times.add(start + rng.randrange(SPAN_MS))
    while len(times) < n:
        t = start + rng.randrange(SPAN_MS - DAY_MS)
        for _ in range(min(rng.randint(5, 100), n - len(times))):
            t += 1 + int(rng.expovariate(1 / 1500))
            times.add(t)
    return sorted(times)[:n]


def plan_pins(n: int, rng: random.Random) -> list[Planned]:
    """n pins: unique names but 1% sharing SHARED_NAME; every META_EVERY-th
    pin with a project (each of PROJECTS) and a `rare` value held by
    RARE_MATCHES pins spread over the 30 days (each value's pins share one
    project when the number of values is a multiple of PROJECTS)."""
    statuses, weights = [status for status, _ in STATUS_MIX], [weight for _, weight in STATUS_MIX]
    rare_values = max(1, n // META_EVERY // RARE_MATCHES)
    planned = []
    for i, created in enumerate(arrival_times(n, rng)):
        name = SHARED_NAME if i % SHARED_EVERY == SHARED_EVERY // 2 else f"file-{i}.txt"
        meta = {}
        if i % META_EVERY == 0:
            j = i // META_EVERY
            meta = {"project": f"p{j % PROJECTS}", "rare": f"r{j % rare_values}"}
        planned.append(Planned(created, rng.choices(statuses, weights)[0], f"{n}/{i}", name, meta))
    return planned


def write_pin(store: PinStore, pin: StoredPin) -> None:
    """One pin through PinStore.create, at the status it is given, with an
    outbox message beside it as every create has (never sent: lists do not
    read the outbox)."""
    from chalicelib.queue.outbox_repository import OutboxMessage

    store.create(pin, OutboxMessage("shard#0", f"{pin.created_ms:013d}#{pin.request_id}", "{}", pin.created_ms))


def spread_over(tenant_id: str, shards: int, from_ms: int) -> None:
    """Raises the tenant's shard plan to `shards` from `from_ms` on: a plan's
    step takes effect LEAD_MS after it is written, so it is written then."""
    from chalicelib.storage.shard_plan import LEAD_MS, ShardPlans

    ShardPlans(now_ms=lambda: from_ms - LEAD_MS).raise_to(tenant_id, shards)


def serve(stack: Any, **store_options: Any) -> PinStore:
    """Serves the API from a new PinStore whose shard plans stay cached: a
    warm container reads a tenant's plan once a minute, as it does its
    token, which is no part of a page's cost."""
    from chalicelib.pins.service import PinService
    from chalicelib.storage.pin_store import PinStore
    from chalicelib.storage.shard_plan import ShardPlans

    services = stack.services
    store = PinStore(services.dynamo, plans=ShardPlans(cache_seconds=float("inf")), **store_options)
    settings = stack.settings
    services.pins = PinService(
        store, services.registry, services.outbox, settings.replication_factor, min_free_bytes=settings.min_free_bytes
    )
    return store


def build_tenant(stack: Any, label: str, planned: list[Planned], shards: int) -> Tenant:
    from chalicelib.fleet.placement import delegates_of, place
    from chalicelib.pins.cids import parse_cid
    from chalicelib.pins.model import PinRequest
    from chalicelib.pins.pin import queued_pin
    from chalicelib.pins.request_ids import new_request_id

    tenant_id, token = stack.new_tenant(label)
    tenant = Tenant(label, tenant_id, token, shards)
    store = stack.services.store
    first_ms = planned[0].created_ms
    if shards > 1:
        spread_over(tenant_id, shards, first_ms)
    if store.plans.of(tenant_id).shards_at(first_ms) != shards:
        raise SystemExit(f"FATAL: {label}: the store does not see {shards} shards")
    nodes = stack.services.registry.nodes()
    for spec in planned:
        # As PinService.create makes a pin (placement, delegates, request id), at its final status.
        cid = parse_cid(cid_for(spec.cid_seed))
        chosen = place(cid.key, nodes, stack.settings.replication_factor)
        request = PinRequest(cid=cid, name=spec.name, meta=spec.meta)
        queued = queued_pin(
            tenant_id,
            spec.created_ms,
            new_request_id(spec.created_ms),
            request,
            delegates_of(chosen),
            [node.node_id for node in chosen],
        )
        pin = replace(queued, status=spec.status)
        write_pin(store, pin)
        tenant.pins.append(Pin(pin.created_ms, pin.request_id, pin.status, pin.cid_key, pin.name, dict(pin.meta)))
    return tenant


def fold_counts(stack: Any, tenant: Tenant) -> None:
    """Folds the count changes of the tenant's shards into their counter
    trees with the service's folder, as the changes' stream has it do
    shortly after each write (one fold per shard, as bench.capacity does):
    lists are measured in that steady state, since a count also reads every
    change not folded yet."""
    from chalicelib.storage.pin_keys import MAX_MS, shard_key

    folder = stack.services.folder
    for shard in stack.services.store.plans.of(tenant.tenant_id).shards_until(MAX_MS):
        folder.fold(shard_key(tenant.tenant_id, shard))


def check_counts(store: PinStore, tenant: Tenant) -> None:
    """The store counts, per status, exactly the pins the bench wrote."""
    from chalicelib.pins.model import STATUSES

    for status in STATUSES:
        counted = store.count(tenant.tenant_id, frozenset({status}), 0, END_MS)
        written = sum(1 for pin in tenant.pins if pin.status == status)
        if counted != written:
            raise SystemExit(f"FATAL: {tenant.label}: {counted} {status} pins counted, {written} written")


# -- the cases -----------------------------------------------------------------


@dataclass
class Case:
    label: str
    params: Callable[[Tenant, int], dict[str, str]]  # (tenant, sample) -> query
    samples: int = 1


def _pin_at(tenant: Tenant, fraction: float) -> Pin:
    return tenant.pins[int(len(tenant.pins) * fraction)]


def _unique_named(tenant: Tenant, sample: int) -> Pin:
    step = len(tenant.pins) // (SAMPLES + 1)
    pin = tenant.pins[step * (sample + 1)]
    if pin.name == SHARED_NAME:
        pin = tenant.pins[step * (sample + 1) + 1]
    return pin


def _rare_meta(tenant: Tenant, sample: int) -> dict[str, str]:
    """A `rare` value (RARE_MATCHES pins) with the project its pins share."""
    holders = {pin.meta["rare"]: pin.meta["project"] for pin in tenant.pins if "rare" in pin.meta}
    rare = sorted(holders)[sample % len(holders)]
    return {"meta": json.dumps({"project": holders[rare], "rare": rare})}


def _ts(ms: int) -> str:
    from chalicelib.pins.timestamps import format_ms

    return format_ms(ms)


MAIN_CASES = [
    Case("no filter (status=pinned default)", lambda t, s: {}),
    Case("status=queued", lambda t, s: {"status": "queued"}),
    Case("status=pinned", lambda t, s: {"status": "pinned"}),
    Case("one cid", lambda t, s: {"cid": _unique_named(t, s).cid_key}, SAMPLES),
    Case("exact name (unique)", lambda t, s: {"name": _unique_named(t, s).name or ""}, SAMPLES),
    Case(
        "before=<pin at 5..95%> (pinned)",
        lambda t, s: {"before": _ts(_pin_at(t, POSITIONS[s]).created_ms)},
        len(POSITIONS),
    ),
    Case("all four statuses", lambda t, s: {"status": "queued,pinning,pinned,failed"}),
]
RARE_META_CASE = Case(
    f"meta: a project (1 in {META_EVERY * PROJECTS}) and a rare pair ({RARE_MATCHES} pins)", _rare_meta, SAMPLES
)
OTHER_CASES = [
    Case(
        "after=<pin at 5..95%> (pinned)",
        lambda t, s: {"after": _ts(_pin_at(t, POSITIONS[s]).created_ms)},
        len(POSITIONS),
    ),
    Case(
        "after=<pin at p>&before=<pin at p+10%>",
        lambda t, s: {
            "after": _ts(_pin_at(t, POSITIONS[s] - 0.05).created_ms),
            "before": _ts(_pin_at(t, POSITIONS[s] + 0.05).created_ms),
        },
        len(POSITIONS) - 2,
    ),
    Case("name match=partial", lambda t, s: {"name": f"file-{s + 1}2", "match": "partial"}, 3),
    Case(
        f"meta: one project (1 in {META_EVERY * PROJECTS})",
        lambda t, s: {"meta": json.dumps({"project": f"p{s % PROJECTS}"})},
        3,
    ),
    Case(f"exact name shared by 1% ({SHARED_NAME})", lambda t, s: {"name": SHARED_NAME}),
    Case(
        "before + status=queued,failed",
        lambda t, s: {"before": _ts(_pin_at(t, POSITIONS[s]).created_ms), "status": "queued,failed"},
        len(POSITIONS),
    ),
]


@dataclass
class Answer:
    status: int  # 200, or 422 where the scan limit refuses the query
    count: int
    page: list[str]
    rarest_pair: int  # pins holding the meta filter's rarest pair in the time range (0 without meta)


def brute_force(tenant: Tenant, params: dict[str, str], max_scanned_pins: int) -> Answer:
    """The answer, computed from what the bench wrote: the same scan limits
    (chalicelib.pins.scan_limit) and the same selection (tests' pin_filters)."""
    from chalicelib.api.pin_requests import parse_list_query
    from chalicelib.pins.scan_limit import QueryTooBroad, check_meta_scan, check_scan
    from tests.support.pin_filters import NS_PER_MS, in_range, selects, within_time_bounds

    query = parse_list_query(params)  # same defaults as the service
    in_time = [
        pin for pin in tenant.pins if within_time_bounds(pin.created_ms * NS_PER_MS, query.before_ns, query.after_ns)
    ]
    pairs = [sum(1 for pin in in_time if pin.meta.get(key) == value) for key, value in query.meta.items()]
    rarest = min(pairs, default=0)
    pins_in_range = sum(1 for pin in in_time if in_range(query, pin))
    try:
        check_scan(query, pins_in_range, max_scanned_pins)
        check_meta_scan(query, rarest, pins_in_range, max_scanned_pins)
    except QueryTooBroad:
        return Answer(422, -1, [], rarest)
    matches = sorted((pin for pin in in_time if selects(query, pin)), key=lambda p: p.created_ms, reverse=True)
    return Answer(200, len(matches), [p.request_id for p in matches[: query.limit]], rarest)


@dataclass
class Measured:
    items: float
    requests: float
    rcu: float
    count: int  # -1: refused (422)
    rarest_pair: float
    tallies: list[Tally]


def measure(api: Api, meter: DynamoMeter, tenant: Tenant, case: Case, max_scanned_pins: int) -> Measured:
    answers, tallies = [], []
    for sample in range(case.samples):
        params = case.params(tenant, sample)
        mark = meter.mark()
        status, body = api.request("GET", "/pins", params=params, token=tenant.token)
        # Authentication is measured in request_cost; a token re-read after
        # the cache period is not part of a list page's cost.
        tally = meter.since(mark).without("-api-tokens")
        want = brute_force(tenant, params, max_scanned_pins)
        got: Answer | None
        if status == 200:
            got = Answer(status, body["count"], [pin["requestid"] for pin in body["results"]], want.rarest_pair)
        else:
            got = Answer(status, -1, [], want.rarest_pair) if body["error"]["reason"] == "QUERY_TOO_BROAD" else None
        if got != want:
            raise SystemExit(
                f"FATAL: {tenant.label} {case.label} {params}: service answered {status} {str(body)[:200]}, "
                f"brute force says {want.status} count={want.count} page={want.page[:3]}..."
            )
        answers.append(want)
        tallies.append(tally)
    return Measured(
        median(t.items_read for t in tallies),
        median(t.requests for t in tallies),
        median(t.rcu for t in tallies),
        int(median(a.count for a in answers)),
        median(a.rarest_pair for a in answers),
        tallies,
    )


def by_operation(tally: Tally, operation: str) -> tuple[int, int]:
    """Items read and requests of one DynamoDB operation."""
    calls = [call for call in tally.calls if call.operation == operation]
    return sum(call.items_read for call in calls), len(calls)


# -- running -------------------------------------------------------------------

# One size's pair of tenants, measured side by side: (case, small, large).
Results = list[tuple[Case, Measured, Measured]]


@dataclass
class Outcome:
    """What run measured, by shard count: the cases on both tenants."""

    small_n: int
    large_n: int
    main: dict[int, Results]
    rare_meta: dict[int, Results]
    other: Results  # one shard
    built_s: float
    measured_s: float


def _measure_cases(stack: Any, tenants: dict[int, tuple[Tenant, Tenant]], outcome: Outcome) -> None:
    limit = stack.settings.max_scanned_pins
    store = serve(stack, max_scanned_pins=limit)
    meter = DynamoMeter()
    with read_only_moto_caches(), api_client(stack.services, stack.token) as api:
        for pair in tenants.values():
            for tenant in pair:  # warm: token cache, shard plan cache, first-use imports
                check_counts(store, tenant)
                api.ok("GET", "/pins", 200, token=tenant.token)
        meter.attach()

        def both(case: Case, small: Tenant, large: Tenant) -> tuple[Case, Measured, Measured]:
            return case, measure(api, meter, small, case, limit), measure(api, meter, large, case, limit)

        for shards, (small, large) in tenants.items():
            outcome.main[shards] = [both(case, small, large) for case in MAIN_CASES]
            outcome.rare_meta[shards] = [both(RARE_META_CASE, small, large)]
        outcome.other = [both(case, *tenants[1]) for case in OTHER_CASES]


def measure_sizes(small_n: int, large_n: int) -> Outcome:
    from moto import mock_aws

    rng = random.Random(20250601)
    outcome = Outcome(small_n, large_n, {}, {}, [], 0.0, 0.0)
    with mock_aws(), range_scoped_moto_queries():
        stack = build_stack("bench")
        started = time.perf_counter()
        plans = {n: plan_pins(n, rng) for n in (small_n, large_n)}
        tenants: dict[int, tuple[Tenant, Tenant]] = {}
        for shards in SHARD_COUNTS:
            small, large = (build_tenant(stack, f"t{n}x{shards}", plans[n], shards) for n in (small_n, large_n))
            for tenant in (small, large):
                fold_counts(stack, tenant)
            tenants[shards] = (small, large)
        outcome.built_s = time.perf_counter() - started
        measuring = time.perf_counter()
        _measure_cases(stack, tenants, outcome)
        outcome.measured_s = time.perf_counter() - measuring
    return outcome


# -- reporting -----------------------------------------------------------------


def _ratio(large: float, small: float) -> float:
    return large / small if small else float("inf")


def _count(m: Measured) -> str:
    return str(m.count) if m.count >= 0 else "422"


def _case_row(case: Case, a: Measured, b: Measured, with_target: bool) -> list[Any]:
    ratio = _ratio(b.items, a.items)
    return [
        case.label,
        case.samples,
        f"{a.items:g}",
        f"{a.requests:g}",
        f"{a.rcu:g}",
        _count(a),
        f"{b.items:g}",
        f"{b.requests:g}",
        f"{b.rcu:g}",
        _count(b),
        f"{ratio:.2f}",
        f"{_ratio(b.rcu, a.rcu):.2f}",
        ("met" if ratio <= TARGET_RATIO else "NOT MET") if with_target else "-",
    ]


def _print_cases(outcome: Outcome, title: str, results: Results, with_target: bool) -> None:
    small_n, large_n = outcome.small_n, outcome.large_n
    headers = ["case", "n"]
    for n in (small_n, large_n):
        headers += [f"items {n}", f"reqs {n}", f"~RCU {n}", f"count {n}"]
    headers += ["ratio items", "ratio ~RCU", "target: items <= 1.2x"]
    print_table(title, headers, [_case_row(case, a, b, with_target) for case, a, b in results])


def _print_rare_meta(outcome: Outcome) -> None:
    rows = []
    for shards, results in outcome.rare_meta.items():
        for _, a, b in results:
            for n, m in ((outcome.small_n, a), (outcome.large_n, b)):
                per_match = m.items / m.rarest_pair if m.rarest_pair else float("inf")
                rows.append(
                    [
                        n,
                        shards,
                        f"{m.rarest_pair:g}",
                        m.count,
                        f"{m.items:g}",
                        f"{m.requests:g}",
                        f"{m.rcu:g}",
                        f"{per_match:.1f}",
                    ]
                )
            ratio = _ratio(b.items, a.items)
            rows.append(
                [
                    "ratio",
                    shards,
                    "",
                    "",
                    f"{ratio:.2f}",
                    "",
                    f"{_ratio(b.rcu, a.rcu):.2f}",
                    "met" if ratio <= TARGET_RATIO else "NOT MET",
                ]
            )
    print_table(
        f"{RARE_META_CASE.label}: items in proportion to the rarest pair's pins, the same at both sizes "
        f"(median of {RARE_META_CASE.samples} values; target: items <= 1.2x)",
        ["pins", "shards", "rarest pair's pins", "count", "items", "reqs", "~RCU", "items per rarest-pair pin"],
        rows,
    )


def _print_shards(outcome: Outcome) -> None:
    rows = []
    one, four = outcome.main[SHARD_COUNTS[0]], outcome.main[SHARD_COUNTS[-1]]
    for (case, a1, b1), (_, a4, b4) in zip(one, four, strict=True):
        for n, m1, m4 in ((outcome.small_n, a1, a4), (outcome.large_n, b1, b4)):
            rows.append(
                [
                    case.label,
                    n,
                    f"{m1.items:g} / {m4.items:g}",
                    f"{m1.requests:g} / {m4.requests:g}",
                    f"{m1.rcu:g} / {m4.rcu:g}",
                    f"{_ratio(m4.items, m1.items):.2f}",
                    f"{_ratio(m4.rcu, m1.rcu):.2f}",
                ]
            )
    print_table(
        f"GET /pins — the seven main cases on {SHARD_COUNTS[0]} vs {SHARD_COUNTS[-1]} shards (same pins; medians)",
        ["case", "pins", "items 1 / 4", "reqs 1 / 4", "~RCU 1 / 4", "x items", "x ~RCU"],
        rows,
    )


def _before(outcome: Outcome, shards: int) -> list[tuple[str, Measured]]:
    """The `before` case's measurements on each tenant of `shards`, labelled by its size."""
    _, small, large = next(entry for entry in outcome.main[shards] if entry[0].label.startswith("before"))
    return [(f"{outcome.small_n}", small), (f"{outcome.large_n}", large)]


def _print_before_detail(outcome: Outcome) -> None:
    # Where the `before` reads go, by operation: Queries (the page, a window's
    # count) and BatchGetItems (the counts' items), as the store makes them.
    detail = []
    for tenant_label, measured in _before(outcome, SHARD_COUNTS[0]):
        for position, tally in zip(POSITIONS, measured.tallies, strict=True):
            queries, batches = by_operation(tally, "Query"), by_operation(tally, "BatchGetItem")
            detail.append(
                [
                    tenant_label,
                    f"{position:.0%}",
                    tally.items_read,
                    tally.requests,
                    f"{tally.rcu:g}",
                    *queries,
                    *batches,
                ]
            )
    print_table(
        "before=<pin at position>, 1 shard: where the reads go, by DynamoDB operation",
        [
            "tenant",
            "position",
            "items",
            "reqs",
            "~RCU",
            "Query items",
            "Queries",
            "BatchGetItem items",
            "BatchGetItems",
        ],
        detail,
    )


def _print_before_summary(outcome: Outcome) -> None:
    summary = []
    for shards in SHARD_COUNTS:
        for tenant_label, measured in _before(outcome, shards):
            totals = [t.items_read for t in measured.tallies]
            batched = [by_operation(t, "BatchGetItem")[0] for t in measured.tallies]
            summary.append(
                [
                    tenant_label,
                    shards,
                    f"{median(totals):g}",
                    f"{sum(totals) / len(totals):.1f}",
                    max(totals),
                    f"{median(batched):g}",
                    max(batched),
                    f"{median(t.rcu for t in measured.tallies):g}",
                ]
            )
    print_table(
        f"before=<pin at 5..95%>: items read over {len(POSITIONS)} positions",
        [
            "tenant",
            "shards",
            "median items",
            "mean items",
            "max items",
            "median BatchGetItem items",
            "max BatchGetItem items",
            "median ~RCU",
        ],
        summary,
    )


def _over_target(results: Results) -> list[str]:
    return [case.label for case, a, b in results if _ratio(b.items, a.items) > TARGET_RATIO]


def report(outcome: Outcome) -> list[str]:
    """Prints every table; the verdicts' failures."""
    small_n, large_n = outcome.small_n, outcome.large_n
    print(
        f"\nlist_cost: {small_n} vs {large_n} pins, created over 30 days via PinStore.create, on "
        f"{' and '.join(map(str, SHARD_COUNTS))} shards (built in {outcome.built_s:.0f} s, checked and measured in "
        f"{outcome.measured_s:.0f} s); limit=10 (default); medians over samples"
    )
    for shards in SHARD_COUNTS:
        _print_cases(
            outcome,
            f"GET /pins — seven main cases, {shards} shard{'s' if shards > 1 else ''} "
            "(items read = Query ScannedCount + GetItem/BatchGetItem items, all tables)",
            outcome.main[shards],
            True,
        )
    _print_shards(outcome)
    _print_rare_meta(outcome)
    _print_cases(
        outcome,
        "GET /pins — other cases, 1 shard, no target (popular names and pairs read every match; a partial "
        "name reads every pin of the range, refused (422) over the scan limit)",
        outcome.other,
        False,
    )
    _print_before_detail(outcome)
    _print_before_summary(outcome)
    failures = [f"{shards} shards: {label}" for shards in SHARD_COUNTS for label in _over_target(outcome.main[shards])]
    failures += [
        f"{shards} shards: {label}" for shards in SHARD_COUNTS for label in _over_target(outcome.rare_meta[shards])
    ]
    print(
        "verdict: "
        + verdict(
            not failures,
            "the seven main cases and the rare meta pair within 1.2x on 1 and 4 shards"
            if not failures
            else "over 1.2x: " + "; ".join(failures),
        )
    )
    print("every count and page above equals the brute-force answer (checked per request)")
    print(
        "~RCU: estimated strongly consistent read units: bytes of the items read, per request rounded up to 4 KB, "
        "min 1, per item in a BatchGetItem (items read but not returned -- dropped by a filter, or counted -- sized at "
        "the mean of that table's returned items)"
    )
    return failures


def run(quick: bool) -> Outcome:
    fake_credentials()
    cheap_moto_transactions()
    partition_scoped_moto_queries()
    importlib.import_module("app")  # fail now if the API does not import, not after building the tenants

    outcome = measure_sizes(*(QUICK_SIZES if quick else SIZES))
    report(outcome)
    return outcome


def main(argv: Sequence[str] | None = None) -> None:
    run(quick_flag(argv))


if __name__ == "__main__":
    main()
