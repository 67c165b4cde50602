"""Items DynamoDB reads for ONE `GET /pins` page: a small tenant versus one 20x
larger, side by side in one run.

Both tenants live in the same tables (moto in-process, `mock_aws`) and were
built the way real pins are: through `PinService.create` with an injected
clock spreading creation over 30 days (half one at a time, half in upload
bursts), then 90% moved out of `queued` by transactions that update the pin's
`status`/`status_sort` and the counter cells with `PinStore._move_counts`.
Every returned `count` and page is checked against a brute-force answer
computed from the bench's own record of what it wrote.

moto is made faster where it is slow for reasons that have nothing to do
with DynamoDB (a table copy per transaction, a whole-table sort per Query,
re-sorting and re-sizing unchanged items); the answers, ScannedCount and
pages are the same with and without (see bench/support.py).

    .venv/bin/python -m bench.list_cost [--quick]
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.support import (
    Api,
    DynamoMeter,
    Tally,
    api_client,
    build_stack,
    cheap_moto_transactions,
    cid_for,
    fake_credentials,
    item_bytes,
    median,
    partition_scoped_moto_queries,
    print_table,
    quick_flag,
    read_only_moto_caches,
    verdict,
)

DAY_MS = 86_400_000
SPAN_MS = 30 * DAY_MS
END_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z: fixed, so runs are comparable
STATUS_MIX = (("pinned", 70), ("queued", 10), ("pinning", 10), ("failed", 10))
SHARED_NAME = "shared.txt"
SHARED_EVERY = 100  # 1% of a tenant's pins share one name
META_EVERY = 5  # 20% carry meta {"project": "p0".."p3"}
MAX_TX_ITEMS = 100  # DynamoDB's limit on the items of one transaction
POSITIONS = tuple(k / 20 for k in range(1, 20))  # `before` at 5%, 10%, ... 95% of the pins; 50% = the middle
SAMPLES = 5  # different cids / names per case
TARGET_RATIO = 1.2


@dataclass
class Pin:
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
    pins: list[Pin] = field(default_factory=list)  # in creation order


# -- building a tenant ---------------------------------------------------------


def arrival_times(n: int, rng: random.Random) -> list[int]:
    """n distinct creation milliseconds over the 30 days before END_MS: half of
    them single pins at uniform times, half in bursts of 5-100 pins about 1.5 s
    apart (an uploader pinning a directory)."""
    start = END_MS - SPAN_MS
    times = set()
    while len(times) < n // 2:
        times.add(start + rng.randrange(SPAN_MS))
    while len(times) < n:
        t = start + rng.randrange(SPAN_MS - DAY_MS)
        for _ in range(min(rng.randint(5, 100), n - len(times))):
            t += 1 + int(rng.expovariate(1 / 1500))
            times.add(t)
    return sorted(times)[:n]


def drain(sqs: Any, queue_url: str) -> None:
    """Consume the queue like a worker would (moto's SendMessage slows down
    with the number of messages waiting)."""
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def build_tenant(stack: Any, label: str, n: int, rng: random.Random) -> Tenant:
    from pynamodb.transactions import TransactWrite

    from chalicelib.pins.cids import parse_cid
    from chalicelib.pins.model import PinRequest
    from chalicelib.pins.service import PinService
    from chalicelib.storage.pin_record import PinRecord, sort_key

    tenant_id, token = stack.new_tenant(label)
    tenant = Tenant(label, tenant_id, token)
    times = arrival_times(n, rng)
    planned = iter(times)
    services = stack.services
    pins = PinService(
        services.store,
        services.registry,
        services.outbox,
        stack.settings.replication_factor,
        clock=lambda: next(planned),
    )
    sqs = services.outbox._publisher._sqs()

    for i, created in enumerate(times):
        name = SHARED_NAME if i % SHARED_EVERY == SHARED_EVERY // 2 else f"file-{i}.txt"
        meta = {"project": f"p{(i // META_EVERY) % 4}"} if i % META_EVERY == 0 else {}
        request = PinRequest(cid=parse_cid(cid_for(f"{label}/{i}")), name=name, meta=meta)
        record = pins.create(tenant_id, request)
        if record.created_ms != created:
            raise SystemExit(f"FATAL: pin {i} was created at {record.created_ms}, planned {created}")
        tenant.pins.append(Pin(created, record.request_id, "queued", record.cid_key, name, meta))
        if i % 10 == 9:
            drain(sqs, stack.settings.queue_url)
    drain(sqs, stack.settings.queue_url)

    # Workers move 90% of the pins out of `queued`.
    statuses, weights = zip(*STATUS_MIX, strict=False)
    moves = []
    for pin in tenant.pins:
        target = rng.choices(statuses, weights)[0]
        if target != "queued":
            moves.append((pin, target))
    store = services.store
    connection = PinRecord._get_connection().connection
    for batch in _pack(tenant_id, moves):
        with TransactWrite(connection=connection) as tx:
            for pin, target in batch:
                tx.update(
                    PinRecord(tenant_id, pin.created_ms),
                    actions=[PinRecord.status.set(target), PinRecord.status_sort.set(sort_key(target, pin.created_ms))],
                    condition=PinRecord.status == pin.status,
                )
            store._move_counts(tx, tenant_id, [(pin.created_ms, pin.status, target) for pin, target in batch])
        for pin, target in batch:
            pin.status = target
    return tenant


def _pack(tenant_id: str, moves: list[tuple[Pin, str]]) -> list[list[tuple[Pin, str]]]:
    """Consecutive moves grouped so that each transaction's pins plus their
    (merged) counter buckets stay within DynamoDB's 100 items."""
    from chalicelib.storage.pin_counter import cells_of

    batches: list[list[tuple[Pin, str]]] = []
    batch: list[tuple[Pin, str]] = []
    buckets: set = set()
    for move in moves:
        more = {bucket for bucket, _ in cells_of(tenant_id, move[0].created_ms)}
        if batch and len(batch) + 1 + len(buckets | more) > MAX_TX_ITEMS:
            batches.append(batch)
            batch, buckets = [], set()
        batch.append(move)
        buckets |= more
    if batch:
        batches.append(batch)
    return batches


def check_stored(tenant: Tenant) -> None:
    """The table holds exactly what the bench believes it wrote."""
    from chalicelib.storage.pin_record import PinRecord

    stored = {r.created_ms: (r.request_id, r.status) for r in PinRecord.query(tenant.tenant_id, consistent_read=True)}
    expected = {p.created_ms: (p.request_id, p.status) for p in tenant.pins}
    if stored != expected:
        raise SystemExit(
            f"FATAL: {tenant.label}: the pins table does not hold what was written ({len(stored)} vs {len(expected)})"
        )


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


def _ts(ms: int) -> str:
    from chalicelib.pins.timestamps import format_ms

    return format_ms(ms)


MAIN_CASES = [
    Case("no filter (status=pinned default)", lambda t, s: {}),
    Case("status=queued", lambda t, s: {"status": "queued"}),
    Case("status=pinned", lambda t, s: {"status": "pinned"}),
    Case("one cid", lambda t, s: {"cid": _unique_named(t, s).cid_key}, SAMPLES),
    Case("exact name (unique)", lambda t, s: {"name": _unique_named(t, s).name}, SAMPLES),
    Case(
        "before=<pin at 5..95%> (pinned)",
        lambda t, s: {"before": _ts(_pin_at(t, POSITIONS[s]).created_ms)},
        len(POSITIONS),
    ),
    Case("all four statuses", lambda t, s: {"status": "queued,pinning,pinned,failed"}),
]
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
    # One sample: it reads every pin whatever the value (and moto is slow to serialize 20,000 items).
    Case("meta filter", lambda t, s: {"meta": '{"project":"p1"}'}),
    Case(f"exact name shared by 1% ({SHARED_NAME})", lambda t, s: {"name": SHARED_NAME}),
    Case(
        "before + status=queued,failed",
        lambda t, s: {"before": _ts(_pin_at(t, POSITIONS[s]).created_ms), "status": "queued,failed"},
        len(POSITIONS),
    ),
]


def brute_force(tenant: Tenant, params: dict[str, str]) -> tuple[int, list[str]]:
    """The count and the first page, computed from what the bench wrote."""
    from chalicelib.api.pin_requests import parse_list_query
    from tests.support.pin_filters import selects

    query = parse_list_query(params)  # same defaults as the service
    matches = sorted((pin for pin in tenant.pins if selects(query, pin)), key=lambda p: p.created_ms, reverse=True)
    return len(matches), [p.request_id for p in matches[: query.limit]]


@dataclass
class Measured:
    items: float
    requests: float
    rcu: float
    counter_items: float
    count: int
    tallies: list[Tally]


def measure(api: Api, meter: DynamoMeter, tenant: Tenant, case: Case) -> Measured:
    items, requests, rcus, counters, counts, tallies = [], [], [], [], [], []
    for sample in range(case.samples):
        params = case.params(tenant, sample)
        mark = meter.mark()
        body = api.ok("GET", "/pins", 200, params=params, token=tenant.token)
        # Authentication is measured in request_cost; a token re-read after
        # the cache period is not part of a list page's cost.
        tally = meter.since(mark).without("-api-tokens")
        expected_count, expected_page = brute_force(tenant, params)
        page = [pin["requestid"] for pin in body["results"]]
        if body["count"] != expected_count or page != expected_page:
            raise SystemExit(
                f"FATAL: {tenant.label} {case.label} {params}: service says count={body['count']} "
                f"page={page[:3]}..., brute force says count={expected_count} page={expected_page[:3]}..."
            )
        items.append(tally.items_read)
        requests.append(tally.requests)
        rcus.append(tally.rcu)
        counters.append(tally.only("-pin-counters").items_read)
        counts.append(body["count"])
        tallies.append(tally)
    return Measured(median(items), median(requests), median(rcus), median(counters), int(median(counts)), tallies)


def counter_buckets(tenant: Tenant, connection: Any) -> tuple[list[list[int]], list[int]]:
    """What the tenant's counter buckets weigh: their item sizes (DynamoDB's
    rules) per tree level, and per pin the write units of its 6 counter
    updates in a transaction (2 x 1 KB units per item, at the bucket's final
    size: an upper bound, since a bucket only grows)."""
    from chalicelib.storage.pin_counter import LEVELS, cells_of, read_buckets

    cells = {pin.created_ms: cells_of(tenant.tenant_id, pin.created_ms) for pin in tenant.pins}
    keys = sorted({bucket for per_pin in cells.values() for bucket, _ in per_pin})
    sizes: dict[str, int] = {}
    for start in range(0, len(keys), 100):  # BatchGetItem's limit
        for key, counts in read_buckets(connection, keys[start : start + 100]).items():
            item = {"bucket": {"S": key}, **{name: {"N": str(n)} for name, n in counts.items()}}
            sizes[key] = item_bytes(item)
    by_level: list[list[int]] = [[] for _ in range(LEVELS)]
    for key, size in sizes.items():
        by_level[int(key.rsplit("#", 2)[1]) - 1].append(size)
    wcu = [sum(2 * -(-sizes[bucket] // 1024) for bucket, _ in per_pin) for per_pin in cells.values()]
    return by_level, wcu


@dataclass
class Outcome:
    """What run measured: the cases on both tenants, and the small tenant's and both tenants' weights."""

    small_n: int
    large_n: int
    results: dict[str, Any]
    built_s: float
    measured_s: float
    weights: dict[str, tuple[list[list[int]], list[int]]]


def _measure_cases(stack: Any, small: Tenant, large: Tenant, results: dict[str, Any]) -> None:
    meter = DynamoMeter()
    meter.attach()
    with read_only_moto_caches(), api_client(stack.services, small.token) as api:
        for tenant in (small, large):  # warm: token cache, first-use imports
            api.ok("GET", "/pins", 200, token=tenant.token)
        meter.attach()
        for group, cases in (("main", MAIN_CASES), ("other", OTHER_CASES)):
            for case in cases:
                results[group].append((case, measure(api, meter, small, case), measure(api, meter, large, case)))


def _measure(quick: bool) -> Outcome:
    from moto import mock_aws

    small_n, large_n = (200, 2_000) if quick else (1_000, 20_000)
    rng = random.Random(20250601)
    results: dict[str, Any] = {"sizes": (small_n, large_n), "main": [], "other": []}
    with mock_aws():
        stack = build_stack("bench")
        started = time.perf_counter()
        small = build_tenant(stack, f"t{small_n}", small_n, rng)
        large = build_tenant(stack, f"t{large_n}", large_n, rng)
        for tenant in (small, large):
            check_stored(tenant)
        built_s = time.perf_counter() - started
        measuring = time.perf_counter()
        _measure_cases(stack, small, large, results)
        measured_s = time.perf_counter() - measuring
        weights = {tenant.label: counter_buckets(tenant, stack.services.dynamo.connection) for tenant in (small, large)}
    return Outcome(small_n, large_n, results, built_s, measured_s, weights)


def _case_row(case: Case, a: Measured, b: Measured, with_target: bool) -> list[Any]:
    ratio = b.items / a.items if a.items else float("inf")
    return [
        case.label,
        case.samples,
        f"{a.items:g}",
        f"{a.requests:g}",
        f"{a.rcu:g}",
        a.count,
        f"{b.items:g}",
        f"{b.requests:g}",
        f"{b.rcu:g}",
        b.count,
        f"{ratio:.2f}",
        f"{b.rcu / a.rcu:.2f}",
        ("met" if ratio <= TARGET_RATIO else "NOT MET") if with_target else "-",
    ]


def _print_cases(outcome: Outcome) -> None:
    small_n, large_n = outcome.small_n, outcome.large_n
    headers = [
        "case",
        "n",
        f"items {small_n}",
        f"reqs {small_n}",
        f"~RCU {small_n}",
        f"count {small_n}",
        f"items {large_n}",
        f"reqs {large_n}",
        f"~RCU {large_n}",
        f"count {large_n}",
        "ratio items",
        "ratio ~RCU",
        "target: items <= 1.2x",
    ]
    print_table(
        "GET /pins — seven main cases (items read = Query ScannedCount + GetItem hits, all tables)",
        headers,
        [_case_row(case, a, b, True) for case, a, b in outcome.results["main"]],
    )
    print_table(
        "GET /pins — other cases, no target (residual filters and popular names read every match)",
        headers,
        [_case_row(case, a, b, False) for case, a, b in outcome.results["other"]],
    )


def _before_by_tenant(outcome: Outcome) -> list[tuple[str, Measured]]:
    """The `before` case's measurements on each tenant, labelled by its size."""
    before = next(entry for entry in outcome.results["main"] if entry[0].label.startswith("before"))
    return [(f"{outcome.small_n}", before[1]), (f"{outcome.large_n}", before[2])]


def _print_before_detail(outcome: Outcome) -> None:
    # Where the `before` reads go: the page, the counter tree, the 64 ms window.
    detail = []
    for tenant_label, measured in _before_by_tenant(outcome):
        for position, tally in zip(POSITIONS, measured.tallies, strict=False):
            counters = tally.only("-pin-counters")
            detail.append(
                [
                    tenant_label,
                    f"{position:.0%}",
                    tally.items_read,
                    tally.requests,
                    f"{tally.rcu:g}",
                    tally.only("-pins").items_read,
                    counters.items_read,
                    counters.requests,
                ]
            )
    print_table(
        "before=<pin at position>: where the reads go",
        [
            "tenant",
            "position",
            "items",
            "reqs",
            "~RCU",
            "pins items (page+64ms window)",
            "counter items",
            "counter requests",
        ],
        detail,
    )


def _print_counter_weights(outcome: Outcome) -> None:
    level_names = ["1 (64 ms)", "2 (4 s)", "3 (262 s)", "4 (4.7 h)", "5 (12.4 d)", "6 (2.2 y)"]
    print_table(
        "counter buckets (one item each) by tree level: how many, mean / max item bytes",
        ["tenant"] + [f"level {name}" for name in level_names],
        [
            [label[1:]] + [f"{len(sizes)}: {sum(sizes) / len(sizes):.0f} / {max(sizes)} B" for sizes in by_level]
            for label, (by_level, _) in outcome.weights.items()
        ],
    )
    print_table(
        "write units of the 6 counter updates in a pin's transaction (2 per started KB per item), per pin "
        "at the buckets' final sizes (an upper bound)",
        ["tenant", "median WCU", "mean WCU", "max WCU", "old layout (one item per slot, < 1 KB)"],
        [
            [label[1:], f"{median(wcu):g}", f"{sum(wcu) / len(wcu):.1f}", max(wcu), 12]
            for label, (_, wcu) in outcome.weights.items()
        ],
    )


def _print_before_summary(outcome: Outcome) -> None:
    summary = []
    for tenant_label, measured in _before_by_tenant(outcome):
        totals = [t.items_read for t in measured.tallies]
        counters = [t.only("-pin-counters").items_read for t in measured.tallies]
        summary.append(
            [
                tenant_label,
                f"{median(totals):g}",
                f"{sum(totals) / len(totals):.1f}",
                max(totals),
                f"{median(counters):g}",
                f"{sum(counters) / len(counters):.1f}",
                max(counters),
            ]
        )
    print_table(
        f"before=<pin at 5..95%>: items read over {len(POSITIONS)} positions",
        [
            "tenant",
            "median items",
            "mean items",
            "max items",
            "median counter items",
            "mean counter items",
            "max counter items",
        ],
        summary,
    )


def run(quick: bool) -> dict[str, Any]:
    fake_credentials()
    cheap_moto_transactions()
    partition_scoped_moto_queries()
    importlib.import_module("app")  # fail now if the API does not import, not after building the tenants

    outcome = _measure(quick)
    small_n, large_n = outcome.small_n, outcome.large_n
    print(
        f"\nlist_cost: {small_n} vs {large_n} pins, created over 30 days via PinService.create "
        f"(built and checked in {outcome.built_s:.0f} s, measured in {outcome.measured_s:.0f} s); "
        "limit=10 (default); medians over samples"
    )
    _print_cases(outcome)
    _print_before_detail(outcome)
    _print_counter_weights(outcome)
    _print_before_summary(outcome)
    main_cases = outcome.results["main"]
    failures = [case.label for case, a, b in main_cases if a.items and b.items / a.items > TARGET_RATIO]
    print(
        "verdict: "
        + verdict(
            not failures, "all seven main cases within 1.2x" if not failures else "over 1.2x: " + "; ".join(failures)
        )
    )
    print("every count and page above equals the brute-force answer (checked per request)")
    print(
        "~RCU: estimated strongly consistent read units: bytes of the items read, per request rounded up to 4 KB, min 1 "
        "(items read but not returned -- dropped by a filter, or counted -- sized at the mean of that table's returned items)"
    )
    return outcome.results


def main(argv: Sequence[str] | None = None) -> None:
    run(quick_flag(argv))


if __name__ == "__main__":
    main()
