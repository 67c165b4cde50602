"""What one `GET /pins` costs when a filter makes it read pins it may not
return, as a function of those pins, what it would cost at 1 million, and the
limit that keeps one request inside the API function's time and memory:

- `name` with match=partial|ipartial (no `cid`, no exact `name`, no `meta`)
  reads every pin of the asked statuses in the time range;
- `meta` reads its candidates: the index entries of its rarest key/value
  pair, then each candidate pin (chalicelib.pins.scan_limit).

One tenant of Kubo-shaped pins (`ipfs pin remote add`: a name, 8 origins,
2 delegates; ~1.5 KB items), every one pinned and with meta {"app":
"photos"}, so that the pins of a range are both the pins a partial name
reads (those of the asked status) and the meta filter's candidates (its
pair's pins, of every status), and one tenant of pins with 16 KB of `meta`
(the largest the API accepts), written through PinStore.create (one
transaction each) on moto in-process, their count changes then folded. Ranges holding 1,000 to 20,000 pins
are chosen with `after`; every request goes through the API, its DynamoDB
requests are recorded as list_cost records them, and its count and page are
checked against a brute-force answer. Per pin figures are least-squares
slopes over the ranges; 1 million pins is their extrapolation. The API
function's own work per pin is measured by replaying the recorded DynamoDB
responses of one request to PinStore.find, without the emulator.

    .venv/bin/python -m bench.residual_filters [--quick]
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.capacity import KUBO_ORIGINS, largest_meta
from bench.list_cost import (
    Pin,
    Tenant,
    brute_force,
    by_operation,
    fold_counts,
    range_scoped_moto_queries,
    serve,
    write_pin,
)
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
    median,
    partition_scoped_moto_queries,
    print_table,
    quick_flag,
    read_only_moto_caches,
)

START_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
GAP_MS = 997  # pins about a second apart
MILLION = 1_000_000
# us-east-1 on-demand: $0.125 per million read request units; 1 RCU reads 4 KB strongly consistent.
DOLLARS_PER_RCU = 0.125 / MILLION
MB = 1024 * 1024
# Assumed, not measured (no real DynamoDB here): a request's round trip, and
# the time to receive what it read (0.1 s per MB: 10 MB/s, one stream).
REQUEST_SECONDS = 0.005
SECONDS_PER_MB = 0.1
# Lambda's CPU is proportional to memory: 1,769 MB is one vCPU; the smallest API function has 512 MB.
LAMBDA_CPU_SLOWDOWN = 1769 / 512
KUBO_META = {"app": "photos"}
SCANS = {
    "name match=partial": {"name": "IMG_1", "match": "partial"},
    "name match=ipartial": {"name": "img_", "match": "ipartial"},
}
META = {"meta (candidates)": {"meta": json.dumps(KUBO_META)}}
FILTERS = {**SCANS, **META}
# Every pin with 16 KB of meta matches both: each is returned and sized exactly.
LARGE_FILTERS = {
    "name match=partial (16 KB of meta)": {"name": "IMG_", "match": "partial"},
    "meta (16 KB of meta, candidates)": {"meta": json.dumps({"field-0": largest_meta()["field-0"]})},
}
ALL_FILTERS = {**FILTERS, **LARGE_FILTERS}
ROUNDS = 3  # replays of one request's responses; the median is kept


@dataclass
class Measured:
    label: str
    in_range: int
    status: int
    count: int
    items: int
    requests: int
    rcu: float
    queries: int
    batch_gets: int
    seconds: float
    peak_bytes: int = 0


def build(store: Any, tenant: Tenant, n: int, meta: dict[str, str]) -> Tenant:
    from chalicelib.pins.pin import Pin as StoredPin

    delegates = (f"/ip4/203.0.113.1/tcp/4001/p2p/{PEER_A}", f"/ip4/203.0.113.2/tcp/4001/p2p/{PEER_B}")
    for i in range(n):
        created_ms, name, cid = START_MS + i * GAP_MS, f"photos/2025/IMG_{i:05d}.jpg", cid_for(f"{tenant.label}/{i}")
        pin = StoredPin(
            tenant_id=tenant.tenant_id,
            created_ms=created_ms,
            request_id=f"bench-{tenant.tenant_id}-{i:06d}",
            status="pinned",
            cid=cid,
            cid_key=cid,
            name=name,
            origins=KUBO_ORIGINS,
            meta=meta,
            delegates=delegates,
            node_ids=("node-a", "node-b"),
        )
        write_pin(store, pin)
        tenant.pins.append(Pin(created_ms, pin.request_id, pin.status, cid, name, dict(meta)))
    return tenant


def params_of(tenant: Tenant, label: str, in_range: int) -> dict[str, str]:
    """The filter, over the newest `in_range` pins."""
    from chalicelib.pins.timestamps import format_ms

    params = dict(ALL_FILTERS[label])
    if in_range < len(tenant.pins):
        params["after"] = format_ms(tenant.pins[-in_range - 1].created_ms)
    return params


def measure(
    api: Api, meter: DynamoMeter, tenant: Tenant, label: str, in_range: int, limit: int, trace: bool = False
) -> Measured:
    params = params_of(tenant, label, in_range)
    mark = meter.mark()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    status, body = api.request("GET", "/pins", params=params, token=tenant.token)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    tally = meter.since(mark).without("-api-tokens")
    want = brute_force(tenant, params, limit)
    got = (status, body["count"], [pin["requestid"] for pin in body["results"]]) if status == 200 else (status, -1, [])
    if got != (want.status, want.count, want.page):
        raise SystemExit(f"FATAL: {label} over {in_range} pins: answered {status}, brute force says {want.status}")
    return Measured(
        label,
        in_range,
        status,
        want.count,
        tally.items_read,
        tally.requests,
        tally.rcu,
        by_operation(tally, "Query")[1],
        by_operation(tally, "BatchGetItem")[1],
        seconds,
        peak,
    )


class _Recorded:
    """A recorded response body, as botocore reads one (`raw.stream()`)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


@dataclass
class Recording:
    """DynamoDB's responses to one PinStore.find, by request body."""

    tenant_id: str
    query: Any
    in_range: int
    answers: dict[bytes, tuple[int, Any, bytes]]  # status, headers, body


def _store(dynamo: Any, in_range: int) -> Any:
    """A store that reads the whole range (no limit below it, no deadline)."""
    from chalicelib.storage.pin_store import PinStore
    from chalicelib.storage.shard_plan import ShardPlans

    return PinStore(dynamo, max_scanned_pins=in_range, clock=lambda: 0.0, plans=ShardPlans(cache_seconds=float("inf")))


def record(dynamo: Any, tenant: Tenant, label: str, in_range: int) -> Recording:
    """Runs the query's PinStore.find on the emulator, keeping every response."""
    from chalicelib.api.pin_requests import parse_list_query

    recording = Recording(tenant.tenant_id, parse_list_query(params_of(tenant, label, in_range)), in_range, {})
    events = dynamo.connection.client.meta.events
    sent: dict[int, bytes] = {}  # by thread: the store reads several shards at once

    def keep_request(request: Any, **_: Any) -> None:
        sent[threading.get_ident()] = bytes(request.body)

    def keep_response(http_response: Any, **_: Any) -> None:
        answer = (http_response.status_code, dict(http_response.headers), http_response.content)
        recording.answers[sent[threading.get_ident()]] = answer

    events.register_first("before-send.dynamodb", keep_request, unique_id="bench-keep-request")
    events.register("after-call.dynamodb", keep_response, unique_id="bench-keep-response")
    try:
        _store(dynamo, in_range).find(recording.tenant_id, recording.query)
    finally:
        events.unregister("before-send.dynamodb", unique_id="bench-keep-request")
        events.unregister("after-call.dynamodb", unique_id="bench-keep-response")
    return recording


def replayed_seconds_per_pin(settings: Any, recording: Recording) -> float:
    """The API function's own work per pin in range: PinStore.find answering
    the query from the recorded responses (botocore parsing, PynamoDB items,
    the store's merging, filtering and counting). Run with moto stopped,
    whose request handler botocore would otherwise still call, on a client
    of its own, which no meter's hooks slow down. Median of ROUNDS."""
    from botocore.awsrequest import AWSResponse

    from chalicelib.storage.tables import bind_models

    dynamo = bind_models(settings)
    store = _store(dynamo, recording.in_range)

    def replay(request: Any, **_: Any) -> AWSResponse:
        status, headers, body = recording.answers[bytes(request.body)]
        return AWSResponse(request.url, status, headers, _Recorded(body))

    events = dynamo.connection.client.meta.events
    # A before-send handler may return the response (botocore's stubs say None).
    events.register_first("before-send.dynamodb", replay, unique_id="bench-replay")  # type: ignore[arg-type]
    try:
        store.find(recording.tenant_id, recording.query)  # warm: the shard plan, imports
        rounds = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            store.find(recording.tenant_id, recording.query)
            rounds.append(time.perf_counter() - started)
    finally:
        events.unregister("before-send.dynamodb", unique_id="bench-replay")
    return median(rounds) / recording.in_range


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)


def _row(m: Measured) -> list[Any]:
    answer = f"{m.status} count={m.count}" if m.status == 200 else f"{m.status} refused"
    per_item_ms = f"{1000 * m.seconds / m.items:.3f}" if m.items else "-"
    return [
        m.label,
        m.in_range,
        answer,
        m.items,
        m.requests,
        f"{m.rcu:g}",
        m.queries,
        m.batch_gets,
        f"{m.seconds:.2f}",
        per_item_ms,
    ]


def _extrapolate(title: str, rows: list[Measured], limit: int, client_s: float) -> dict[str, float]:
    answered = [m for m in rows if m.status == 200]
    items = slope([(m.in_range, m.items) for m in answered])
    rcu = slope([(m.in_range, m.rcu) for m in answered])
    requests = slope([(m.in_range, m.requests) for m in answered])
    local_s = slope([(m.in_range, m.seconds) for m in answered])

    def at(n: int) -> dict[str, float]:
        megabytes = n * rcu * 4096 / MB
        return {
            "items": n * items,
            "rcu": n * rcu,
            "dollars": n * rcu * DOLLARS_PER_RCU,
            "requests": n * requests,
            "megabytes": megabytes,
            "local_s": n * local_s,
            "lambda_s": n * requests * REQUEST_SECONDS
            + megabytes * SECONDS_PER_MB
            + n * client_s * LAMBDA_CPU_SLOWDOWN,
        }

    figures = {f"{n:,}": at(n) for n in (limit, MILLION)}
    print_table(
        title,
        ["pins in range", "items", "RCU", "$ per query", "requests", "MB read", "local s", "Lambda 512 MB s (est.)"],
        [
            [
                n,
                f"{f['items']:,.0f}",
                f"{f['rcu']:,.0f}",
                f"{f['dollars']:.4f}",
                f"{f['requests']:,.0f}",
                f"{f['megabytes']:,.1f}",
                f"{f['local_s']:.1f}",
                f"{f['lambda_s']:.1f}",
            ]
            for n, f in figures.items()
        ],
        f"per pin in range: {items:.3f} items, {rcu:.3f} RCU, {requests:.4f} requests, {1000 * local_s:.3f} ms here "
        f"end to end (moto included); Lambda: {1000 * REQUEST_SECONDS:g} ms per request and {SECONDS_PER_MB:g} s per "
        f"MB read (assumed) + {1000 * client_s:.3f} ms of client work per pin (measured) x {LAMBDA_CPU_SLOWDOWN:.2f} "
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
    client_s: dict[str, float]  # by filter


def measure_ranges(ranges: Sequence[int], large_ranges: Sequence[int], limit: int) -> Outcome:
    from moto import mock_aws

    with mock_aws(), range_scoped_moto_queries():
        stack = build_stack("bench")
        started = time.perf_counter()
        kubo = build(stack.services.store, Tenant("kubo", *stack.new_tenant("kubo"), 1), ranges[-1] + 1, KUBO_META)
        large = build(
            stack.services.store, Tenant("large", *stack.new_tenant("large"), 1), large_ranges[-1] + 1, largest_meta()
        )
        for tenant in (kubo, large):
            fold_counts(stack, tenant)
        built_s = time.perf_counter() - started
        meter = DynamoMeter()
        with read_only_moto_caches(), api_client(stack.services, kubo.token) as api:
            # To measure past the limit, and past the deadline: moto is far slower than DynamoDB.
            serve(stack, max_scanned_pins=ranges[-1], clock=lambda: 0.0)
            dynamo = stack.services.dynamo
            recordings = {label: record(dynamo, kubo, label, ranges[-1]) for label in FILTERS}
            recordings |= {label: record(dynamo, large, label, large_ranges[-1]) for label in LARGE_FILTERS}
            meter.attach()
            for tenant in (kubo, large):
                api.request("GET", "/pins", token=tenant.token)  # warm: token cache, imports
            rows = [measure(api, meter, kubo, label, n, ranges[-1]) for label in FILTERS for n in ranges]
            scan = next(iter(SCANS))
            memory = [measure(api, meter, kubo, scan, n, ranges[-1], trace=True) for n in (ranges[0], ranges[-1])]
            large_rows = [
                measure(api, meter, large, label, n, ranges[-1]) for label in LARGE_FILTERS for n in large_ranges
            ]
            serve(stack, max_scanned_pins=limit)
            api.request("GET", "/pins", token=kubo.token)  # warm: the new store's shard plan
            refused = [measure(api, meter, kubo, label, limit + 1, limit) for label in FILTERS]
    client_s = {label: replayed_seconds_per_pin(stack.settings, recording) for label, recording in recordings.items()}
    return Outcome(limit, len(kubo.pins), len(large.pins), built_s, rows, refused, memory, large_rows, client_s)


def report(outcome: Outcome) -> None:
    limit = outcome.limit
    headers = [
        "filter",
        "pins in range",
        "answer",
        "items",
        "requests",
        "~RCU",
        "Queries",
        "BatchGetItems",
        "s",
        "ms/item",
    ]
    print(
        f"\nresidual_filters: {outcome.kubo_pins} Kubo-shaped pins and {outcome.large_pins} with 16 KB of meta, one "
        f"tenant each, built in {outcome.built_s:.0f} s; limit (MAX_SCANNED_PINS) {limit}"
    )
    print_table(
        "GET /pins with a partial name (reads every pin of the range) or meta (reads its candidates: here every pin "
        "of the range), by pins in the time range",
        headers,
        [_row(m) for m in outcome.rows],
    )
    print_table(
        f"over the limit ({limit + 1} pins in range, each a candidate of the meta filter): refused",
        headers,
        [_row(m) for m in outcome.refused],
    )
    print_table(
        "peak Python memory of one request (tracemalloc, moto's pages included)",
        ["filter", "pins in range", "peak MB"],
        [[m.label, m.in_range, f"{m.peak_bytes / 2**20:.1f}"] for m in outcome.memory],
    )
    print_table("pins with 16 KB of meta", headers, [_row(m) for m in outcome.large])
    print_table(
        "client work per pin in range: PinStore.find over its recorded DynamoDB responses, replayed (botocore "
        f"parsing, PynamoDB items, the store's merge, filter and count; median of {ROUNDS})",
        ["filter", "ms per pin"],
        [[label, f"{1000 * seconds:.3f}"] for label, seconds in outcome.client_s.items()],
    )
    for label in FILTERS:
        rows_of = [m for m in outcome.rows if m.label == label]
        _extrapolate(f"{label}: Kubo-shaped pins, extrapolated", rows_of, limit, outcome.client_s[label])
    for label in LARGE_FILTERS:
        rows_of = [m for m in outcome.large if m.label == label]
        _extrapolate(f"{label}: extrapolated", rows_of, limit, outcome.client_s[label])


def run(quick: bool) -> Outcome:
    from chalicelib.pins.scan_limit import DEFAULT_MAX_SCANNED_PINS

    fake_credentials()
    cheap_moto_transactions()
    partition_scoped_moto_queries()
    if quick:
        outcome = measure_ranges((100, 250, 500, 1_000), (20, 50, 100), 500)
    else:
        outcome = measure_ranges((1_000, 5_000, 10_000, 20_000), (100, 250, 500), DEFAULT_MAX_SCANNED_PINS)
    report(outcome)
    return outcome


def main(argv: Sequence[str] | None = None) -> None:
    run(quick_flag(argv))


if __name__ == "__main__":
    main()
