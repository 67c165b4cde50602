"""What one `GET /pins` with `name` match=partial|ipartial or `meta` (and no
indexed filter) costs as a function of the pins in its time range, what it
would cost at 1 million pins, and the limit that keeps one request inside the
API function's time and memory.

One tenant of Kubo-shaped pins (`ipfs pin remote add`: a name, 8 origins,
2 delegates; ~1.5 KB items) and a few pins with 16 KB of `meta` (the largest
the API accepts), written through PinStore.create (one transaction each,
counts included) on moto in-process. Ranges holding 1,000 to 20,000 pins are
chosen with `after`; every request goes through the API, its DynamoDB
requests are recorded as list_cost records them, and its count and page are
checked against a brute-force answer. Per pin figures are least-squares
slopes over the ranges; 1 million pins is their extrapolation.

    .venv/bin/python -m bench.residual_filters [--quick]
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.capacity import KUBO_ORIGINS, largest_meta
from bench.support import (
    PEER_A,
    PEER_B,
    Api,
    DynamoMeter,
    api_client,
    build_stack,
    cheap_moto_transactions,
    cid_for,
    fake_credentials,
    partition_scoped_moto_queries,
    print_table,
    quick_flag,
    read_only_moto_caches,
)

START_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
GAP_MS = 997  # pins apart: level-1 counter windows (64 ms) hold one pin at most
STATUS_CYCLE = ("pinned",) * 7 + ("queued", "pinning", "failed")
MILLION = 1_000_000
# us-east-1 on-demand: $0.125 per million read request units; 1 RCU reads 4 KB strongly consistent.
DOLLARS_PER_RCU = 0.125 / MILLION
PAGE_BYTES = 1024 * 1024  # a Query returns at most 1 MB per page
# Assumed, not measured (no real DynamoDB here): one sequential 1 MB Query page's round trip.
PAGE_SECONDS = 0.1
# Lambda's CPU is proportional to memory: 1,769 MB is one vCPU; the smallest API function has 512 MB.
LAMBDA_CPU_SLOWDOWN = 1769 / 512
FILTERS = {
    "name match=partial": {"name": "IMG_1", "match": "partial"},
    "name match=ipartial": {"name": "img_", "match": "ipartial"},
    "meta": {"meta": '{"app":"photos"}'},
    # Every pin with 16 KB of meta matches: each is returned and sized exactly.
    "meta (16 KB each)": {"meta": json.dumps({"field-0": largest_meta()["field-0"]})},
}


@dataclass
class Stored:
    created_ms: int
    request_id: str
    status: str
    cid_key: str
    name: str
    meta: dict[str, str]


@dataclass
class Measured:
    label: str
    in_range: int
    status: int
    count: int
    items: int
    requests: int
    rcu: float
    pages: int
    seconds: float
    peak_bytes: int = 0


def build(store: Any, tenant_id: str, n: int, meta_of: Any, first_ms: int) -> list[Stored]:
    from chalicelib.pins.pin import Pin
    from chalicelib.queue.outbox_repository import OutboxMessage

    pins = []
    for i in range(n):
        created_ms, name = first_ms + i * GAP_MS, f"photos/2025/IMG_{i:05d}.jpg"
        request_id = f"bench-{tenant_id}-{i:06d}"
        pin = Pin(
            tenant_id=tenant_id,
            created_ms=created_ms,
            request_id=request_id,
            status=STATUS_CYCLE[i % len(STATUS_CYCLE)],
            cid=cid_for(f"{tenant_id}/{i}"),
            cid_key=cid_for(f"{tenant_id}/{i}"),
            name=name,
            origins=KUBO_ORIGINS,
            meta=meta_of(i),
            delegates=(f"/ip4/203.0.113.1/tcp/4001/p2p/{PEER_A}", f"/ip4/203.0.113.2/tcp/4001/p2p/{PEER_B}"),
            node_ids=("node-a", "node-b"),
        )
        store.create(pin, OutboxMessage("shard#0", f"{created_ms:013d}#{i}", "{}", created_ms))
        pins.append(Stored(created_ms, request_id, pin.status, pin.cid_key, name, dict(pin.meta)))
    return pins


def expected(pins: list[Stored], params: dict[str, str]) -> tuple[int, list[str]]:
    from chalicelib.api.pin_requests import parse_list_query
    from chalicelib.pins.model import PinQuery
    from tests.support.pin_filters import selects

    query: PinQuery = parse_list_query(params)
    found = [pin for pin in reversed(pins) if selects(query, pin)]
    return len(found), [pin.request_id for pin in found[: query.limit]]


def measure(
    api: Api, meter: DynamoMeter, token: str, pins: list[Stored], label: str, in_range: int, trace: bool = False
) -> Measured:
    from chalicelib.pins.timestamps import format_ms

    params = dict(FILTERS[label])
    if in_range < len(pins):
        params["after"] = format_ms(pins[-in_range - 1].created_ms)
    mark = meter.mark()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    status, body = api.request("GET", "/pins", params=params, token=token)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    tally = meter.since(mark).without("-api-tokens")
    pages = sum(1 for call in tally.only("-pins").calls if call.operation == "Query")
    count = -1
    if status == 200:
        want = expected(pins, params)
        if (body["count"], [pin["requestid"] for pin in body["results"]]) != want:
            raise SystemExit(f"FATAL: {label} over {in_range} pins: answer differs from the brute-force one")
        count = body["count"]
    return Measured(label, in_range, status, count, tally.items_read, tally.requests, tally.rcu, pages, seconds, peak)


def client_seconds_per_pin(dynamo: Any, tenant_id: str, rounds: int = 5) -> float:
    """What the API function itself spends per pin read and returned (the
    worst case: a `meta` filter gets every pin back): botocore parsing one
    recorded 1 MB Query page, then PynamoDB making records of its items and
    the `meta` comparison. moto's own work, which real DynamoDB does
    elsewhere, is left out."""
    from chalicelib.storage.pin_record import PinRecord, plain_map

    client = dynamo.connection.client
    kept: dict[str, Any] = {}

    def keep(http_response: Any, model: Any, **_: Any) -> None:
        kept.setdefault(
            "response", {"body": http_response.content, "headers": http_response.headers, "status_code": 200}
        )

    client.meta.events.register("after-call.dynamodb.Query", keep, unique_id="bench-keep-page")
    next(PinRecord.query(tenant_id, consistent_read=True).page_iter)
    client.meta.events.unregister("after-call.dynamodb.Query", unique_id="bench-keep-page")
    shape = client.meta.service_model.operation_model("Query").output_shape
    parser = client._response_parser  # botocore's, as every request uses it
    started = time.perf_counter()
    for _ in range(rounds):
        items = parser.parse(kept["response"], shape)["Items"]
        for item in items:
            plain_map(PinRecord.from_raw_data(item).meta).get("app") == "photos"  # noqa: B015
    return (time.perf_counter() - started) / (rounds * len(items))


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)


def _row(m: Measured) -> list[Any]:
    answer = f"{m.status} count={m.count}" if m.status == 200 else f"{m.status} refused"
    per_item_ms = f"{1000 * m.seconds / m.items:.3f}" if m.items else "-"
    return [m.label, m.in_range, answer, m.items, m.requests, f"{m.rcu:g}", m.pages, f"{m.seconds:.2f}", per_item_ms]


def _extrapolate(title: str, rows: list[Measured], limit: int, client_s: float) -> dict[str, float]:
    answered = [m for m in rows if m.status == 200]
    items = slope([(m.in_range, m.items) for m in answered])
    rcu = slope([(m.in_range, m.rcu) for m in answered])
    local_s = slope([(m.in_range, m.seconds) for m in answered])

    def at(n: int) -> dict[str, float]:
        pages = n * rcu * 4096 / PAGE_BYTES
        return {
            "items": n * items,
            "rcu": n * rcu,
            "dollars": n * rcu * DOLLARS_PER_RCU,
            "pages": pages,
            "local_s": n * local_s,
            "lambda_s": pages * PAGE_SECONDS + n * client_s * LAMBDA_CPU_SLOWDOWN,
        }

    figures = {f"{n:,}": at(n) for n in (limit, MILLION)}
    print_table(
        title,
        ["pins in range", "items", "RCU", "$ per query", "1 MB pages", "local s", "Lambda 512 MB s (est.)"],
        [
            [
                n,
                f"{f['items']:,.0f}",
                f"{f['rcu']:,.0f}",
                f"{f['dollars']:.4f}",
                f"{f['pages']:,.0f}",
                f"{f['local_s']:.1f}",
                f"{f['lambda_s']:.1f}",
            ]
            for n, f in figures.items()
        ],
        f"per pin in range: {items:.3f} items, {rcu:.3f} RCU, {1000 * local_s:.3f} ms here end to end (moto "
        f"included); Lambda: {PAGE_SECONDS:g} s per 1 MB page (assumed; the partition's 3,000 RCU/s alone allow "
        f"~12 pages/s) + {1000 * client_s:.3f} ms of client work per pin x {LAMBDA_CPU_SLOWDOWN:.2f} "
        f"(0.29 vCPU at 512 MB)",
    )
    return at(MILLION)


@dataclass
class Outcome:
    limit: int
    kubo_pins: int
    large_pins: int
    built_s: float
    rows: list[Measured]  # Kubo-shaped pins, every filter and range
    refused: list[Measured]  # ranges just over the limit
    memory: list[Measured]  # the smallest and largest range, traced
    large: list[Measured]  # pins with 16 KB of meta
    kubo_client_s: float
    large_client_s: float


def _measure(quick: bool) -> Outcome:
    from moto import mock_aws

    from chalicelib.pins.scan_limit import DEFAULT_MAX_SCANNED_PINS
    from chalicelib.pins.service import PinService
    from chalicelib.storage.pin_store import PinStore

    ranges = (100, 250, 500, 1_000) if quick else (1_000, 5_000, 10_000, 20_000)
    limit = 500 if quick else DEFAULT_MAX_SCANNED_PINS  # the one requests are refused with
    large_ranges = (20, 50, 100) if quick else (100, 250, 500)
    with mock_aws():
        stack = build_stack("bench")
        services = stack.services

        def serve(store: PinStore) -> None:
            services.pins = PinService(store, services.registry, services.outbox, stack.settings.replication_factor)

        # To measure past the limit, and past the deadline: moto is far slower than DynamoDB.
        measuring = PinStore(services.dynamo, max_scanned_pins=ranges[-1], clock=lambda: 0.0)
        started = time.perf_counter()
        kubo_tenant, kubo_token = stack.new_tenant("kubo")
        photos = {"app": "photos"}
        kubo_pins = build(measuring, kubo_tenant, ranges[-1] + 1, lambda i: photos if i % 5 == 0 else {}, START_MS)
        large_tenant, large_token = stack.new_tenant("large")
        large_pins = build(measuring, large_tenant, large_ranges[-1], lambda i: largest_meta(), START_MS)
        built_s = time.perf_counter() - started
        meter = DynamoMeter()
        with read_only_moto_caches(), api_client(services, kubo_token) as api:
            meter.attach()
            serve(measuring)
            api.request("GET", "/pins", token=kubo_token)  # warm: token cache, imports
            kubo = list(FILTERS)[:3]
            rows = [measure(api, meter, kubo_token, kubo_pins, label, n) for label in kubo for n in ranges]
            memory = [measure(api, meter, kubo_token, kubo_pins, "meta", n, trace=True) for n in ranges[::3]]
            large = [measure(api, meter, large_token, large_pins, "meta (16 KB each)", n) for n in large_ranges]
            serve(PinStore(services.dynamo, max_scanned_pins=limit))
            refused = [measure(api, meter, kubo_token, kubo_pins, label, limit + 1) for label in kubo]
        return Outcome(
            limit,
            len(kubo_pins),
            len(large_pins),
            built_s,
            rows,
            refused,
            memory,
            large,
            client_seconds_per_pin(services.dynamo, kubo_tenant),
            client_seconds_per_pin(services.dynamo, large_tenant),
        )


def _report(outcome: Outcome) -> None:
    limit = outcome.limit
    headers = ["filter", "pins in range", "answer", "items", "requests", "~RCU", "pins-table Queries", "s", "ms/item"]
    print(
        f"\nresidual_filters: {outcome.kubo_pins} Kubo-shaped pins and {outcome.large_pins} with 16 KB of meta, one "
        f"tenant each, built in {outcome.built_s:.0f} s; limit (MAX_SCANNED_PINS) {limit}"
    )
    print_table("GET /pins with a residual filter, by pins in the time range", headers, [_row(m) for m in outcome.rows])
    print_table(
        f"over the limit ({limit + 1} pins in range): refused before reading (items = counter buckets + 64 ms windows)",
        headers,
        [_row(m) for m in outcome.refused],
    )
    print_table(
        "peak Python memory of one request (tracemalloc, moto's pages included)",
        ["pins in range", "peak MB"],
        [[m.in_range, f"{m.peak_bytes / 2**20:.1f}"] for m in outcome.memory],
    )
    print_table("pins with 16 KB of meta: `meta` filter", headers, [_row(m) for m in outcome.large])
    print(
        f"client work per pin read and returned (botocore parse of a 1 MB page, PynamoDB records, meta compared): "
        f"{1000 * outcome.kubo_client_s:.3f} ms Kubo-shaped, {1000 * outcome.large_client_s:.3f} ms with 16 KB of meta"
    )
    for label in list(FILTERS)[:3]:
        rows_of = [m for m in outcome.rows if m.label == label]
        _extrapolate(f"{label}: Kubo-shaped pins, extrapolated", rows_of, limit, outcome.kubo_client_s)
    _extrapolate("meta: pins with 16 KB of meta, extrapolated", outcome.large, limit, outcome.large_client_s)


def run(quick: bool) -> None:
    fake_credentials()
    cheap_moto_transactions()
    partition_scoped_moto_queries()
    _report(_measure(quick))


def main(argv: Sequence[str] | None = None) -> None:
    run(quick_flag(argv))


if __name__ == "__main__":
    main()
