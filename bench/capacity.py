"""How far ONE tenant can go on today's data model: its largest sustained pin
rate, its size until a DynamoDB limit, dollars per million pins, and the
transaction conflicts among its concurrent writers.

Each pin's lifecycle runs through the real code paths against moto
(in-process): POST /pins through the app, the worker pinning it on two fake
Kubo nodes (tests/support/fake_kubo.py; a 1.3 s fetch, so the worker writes
exactly one progress update), then DELETE /pins/{requestid} and the worker
releasing the pin. Every DynamoDB request is recorded as bench/support.py's
DynamoMeter records it, plus what each write did to each item it names (the
item before and after, read from the emulator by a client nothing meters).
bench/capacity_units.py turns those into write and read units per partition
key and per item, and bytes per table and index, by DynamoDB's documented
rules; the limits below turn them into rates and sizes. Caches that serve
many pins (the token for 60 s, the node list for 30 s, per container) are
warmed first: the figures are per pin, not per container.

Two pin shapes, as issue 10 names them: what Kubo's `ipfs pin remote add`
sends (a name and 8 origins), and the same with 16 KB of `meta` (the API's
limit). `bench/capacity_conflicts.py` replays the recorded transactions of N
concurrent lifecycles of one tenant on a seeded clock.

    .venv/bin/python -m bench.capacity [--quick]
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.capacity_conflicts import ConflictResult, RetryPolicy, Timing, replay
from bench.capacity_units import (
    Item,
    ItemWrite,
    Place,
    TableSchema,
    collection_bytes,
    key_text,
    schema_of,
    stored_bytes,
)
from bench.support import (
    _WRITES,
    PEER_A,
    PEER_B,
    REGION,
    Api,
    Call,
    DynamoMeter,
    api_client,
    build_stack,
    cheap_moto_transactions,
    cid_for,
    fake_credentials,
    print_table,
    quick_flag,
)

STEPS = ("create", "pinning", "progress", "pinned", "delete")
TO_PINNED = STEPS[:4]

# DynamoDB's documented limits.
PARTITION_WCU_PER_S = 1000.0  # per partition; one item, or one partition key of a table with local indexes
PARTITION_RCU_PER_S = 3000.0
ITEM_COLLECTION_BYTES = 10 * 1024**3  # per partition key, on tables with local indexes
TRANSACTION_ITEMS = 100

# On-demand prices, us-east-1, Standard table class (aws.amazon.com/dynamodb/pricing, since November 2024).
REGION_PRICED = "us-east-1"
DOLLARS_PER_MILLION_WRU = 0.625
DOLLARS_PER_MILLION_RRU = 0.125
DOLLARS_PER_GB_MONTH = 0.25
GB = 1024**3

# The fetch: two blocks 0.65 s apart, so the worker's first progress write
# (due 1 s into the fetch) happens once and its next (5 s later) never.
FETCH_BLOCKS = 2
SECONDS_PER_BLOCK = 0.65
WORKER_SECONDS = 60.0

# The conflict model: PinStore._transact's retries and backoff (pin_store's
# CONFLICT_RETRIES, CONFLICT_BACKOFF_BASE_S), with these timings.
TIMING = Timing(in_flight_s=0.025, think_s=0.05)  # assumed: a transaction's latency, a writer's other work
SEED = 10

KUBO_ORIGINS = tuple(
    address
    for k in (1, 2)
    for address in (
        f"/ip4/198.51.100.{k}/tcp/4001/p2p/{PEER_A}",
        f"/ip4/198.51.100.{k}/udp/4001/quic-v1/p2p/{PEER_A}",
        f"/ip6/2001:db8::{k}/tcp/4001/p2p/{PEER_A}",
        f"/ip6/2001:db8::{k}/udp/4001/quic-v1/p2p/{PEER_A}",
    )
)


# -- the pin shapes ---------------------------------------------------------------


def kubo_body(cid: str, index: int) -> dict[str, Any]:
    """What `ipfs pin remote add --name=...` sends: a name and the node's addresses."""
    return {"cid": cid, "name": f"photos/2025/IMG_{index:05d}.jpg", "origins": list(KUBO_ORIGINS)}


def largest_meta() -> dict[str, str]:
    """As much `meta` as the API accepts (16 KB as compact JSON)."""
    from chalicelib.pins.model import MAX_META_JSON_BYTES, MAX_META_VALUE_CHARS

    meta: dict[str, str] = {}
    while True:
        key = f"field-{len(meta)}"
        room = MAX_META_JSON_BYTES - len(json.dumps({**meta, key: ""}, separators=(",", ":")).encode())
        if room <= 0:
            return meta
        meta[key] = "m" * min(room, MAX_META_VALUE_CHARS)


def meta_body(cid: str, index: int) -> dict[str, Any]:
    return {**kubo_body(cid, index), "meta": largest_meta()}


SHAPES: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "Kubo's pin remote add": kubo_body,
    "with 16 KB of meta": meta_body,
}


# -- recording ----------------------------------------------------------------------


@dataclass
class Request:
    """One DynamoDB request: the meter's record of it, what it did to each item, where it read."""

    call: Call
    writes: list[ItemWrite]
    reads: list[tuple[Place, float]]


_EQUALS = re.compile(r"(#?\w+)\s*=\s*(:\w+)")


class ImageRecorder(DynamoMeter):
    """DynamoMeter, plus every write's items before and after it, read by a
    client of its own (which nothing meters), and every read's place."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self._client = client
        self._schemas: dict[str, TableSchema] = {}
        self._lock = threading.Lock()

    def schema(self, table: str) -> TableSchema:
        if table not in self._schemas:
            self._schemas[table] = schema_of(self._client.describe_table(TableName=table)["Table"])
        return self._schemas[table]

    def _image(self, schema: TableSchema, key: Item) -> Item | None:
        item: Item | None = self._client.get_item(TableName=schema.name, Key=key, ConsistentRead=True).get("Item")
        return item

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        DynamoMeter._before(params, model, context)
        targets = [(schema, schema.key_of(item), tx, check) for schema, item, tx, check in self._targets(model, params)]
        context["capacity"] = (
            params,
            [(schema, key, tx, check, self._image(schema, key)) for schema, key, tx, check in targets],
        )

    def _targets(self, model: Any, params: dict[str, Any]) -> list[tuple[TableSchema, Item, bool, bool]]:
        """(table, item or key, transactional, condition check only) of every item a write names."""
        operation = model.name
        if operation not in _WRITES:
            return []
        named: list[tuple[str, Item, bool, bool]]
        if operation == "TransactWriteItems":
            named = []
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                named.append((body["TableName"], body.get("Key") or body["Item"], True, kind == "ConditionCheck"))
        elif operation == "BatchWriteItem":
            named = [
                (
                    table,
                    request["PutRequest"]["Item"] if "PutRequest" in request else request["DeleteRequest"]["Key"],
                    False,
                    False,
                )
                for table, requests in params["RequestItems"].items()
                for request in requests
            ]
        else:
            named = [(params["TableName"], params.get("Key") or params["Item"], False, False)]
        return [(self.schema(table), item, tx, check) for table, item, tx, check in named]

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        with self._lock:  # the meter's record of this call is the last one only under the lock
            super()._after(http_response, parsed, model, context)
            call = self.calls[-1]
        params, targets = context.get("capacity", ({}, []))
        writes = (
            []
            if call.error
            else [
                ItemWrite(schema, before, self._image(schema, key), tx, check)
                for schema, key, tx, check, before in targets
            ]
        )
        self.requests.append(Request(call, writes, [] if call.error else self._reads(call, params)))

    def _reads(self, call: Call, params: dict[str, Any]) -> list[tuple[Place, float]]:
        if call.operation == "GetItem":
            return [(self._item_place(call.table, params["Key"]), call.rcu)]
        if call.operation == "Query":
            schema = self.schema(call.table)
            index, value = _query_partition(schema, params)
            return [(Place(schema.name, index, value, "(query)"), call.rcu)]
        if call.operation == "BatchGetItem":
            keys = [(table, key) for table, wanted in params["RequestItems"].items() for key in wanted["Keys"]]
            places = [self._item_place(table, key) for table, key in keys]
            return [(place, call.rcu / len(places)) for place in places]
        if call.operation == "Scan":
            return [(Place(call.table, "", "(scan)", "(scan)"), call.rcu)]
        return []

    def _item_place(self, table: str, key: Item) -> Place:
        schema = self.schema(table)
        return Place(table, "", key_text(key[schema.hash_key]), key_text(key.get(schema.range_key or "")))


def _query_partition(schema: TableSchema, params: dict[str, Any]) -> tuple[str, str]:
    """(global index name or "", partition key value) of a Query."""
    index = next((index for index in schema.indexes if index.name == params.get("IndexName")), None)
    hash_key = schema.hash_key if index is None else index.hash_key
    names = params.get("ExpressionAttributeNames", {})
    for name, value in _EQUALS.findall(params.get("KeyConditionExpression", "")):
        if names.get(name, name) == hash_key:
            where = "" if index is None or index.local else index.name
            return where, key_text(params["ExpressionAttributeValues"][value])
    raise SystemExit(f"FATAL: no partition key in the Query {params.get('KeyConditionExpression')!r}")


# -- the stack and one lifecycle ------------------------------------------------------


@dataclass
class Lifecycle:
    shape: str
    request_id: str
    steps: list[tuple[str, Request]]

    def of(self, steps: Sequence[str]) -> list[Request]:
        return [request for step, request in self.steps if step in steps]


@dataclass
class CapacityStack:
    services: Any
    api: Api
    sqs: Any
    kubos: list[Any]
    recorder: ImageRecorder
    tenant_id: str

    def work(self) -> None:
        """The worker handles the one message waiting, as its Lambda would."""
        from chalicelib.worker.batch import QueuedMessage, process_batch

        url = self.services.settings.queue_url
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if len(messages) != 1:
            raise SystemExit(f"FATAL: expected one message for the worker, found {len(messages)}")
        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
        batch = [QueuedMessage(messages[0]["MessageId"], messages[0]["Body"])]
        result = process_batch(batch, self.services.worker, self.services.publisher, WORKER_SECONDS)
        if result["batchItemFailures"]:
            raise SystemExit(f"FATAL: the worker failed its message: {result}")

    def run_lifecycle(self, shape: str, index: int) -> Lifecycle:
        """create -> pinning -> one progress update -> pinned -> delete, recorded step by step."""
        cid = cid_for(f"capacity/{shape}/{index}")
        for kubo in self.kubos:
            kubo.add_content(cid, blocks=FETCH_BLOCKS)
            kubo.slow(cid, SECONDS_PER_BLOCK)
        mark = len(self.recorder.requests)
        request_id = self.api.ok("POST", "/pins", 202, body=SHAPES[shape](cid, index))["requestid"]
        created, mark = self.recorder.requests[mark:], len(self.recorder.requests)
        self.work()
        worked, mark = self.recorder.requests[mark:], len(self.recorder.requests)
        self.api.ok("DELETE", f"/pins/{request_id}", 202)
        self.work()
        deleted = self.recorder.requests[mark:]
        steps = [("create", r) for r in created] + label_worker(worked, request_id) + [("delete", r) for r in deleted]
        lifecycle = Lifecycle(shape, request_id, steps)
        check_lifecycle(lifecycle)
        return lifecycle


@contextlib.contextmanager
def capacity_stack() -> Iterator[CapacityStack]:
    """moto in-process, the service's tables and queue, two fake Kubo nodes, one tenant."""
    import boto3
    from moto import mock_aws

    from tests.support.fake_kubo import FakeKubo

    fake_credentials()
    cheap_moto_transactions()
    kubos = [FakeKubo(peer_id=peer).start() for peer in (PEER_A, PEER_B)]
    try:
        with mock_aws():
            stack = build_stack(
                "capacity",
                node_urls=[kubo.url for kubo in kubos],
                replication_factor=2,
                # Per-container caches, warmed once: not a per-pin cost.
                token_cache_seconds=3600,
                node_cache_seconds=3600,
            )
            recorder = ImageRecorder(boto3.client("dynamodb", region_name=REGION))
            recorder.attach()
            with api_client(stack.services, stack.token) as api:
                sqs = boto3.client("sqs", region_name=REGION)
                yield CapacityStack(stack.services, api, sqs, kubos, recorder, stack.tenant_id)
    finally:
        for kubo in kubos:
            kubo.stop()


def _text(item: Item | None, name: str) -> str | None:
    return key_text(item[name]) if item is not None and name in item else None


def status_step(request: Request, request_id: str) -> str | None:
    """The lifecycle step a request's write of the pin's status is, if it writes it."""
    for write in request.writes:
        if request_id not in (_text(write.before, "request_id"), _text(write.after, "request_id")):
            continue
        before, after = _text(write.before, "status"), _text(write.after, "status")
        if before is None:
            return "create"
        if after is None:
            return "delete"
        if before == after == "pinning":
            return "progress"
        return after
    return None


def label_worker(requests: Sequence[Request], request_id: str) -> list[tuple[str, Request]]:
    """Each of the worker's requests under the step of the last status write
    before it (those before the first: under the first)."""
    labels = [status_step(request, request_id) for request in requests]
    current = next((label for label in labels if label), None)
    if current is None:
        raise SystemExit("FATAL: the worker wrote no status of the pin")
    labelled = []
    for label, request in zip(labels, requests, strict=True):
        current = label or current
        labelled.append((current, request))
    return labelled


def check_lifecycle(lifecycle: Lifecycle) -> None:
    """Each step's status write happened once, in order: the figures are of the lifecycle they claim."""
    writes = [status_step(request, lifecycle.request_id) for _, request in lifecycle.steps]
    seen = [step for step in writes if step]
    if seen != list(STEPS):
        raise SystemExit(f"FATAL: the pin's status writes were {seen}, expected {list(STEPS)}")
    errors = [request.call.error for _, request in lifecycle.steps if request.call.error]
    if errors:
        raise SystemExit(f"FATAL: DynamoDB refused requests of the lifecycle: {errors}")


# -- what the lifecycles cost -----------------------------------------------------------


@dataclass
class StepCost:
    requests: float = 0.0
    write_units: float = 0.0
    read_units: float = 0.0
    transactions: list[int] = field(default_factory=list)  # items of each


def step_costs(lifecycles: Sequence[Lifecycle]) -> dict[str, StepCost]:
    """Per step, the mean over the lifecycles (transactions: every one seen)."""
    costs = {step: StepCost() for step in STEPS}
    share = 1 / len(lifecycles)
    for lifecycle in lifecycles:
        for step, request in lifecycle.steps:
            cost = costs[step]
            cost.requests += share
            cost.write_units += share * sum(units for write in request.writes for _, units in write.units())
            cost.read_units += share * sum(units for _, units in request.reads)
            if request.call.operation == "TransactWriteItems":
                cost.transactions.append(request.call.tx_items)
    return costs


def units_by_place(requests: Sequence[Request]) -> tuple[Counter[Place], Counter[Place]]:
    writes: Counter[Place] = Counter()
    reads: Counter[Place] = Counter()
    for request in requests:
        for write in request.writes:
            for place, units in write.units():
                writes[place] += units
        for place, units in request.reads:
            reads[place] += units
    return writes, reads


@dataclass(frozen=True)
class Limit:
    what: str  # the limit and where it binds
    units_per_pin: float
    per_second: float

    @property
    def pins_per_second(self) -> float:
        return self.per_second / self.units_per_pin


def rate_limits(lifecycles: Sequence[Lifecycle], schema: Callable[[str], TableSchema], tenant_id: str) -> list[Limit]:
    """Each limit's busiest place at one tenant's sustained rate, among the
    places several pins share (the tenant's partition key, its counters): a
    shared place gets, per pin, the units a lifecycle spends there averaged
    over the lifecycles. A pin's own item sees only its own few writes,
    whatever the tenant's rate, so it limits nothing."""
    spent = [units_by_place([request for _, request in lifecycle.steps]) for lifecycle in lifecycles]

    def collection(place: Place) -> tuple[str, str, str] | None:
        return place.partition if not place.index and schema(place.table).has_local_index else None

    limits = []
    for kind, which, ceiling in (("WCU", 0, PARTITION_WCU_PER_S), ("RCU", 1, PARTITION_RCU_PER_S)):
        on_kind = [pair[which] for pair in spent]
        partitions = _shared_load(on_kind, collection)
        if partitions:
            (table, _, value), units = partitions.most_common(1)[0]
            where = f"{_short(table)} partition key {_named(value, tenant_id)} (table + local indexes)"
            limits.append(Limit(f"{ceiling:,.0f} {kind}/s on {where}", units, ceiling))
        items = _shared_load(on_kind, lambda place: place)
        if items:
            place, units = items.most_common(1)[0]
            limits.append(
                Limit(f"{ceiling:,.0f} {kind}/s on one item: {_place_name(place, tenant_id)}", units, ceiling)
            )
    return limits


def _shared_load(spent: Sequence[Counter[Place]], group: Callable[[Place], Hashable | None]) -> Counter[Hashable]:
    """Units per lifecycle on each group of places (None: not grouped) that more than one lifecycle spent on."""
    total: Counter[Hashable] = Counter()
    touched: Counter[Hashable] = Counter()
    for by_place in spent:
        groups: Counter[Hashable] = Counter()
        for place, units in by_place.items():
            key = group(place)
            if key is not None:
                groups[key] += units
        total.update(groups)
        touched.update(groups.keys())
    return Counter({key: units / len(spent) for key, units in total.items() if touched[key] > 1})


def _short(table: str) -> str:
    return table.split("-", 1)[-1]


def _named(value: str, tenant_id: str) -> str:
    return value.replace(tenant_id, "{tenant}")


def _place_name(place: Place, tenant_id: str) -> str:
    where = _short(place.table) + (f"/{place.index}" if place.index else "")
    key = _named(place.hash, tenant_id) + (f", {place.range}" if place.range else "")
    return f"{where}[{key}]"


def shared_tables(lifecycles: Sequence[Lifecycle]) -> frozenset[str]:
    """Tables holding an item that more than one lifecycle wrote (the
    tenant's counters): their items belong to time slots, not to a pin."""
    seen: Counter[Place] = Counter()
    for lifecycle in lifecycles:
        seen.update({write.place for _, request in lifecycle.steps for write in request.writes})
    return frozenset(place.table for place, n in seen.items() if n > 1)


def pinned_items(lifecycle: Lifecycle, shared: frozenset[str]) -> list[tuple[TableSchema, Item]]:
    """The pin's own items (not in `shared` tables) as they are stored once it is pinned."""
    latest: dict[Place, tuple[TableSchema, Item | None]] = {}
    for request in lifecycle.of(TO_PINNED):
        for write in request.writes:
            latest[write.place] = (write.schema, write.after)
    return [
        (schema, item) for place, (schema, item) in latest.items() if item is not None and place.table not in shared
    ]


@dataclass
class Storage:
    by_table: dict[str, float]  # bytes per pin, table or "table/index"
    collection: float  # bytes per pin in the item collection every pin of the tenant shares (0: none)

    @property
    def total(self) -> float:
        return sum(self.by_table.values())


def storage_per_pin(lifecycles: Sequence[Lifecycle], shared: frozenset[str]) -> Storage:
    by_table: dict[str, float] = defaultdict(float)
    collection = 0.0
    share = 1 / len(lifecycles)
    stored = [pinned_items(lifecycle, shared) for lifecycle in lifecycles]
    # Item collections every pin of the tenant adds to: partition keys of
    # tables with local indexes that hold an item of every lifecycle.
    collections = frozenset.intersection(
        *(frozenset((s.name, key_text(item[s.hash_key])) for s, item in items if s.has_local_index) for items in stored)
    )
    for items in stored:
        for schema, item in items:
            for name, size in stored_bytes(schema, item).items():
                by_table[name] += share * size
            if (schema.name, key_text(item[schema.hash_key])) in collections:
                collection += share * collection_bytes(schema, item)
    return Storage(dict(by_table), collection)


def transactions_of(lifecycle: Lifecycle) -> list[frozenset[Place]]:
    return [
        frozenset(write.place for write in request.writes)
        for _, request in lifecycle.steps
        if request.call.operation == "TransactWriteItems"
    ]


def retry_policy() -> RetryPolicy:
    from chalicelib.storage.pin_store import CONFLICT_BACKOFF_BASE_S, CONFLICT_RETRIES

    return RetryPolicy(CONFLICT_RETRIES, CONFLICT_BACKOFF_BASE_S)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class ShapeFigures:
    shape: str
    steps: dict[str, StepCost]
    limits: list[Limit]
    storage: Storage
    conflicts: list[ConflictResult]

    @property
    def binding(self) -> Limit:
        return min(self.limits, key=lambda limit: limit.pins_per_second)

    def units(self, steps: Sequence[str]) -> tuple[float, float]:
        return sum(self.steps[s].write_units for s in steps), sum(self.steps[s].read_units for s in steps)

    def dollars_per_million(self, steps: Sequence[str]) -> float:
        writes, reads = self.units(steps)
        return writes * DOLLARS_PER_MILLION_WRU + reads * DOLLARS_PER_MILLION_RRU

    @property
    def storage_dollars_per_million_month(self) -> float:
        return self.storage.total * 1e6 / GB * DOLLARS_PER_GB_MONTH

    @property
    def pins_until_limit(self) -> float | None:
        return ITEM_COLLECTION_BYTES / self.storage.collection if self.storage.collection else None

    @property
    def largest_transaction(self) -> int:
        return max(n for cost in self.steps.values() for n in cost.transactions)


def measure_shape(stack: CapacityStack, shape: str, count: int, writers: Sequence[int]) -> ShapeFigures:
    lifecycles = [stack.run_lifecycle(shape, index) for index in range(count)]
    shared = shared_tables(lifecycles)
    plans = [transactions_of(lifecycle) for lifecycle in lifecycles]
    # Every writer's counter buckets are the recorded ones: concurrent pins share their time slots.
    common = frozenset(place for plan in plans for items in plan for place in items if place.table in shared)
    policy = retry_policy()
    return ShapeFigures(
        shape,
        step_costs(lifecycles),
        rate_limits(lifecycles, stack.recorder.schema, stack.tenant_id),
        storage_per_pin(lifecycles, shared),
        [replay(plans, common, n, policy, TIMING, SEED) for n in writers],
    )


def run(lifecycles: int, writers: Sequence[int], shapes: Sequence[str] = tuple(SHAPES)) -> list[ShapeFigures]:
    """`lifecycles` pins of each shape, one after the other, in one tenant.
    At least two: what pins share is what several lifecycles touched."""
    if lifecycles < 2:
        raise ValueError("the capacity benchmark needs at least two lifecycles per shape")
    with capacity_stack() as stack:
        stack.run_lifecycle(shapes[0], -1)  # warms the per-container caches and clients
        return [measure_shape(stack, shape, lifecycles, writers) for shape in shapes]


# -- the tables -------------------------------------------------------------------------------


def print_steps(figures: ShapeFigures, count: int) -> None:
    rows: list[list[Any]] = []
    for step, cost in figures.steps.items():
        sizes = sorted(set(cost.transactions))
        rows.append(
            [
                step,
                cost.requests,
                f"{len(cost.transactions) / count:.0f} ({'/'.join(map(str, sizes)) or '-'})",
                cost.write_units,
                cost.read_units,
            ]
        )
    for label, steps in (("create -> pinned", TO_PINNED), ("whole lifecycle", STEPS)):
        writes, reads = figures.units(steps)
        rows.append([label, sum(figures.steps[s].requests for s in steps), "", writes, reads])
    print_table(
        f"Pin lifecycle, {figures.shape}: DynamoDB per step (mean of {count} pins)",
        ["step", "requests", "transactions (items each)", "write units", "read units"],
        rows,
        "Write units include every index entry written; x2 in a transaction. Read units: strongly consistent, per 4 KB.",
    )


def print_limits(all_figures: Sequence[ShapeFigures]) -> None:
    rows = [
        [figures.shape, limit.what, limit.units_per_pin, f"{limit.pins_per_second:,.1f}"]
        for figures in all_figures
        for limit in sorted(figures.limits, key=lambda limit: limit.pins_per_second)
    ]
    print_table(
        "One tenant's busiest places at a sustained pin rate",
        ["pin shape", "limit, where it binds", "units per pin", "pins/s at the limit"],
        rows,
        "A table with local indexes keeps each partition key in one partition; any item stays in one partition.",
    )


def print_storage(all_figures: Sequence[ShapeFigures]) -> None:
    names = sorted({name for figures in all_figures for name in figures.storage.by_table})
    rows = [[_short(name)] + [figures.storage.by_table.get(name, 0.0) for figures in all_figures] for name in names]
    rows.append(["all tables and indexes"] + [figures.storage.total for figures in all_figures])
    rows.append(["in the tenant's item collection"] + [figures.storage.collection for figures in all_figures])
    print_table(
        "Bytes stored per pinned pin (each item and index entry + 100 B overhead; shared counters not included)",
        ["table / index"] + [figures.shape for figures in all_figures],
        rows,
    )


def summary_rows(all_figures: Sequence[ShapeFigures]) -> list[list[str]]:
    rows = []
    for figures in all_figures:
        binding = figures.binding
        pins = figures.pins_until_limit
        writes, reads = figures.units(STEPS)
        rows += [
            [f"max sustained pins/s, one tenant ({figures.shape})", f"{binding.pins_per_second:,.1f} ({binding.what})"],
            [
                f"pins per tenant until a limit ({figures.shape})",
                f"{pins:,.0f} (10 GB item collection, {figures.storage.collection / 1024:,.1f} KB per pin)"
                if pins
                else "none found",
            ],
            [
                f"$ per million pins ({figures.shape})",
                f"{figures.dollars_per_million(TO_PINNED):,.2f} to pinned + {figures.dollars_per_million(STEPS[4:]):,.2f} "
                f"delete; storage {figures.storage_dollars_per_million_month:,.2f} per month",
            ],
            [f"units per pin, whole lifecycle ({figures.shape})", f"{writes:.0f} write, {reads:.0f} read"],
            [
                f"largest transaction ({figures.shape})",
                f"{figures.largest_transaction} items (limit {TRANSACTION_ITEMS})",
            ],
        ]
    for result in all_figures[0].conflicts:
        rows.append(
            [
                f"{result.writers:,} concurrent writers: retries per pin / lifecycles cut short (503) / pins/s",
                f"{result.retries_per_pin:.2f} / {result.exhausted_share:.1%} / {result.pins_per_second:,.0f}",
            ]
        )
    return rows


def print_summary(all_figures: Sequence[ShapeFigures]) -> None:
    policy = retry_policy()
    print_table(
        "Capacity of ONE tenant on today's model",
        ["figure", "today's model"],
        summary_rows(all_figures),
        f"Limits: {PARTITION_WCU_PER_S:,.0f} WCU/s and {PARTITION_RCU_PER_S:,.0f} RCU/s per partition, 10 GB per item "
        f"collection (tables with local indexes), {TRANSACTION_ITEMS} items per transaction.\n"
        f"Prices: {REGION_PRICED} on-demand, Standard tables: ${DOLLARS_PER_MILLION_WRU} per million write request "
        f"units, ${DOLLARS_PER_MILLION_RRU} per million read request units, ${DOLLARS_PER_GB_MONTH} per GB-month.\n"
        f"Conflict model ({all_figures[0].shape}, seed {SEED}): a transaction holds its items {TIMING.in_flight_s * 1000:.0f} ms, "
        f"a writer pauses {TIMING.think_s * 1000:.0f} ms on average between its transactions; "
        f"{policy.retries} retries, each after uniform(0, {policy.backoff_base_s * 1000:.0f} ms x 2^attempt).",
    )


def report(all_figures: Sequence[ShapeFigures], count: int) -> None:
    for figures in all_figures:
        print_steps(figures, count)
    print_limits(all_figures)
    print_storage(all_figures)
    print_summary(all_figures)


def main() -> None:
    quick = quick_flag()
    count = 2 if quick else 6
    report(run(count, (10, 100, 1000)), count)


if __name__ == "__main__":
    main()
