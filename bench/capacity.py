"""How far ONE tenant can go, today's data model beside the new one: its
largest sustained pin rate, its size until a DynamoDB limit, dollars per
million pins, and the transaction conflicts among its concurrent writers.

Both columns come from the DynamoDB requests of real pin lifecycles: POST
/pins through the app, the worker pinning it on two fake Kubo nodes
(tests/support/fake_kubo.py; a 1.3 s fetch, so the worker writes exactly one
progress update), then DELETE /pins/{requestid} and the worker releasing the
pin, against moto in-process. Every DynamoDB request is recorded as
bench/support.py's DynamoMeter records it, plus what each write did to each
item it names (the item before and after, read from the emulator by a client
nothing meters). bench/capacity_units.py turns those into write and read
units per place and bytes per table and index, by DynamoDB's documented
rules. Caches that serve many pins (the token, the node list, the shard plan,
per container) are warmed first: the figures are per pin.

Today's column is today's benchmark itself: bench.capacity of commit
TODAY_COMMIT, unchanged, run in a temporary git worktree by this project's
Python in a subprocess that hands its figures back as JSON (TODAY_DRIVER).
Its limits are its own: a table with local indexes keeps a partition key in
one partition and caps its item collection at 10 GB.

The new model (this checkout) runs here, its tenant spread over SHARDS
shards. Its pins first reach pinned; then the count changes they recorded
are folded into each shard's counter tree (CountFolder, one fold per shard,
as the changes' stream would call it), together with the changes of
FILLERS_PER_SHARD more pins per shard made through the store one a
millisecond (so a fold carries the many changes a stream's batch at 1,000
pins/s would); then all are deleted and folded again. The folds' requests
are part of the cost per pin, per pin folded, in rows of their own. Its
limits: every sequential range (capacity_units.sequential_range) and every
item at 1,000 WCU/s and 3,000 RCU/s, per pin of the shard it is in (so a
tenant needs a shard per that many pins/s); the outbox's shards, which every
tenant shares, likewise; and no item collection limit.

Two pin shapes, as issue 10 names them: what Kubo's `ipfs pin remote add`
sends (a name and 8 origins), and the same with 16 KB of `meta` (the API's
limit). bench/capacity_conflicts.py replays both models' recorded
transactions for N concurrent writers of one tenant on a seeded clock.

    .venv/bin/python -m bench.capacity [--quick]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.capacity_conflicts import ConflictResult, RetryPolicy, Timing, Transaction, replay
from bench.capacity_units import (
    Item,
    ItemWrite,
    Place,
    TableSchema,
    key_text,
    schema_of,
    sequential_range,
    stored_bytes,
)
from bench.support import (
    _WRITES,
    PEER_A,
    PEER_B,
    REGION,
    REPO_ROOT,
    Api,
    Call,
    DynamoMeter,
    api_client,
    build_stack,
    cheap_moto_transactions,
    cid_for,
    fake_credentials,
    item_bytes,
    print_table,
    quick_flag,
    verdict,
)

STEPS = ("create", "pinning", "progress", "pinned", "delete")
FOLD_PINNED = "fold (to pinned)"
FOLD_DELETED = "fold (delete)"
TO_PINNED = (*STEPS[:4], FOLD_PINNED)
DELETED = (STEPS[4], FOLD_DELETED)
LIFECYCLE = (*TO_PINNED, *DELETED)

TODAY_COMMIT = "eaa1913"  # today's model and its benchmark, unchanged
SHARDS = 4  # the new model's tenant: its pins spread over this many shards
# Fillers, pins made through the store an hour before the measured ones, one
# a millisecond: the changes a stream's batch (1 s at 1,000 pins/s) folds
# together with the measured pins', so a fold carries many (two or more full
# transactions per shard), not the few of this run's pins alone.
FILLERS_PER_SHARD = 64
FILLERS_BEFORE_MS = 3_600_000

# DynamoDB's documented limits.
PARTITION_WCU_PER_S = 1000.0  # per partition, so per item and per sequential range
PARTITION_RCU_PER_S = 3000.0
ITEM_BYTES = 400 * 1024
TRANSACTION_ITEMS = 100

# Issue 10's targets.
TARGET_PINS_PER_S = 1000.0
TARGET_PINS = 100_000_000
TARGET_COST_RATIO = 1.3

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
# Folders of one shard at once: one is the stream's way; two is the case the
# folder's conditions are there for (a shard's records handed to two invocations).
FOLDERS_PER_SHARD = 2

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
_VALUES = re.compile(r":\w+")


class ImageRecorder(DynamoMeter):
    """DynamoMeter, plus every write's items before and after it, read by a
    client of its own (which nothing meters), and every read's place."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self._client = client
        self._schemas: dict[str, TableSchema] = {}
        self._lock = threading.Lock()
        self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Requests made meanwhile are not recorded (nor their items read)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def schema(self, table: str) -> TableSchema:
        if table not in self._schemas:
            self._schemas[table] = schema_of(self._client.describe_table(TableName=table)["Table"])
        return self._schemas[table]

    def _image(self, schema: TableSchema, key: Item) -> Item | None:
        item: Item | None = self._client.get_item(TableName=schema.name, Key=key, ConsistentRead=True).get("Item")
        return item

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if self._paused:
            return
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
        if self._paused:
            return
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
            return [(_query_place(self.schema(call.table), params), call.rcu)]
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


def _query_place(schema: TableSchema, params: dict[str, Any]) -> Place:
    """Where a Query reads: its partition (global index or table) and the
    lowest sort key its condition names ("" for none), where its range starts."""
    index = next((index for index in schema.indexes if index.name == params.get("IndexName")), None)
    hash_key = schema.hash_key if index is None else index.hash_key
    names = params.get("ExpressionAttributeNames", {})
    values = params["ExpressionAttributeValues"]
    expression = params.get("KeyConditionExpression", "")
    partition = next((value for name, value in _EQUALS.findall(expression) if names.get(name, name) == hash_key), None)
    if partition is None:
        raise SystemExit(f"FATAL: no partition key in the Query {expression!r}")
    bounds = sorted(key_text(values[value]) for value in set(_VALUES.findall(expression)) - {partition})
    where = "" if index is None or index.local else index.name
    return Place(schema.name, where, key_text(values[partition]), bounds[0] if bounds else "")


# -- the stack, the lifecycles and the folds ----------------------------------------------


@dataclass
class Lifecycle:
    shape: str
    request_id: str
    steps: list[tuple[str, Request]]

    def of(self, steps: Sequence[str]) -> list[Request]:
        return [request for step, request in self.steps if step in steps]

    @property
    def requests(self) -> list[Request]:
        return [request for _, request in self.steps]


@dataclass
class CapacityStack:
    services: Any
    api: Api
    sqs: Any
    kubos: list[Any]
    recorder: ImageRecorder
    tenant_id: str
    shards: int

    @property
    def pins_table(self) -> str:
        from chalicelib.storage.pin_item import PinItem

        return str(PinItem.Meta.table_name)

    @property
    def outbox_table(self) -> str:
        from chalicelib.storage.outbox_entry import OutboxEntry

        return str(OutboxEntry.Meta.table_name)

    def family(self, where: Place) -> tuple[Place, int]:
        """Where a range's load counts, and over how many such it is spread:
        the outbox's shards take its load evenly (a hash of the message id
        picks one), whatever few messages this run sent to each."""
        if where.table != self.outbox_table:
            return where, 1
        shards = self.services.settings.outbox_shards
        return replace(where, hash=f"shard#<one of {shards}>"), shards

    def in_shard(self, place: Place) -> bool:
        """Whether `place` is in one of the tenant's shards of the pins table."""
        return (
            place.table == self.pins_table and re.fullmatch(rf"{re.escape(self.tenant_id)}#\d+", place.hash) is not None
        )

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

    def pin(self, shape: str, index: int) -> Lifecycle:
        """create -> pinning -> one progress update -> pinned, recorded step by step."""
        cid = cid_for(f"capacity/{shape}/{index}")
        for kubo in self.kubos:
            kubo.add_content(cid, blocks=FETCH_BLOCKS)
            kubo.slow(cid, SECONDS_PER_BLOCK)
        mark = len(self.recorder.requests)
        request_id = self.api.ok("POST", "/pins", 202, body=SHAPES[shape](cid, index))["requestid"]
        created, mark = self.recorder.requests[mark:], len(self.recorder.requests)
        self.work()
        worked = self.recorder.requests[mark:]
        return Lifecycle(shape, request_id, [("create", r) for r in created] + label_worker(worked, request_id))

    def delete(self, lifecycle: Lifecycle) -> None:
        """DELETE and the worker's release, recorded as the lifecycle's last step."""
        mark = len(self.recorder.requests)
        self.api.ok("DELETE", f"/pins/{lifecycle.request_id}", 202)
        self.work()
        lifecycle.steps += [("delete", r) for r in self.recorder.requests[mark:]]
        check_lifecycle(lifecycle)

    def fill(self, per_shard: int, first_ms: int) -> list[Any]:
        """`per_shard` pins in each shard, one a millisecond from `first_ms`
        (the tenant at 1,000 pins/s), created and moved to pinned through the
        store, unrecorded: the other changes a stream's batch would fold
        together with the measured pins' (its 1 s window at 1,000 pins/s holds
        thousands). Returns them, pinned."""
        from chalicelib.pins.cids import parse_cid
        from chalicelib.pins.model import PinRequest
        from chalicelib.pins.pin import queued_pin

        store = self.services.store
        request = PinRequest(cid=parse_cid(cid_for("capacity/filler")))
        pins = []
        with self.recorder.paused():
            for created_ms in range(first_ms, first_ms + per_shard * self.shards):
                pin = queued_pin(self.tenant_id, created_ms, f"filler-{created_ms}", request, [], ["node-a"])
                store.create(pin, _inert_message(created_ms))
                for status in ("pinning", "pinned"):
                    pin = store.update(pin, status=status)
                pins.append(pin)
        return pins

    def unfill(self, pins: Sequence[Any]) -> None:
        """Deletes the fillers, unrecorded."""
        with self.recorder.paused():
            for pin in pins:
                self.services.store.delete(pin, _inert_message(pin.created_ms))

    def fold(self) -> list[Request]:
        """Folds the count changes of every shard (the fillers put some in
        each), one fold per shard, as the stream would; returns its requests."""
        from chalicelib.storage.count_folder import CountFolder
        from chalicelib.storage.pin_keys import shard_key

        folder = CountFolder(self.services.dynamo)
        mark = len(self.recorder.requests)
        for shard in range(self.shards):
            folder.fold(shard_key(self.tenant_id, shard))
        folds = self.recorder.requests[mark:]
        errors = [request.call.error for request in folds if request.call.error]
        if errors:
            raise SystemExit(f"FATAL: DynamoDB refused requests of the fold: {errors}")
        return folds


def _inert_message(created_ms: int) -> Any:
    """An outbox message for a filler's write: stored, never sent (nothing reads the outbox here)."""
    from chalicelib.queue.outbox_repository import OutboxMessage

    return OutboxMessage("shard#0", f"{created_ms:013d}#filler", "{}", created_ms)


@contextlib.contextmanager
def capacity_stack(shards: int = SHARDS) -> Iterator[CapacityStack]:
    """moto in-process, the service's tables and queue, two fake Kubo nodes,
    one tenant whose pins are spread over `shards` shards from time 0."""
    import boto3
    from moto import mock_aws

    from chalicelib.storage.shard_plan import LEAD_MS, ShardPlans
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
            # A plan step from time 0 (written as if LEAD_MS before it), and its cache warmed once too.
            ShardPlans(now_ms=lambda: -LEAD_MS).raise_to(stack.tenant_id, shards)
            stack.services.store.plans = ShardPlans(cache_seconds=3600)
            recorder = ImageRecorder(boto3.client("dynamodb", region_name=REGION))
            recorder.attach()
            with api_client(stack.services, stack.token) as api:
                sqs = boto3.client("sqs", region_name=REGION)
                yield CapacityStack(stack.services, api, sqs, kubos, recorder, stack.tenant_id, shards)
    finally:
        for kubo in kubos:
            kubo.stop()


def _text(item: Item | None, name: str) -> str | None:
    return key_text(item[name]) if item is not None and name in item else None


def status_step(request: Request, request_id: str) -> str | None:
    """The lifecycle step a request's write of the pin's status is, if it
    writes it: the pin's own item, not its status copy (deleted and put anew
    on every status change)."""
    from chalicelib.storage.pin_keys import PIN, entry_prefix

    for write in request.writes:
        if not write.place.range.startswith(entry_prefix(PIN)):
            continue
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
    writes = [status_step(request, lifecycle.request_id) for request in lifecycle.requests]
    seen = [step for step in writes if step]
    if seen != list(STEPS):
        raise SystemExit(f"FATAL: the pin's status writes were {seen}, expected {list(STEPS)}")
    errors = [request.call.error for request in lifecycle.requests if request.call.error]
    if errors:
        raise SystemExit(f"FATAL: DynamoDB refused requests of the lifecycle: {errors}")


# -- what the lifecycles cost ---------------------------------------------------------------


@dataclass
class StepCost:
    requests: float = 0.0
    write_units: float = 0.0
    read_units: float = 0.0
    transactions: list[int] = field(default_factory=list)  # items of each
    transactions_per_pin: float = 0.0


def _add(cost: StepCost, requests: Sequence[Request], share: float) -> None:
    for request in requests:
        cost.requests += share
        cost.write_units += share * sum(units for write in request.writes for _, units in write.units())
        cost.read_units += share * sum(units for _, units in request.reads)
        if request.call.operation == "TransactWriteItems":
            cost.transactions.append(request.call.tx_items)
            cost.transactions_per_pin += share


@dataclass
class Folds:
    """The folds of one run: their requests by phase (FOLD_PINNED,
    FOLD_DELETED), and the pins whose changes they folded, by shard."""

    requests: dict[str, list[Request]]
    pins: dict[str, int]

    @property
    def every(self) -> list[Request]:
        return [request for requests in self.requests.values() for request in requests]

    @property
    def total_pins(self) -> int:
        return sum(self.pins.values())


def step_costs(lifecycles: Sequence[Lifecycle], folds: Folds) -> dict[str, StepCost]:
    """Per step, the mean over the lifecycles; the folds' requests per pin
    they folded (transactions: every one seen)."""
    costs = {step: StepCost() for step in LIFECYCLE}
    for lifecycle in lifecycles:
        for step in STEPS:
            _add(costs[step], lifecycle.of([step]), 1 / len(lifecycles))
    for step, requests in folds.requests.items():
        _add(costs[step], requests, 1 / folds.total_pins)
    return costs


Units = dict[Place, float]
Family = Callable[[Place], tuple[Place, int]]  # where a range's load counts, and over how many it is spread


def units_by_place(requests: Sequence[Request]) -> tuple[Units, Units]:
    writes: Units = defaultdict(float)
    reads: Units = defaultdict(float)
    for request in requests:
        for write in request.writes:
            for place, units in write.units():
                writes[place] += units
        for place, units in request.reads:
            reads[place] += units
    return writes, reads


def units_by_range(requests: Sequence[Request], family: Family) -> tuple[Units, Units, set[Place]]:
    """Write and read units by sequential range (capacity_units) as `family`
    counts them, and which of those ranges are single items (keys with no
    time in them)."""
    by_place = units_by_place(requests)
    by_range: tuple[Units, Units] = (defaultdict(float), defaultdict(float))
    items = set()
    for units, ranged in zip(by_place, by_range, strict=True):
        for place, n in units.items():
            where, spread = family(sequential_range(place))
            ranged[where] += n / spread
            if where == place:
                items.add(place)
    return by_range[0], by_range[1], items


@dataclass(frozen=True)
class RangeLoad:
    """The units a sequential range or an item takes per pin."""

    place: Place  # the range (its sort-key prefix as `range`) or the item
    write_units: float
    read_units: float
    per_shard: bool  # in one of the tenant's shards (else: shared by all of the tenant's pins)
    item: bool

    @property
    def pins_per_second(self) -> float:
        rates = [PARTITION_WCU_PER_S / self.write_units if self.write_units else math.inf]
        rates.append(PARTITION_RCU_PER_S / self.read_units if self.read_units else math.inf)
        return min(rates)


def range_loads(
    lifecycles: Sequence[Lifecycle], folds: Folds, in_shard: Callable[[Place], bool], family: Family
) -> list[RangeLoad]:
    """Units per pin on every range. In a shard: the lifecycles' per pin that
    used the range (a range of one CID, name or pair has only those pins: the
    conservative case, one value for all), plus the folds' per pin they
    folded in the shard. Elsewhere (the outbox): per pin of the tenant, on
    ranges more than one lifecycle used, as today's benchmark does."""
    writes: Units = defaultdict(float)
    reads: Units = defaultdict(float)
    items: set[Place] = set()
    touched: Counter[Place] = Counter()
    for lifecycle in lifecycles:
        wrote, read, single = units_by_range(lifecycle.requests, family)
        for total, units in ((writes, wrote), (reads, read)):
            for place, n in units.items():
                total[place] += n
        items |= single
        touched.update(wrote.keys() | read.keys())
    fold_writes, fold_reads, fold_items = units_by_range(folds.every, family)
    loads = []
    for place in writes.keys() | reads.keys() | fold_writes.keys() | fold_reads.keys():
        shard = in_shard(place)
        if not shard and touched[place] < 2:
            continue  # a pin's own (its node hold, its outbox message): no other pin adds to it
        pins = touched[place] if shard else len(lifecycles)
        folded = folds.pins.get(place.hash, 0)
        write_units = _share(writes, place, pins) + _share(fold_writes, place, folded)
        read_units = _share(reads, place, pins) + _share(fold_reads, place, folded)
        loads.append(RangeLoad(place, write_units, read_units, shard, place in items or place in fold_items))
    return loads


def _share(units: Units, place: Place, pins: int) -> float:
    """`place`'s units per pin of `pins` (0 when no pin used it)."""
    return units.get(place, 0.0) / pins if pins else 0.0


@dataclass(frozen=True)
class Limit:
    what: str  # the limit and where it binds
    units_per_pin: float
    per_second: float
    per_shard: bool = False  # the rate is a shard's (a tenant's grows with its shards), else the tenant's

    @property
    def pins_per_second(self) -> float:
        return self.per_second / self.units_per_pin


def rate_limits(loads: Sequence[RangeLoad], name: Callable[[RangeLoad], str]) -> list[Limit]:
    """Per kind of unit, the busiest range and the busiest single item, in a shard and outside one."""
    limits = []
    for per_shard in (True, False):
        for item in (False, True):
            group = [load for load in loads if load.per_shard == per_shard and load.item == item]
            for kind, ceiling in (("WCU", PARTITION_WCU_PER_S), ("RCU", PARTITION_RCU_PER_S)):
                units = {load: load.write_units if kind == "WCU" else load.read_units for load in group}
                busiest = max(units, key=units.__getitem__, default=None)
                if busiest is not None and units[busiest]:
                    where = "one item" if item else "a sequential range"
                    what = f"{ceiling:,.0f} {kind}/s on {where}: {name(busiest)}"
                    limits.append(Limit(what, units[busiest], ceiling, per_shard))
    return limits


VALUE_KINDS = {"c": "cid", "n": "name", "f": "folded name", "m": "pair"}  # pin_keys: BY_CID, BY_NAME, ...


def kind_of(sort_key_prefix: str) -> str:
    """A range's or item's sort key, its per-value part named: `c#<cid>#`, `k#3#<parent>`."""
    from chalicelib.storage.pin_keys import COUNTER

    kind, _, rest = sort_key_prefix.partition("#")
    if kind in VALUE_KINDS and rest:
        return f"{kind}#<{VALUE_KINDS[kind]}>#"
    if kind == COUNTER:
        return f"{COUNTER}#{rest.split('#')[0]}#<parent>"
    return sort_key_prefix


def _short(table: str) -> str:
    return table.split("-", 1)[-1]


def _named(value: str, tenant_id: str) -> str:
    return value.replace(tenant_id, "{tenant}")


def place_name(place: Place, tenant_id: str) -> str:
    where = _short(place.table) + (f"/{place.index}" if place.index else "")
    return f"{where}[{_named(place.hash, tenant_id)} / {kind_of(place.range)}]"


# -- what a pin stores ------------------------------------------------------------------------


@dataclass
class Storage:
    by_table: dict[str, float]  # bytes per pin, by table or "table/index" (new model: and kind of item)
    collection: float = 0.0  # bytes per pin in the item collection every pin of the tenant shares (0: none)
    counters: float = 0.0  # bytes per pin of the counter buckets the folds left (not in `total`)

    @property
    def total(self) -> float:
        return sum(self.by_table.values())


def pinned_items(lifecycle: Lifecycle, folded: dict[Place, Item | None]) -> dict[Place, tuple[TableSchema, Item]]:
    """Each item the lifecycle wrote, as stored once the pin is pinned and its changes folded."""
    latest: dict[Place, tuple[TableSchema, Item | None]] = {}
    for request in lifecycle.of(STEPS[:4]):
        for write in request.writes:
            latest[write.place] = (write.schema, folded.get(write.place, write.after))
    return {place: (schema, item) for place, (schema, item) in latest.items() if item is not None}


def storage_per_pin(lifecycles: Sequence[Lifecycle], folds: Folds, pins_table: str) -> Storage:
    """Bytes per pinned pin: its own items (written by it alone) by table,
    index and kind; apart, the counter buckets the fold to pinned left, per pin it folded."""
    fold = folds.requests[FOLD_PINNED]
    final = {write.place: (write.schema, write.after) for request in fold for write in request.writes}
    stored = [pinned_items(lifecycle, {place: item for place, (_, item) in final.items()}) for lifecycle in lifecycles]
    writers = Counter(place for items in stored for place in items)
    by_table: dict[str, float] = defaultdict(float)
    for items in stored:
        for place, (schema, item) in items.items():
            if writers[place] > 1:
                continue  # not the pin's own
            kind = f" {kind_of(sequential_range(place).range)}" if schema.name == pins_table else ""
            for name, size in stored_bytes(schema, item).items():
                by_table[name + kind] += size / len(lifecycles)
    counters = {place: image for place, image in final.items() if place not in writers}
    return Storage(dict(by_table), counters=_bytes(counters) / folds.total_pins)


def _bytes(items: dict[Place, tuple[TableSchema, Item | None]]) -> int:
    """Bytes stored for these items, their index entries included (a deleted one: none)."""
    return sum(sum(stored_bytes(schema, item).values()) for schema, item in items.values() if item is not None)


def transactions_of(requests: Sequence[Request]) -> list[frozenset[Place]]:
    return [
        frozenset(write.place for write in request.writes)
        for request in requests
        if request.call.operation == "TransactWriteItems"
    ]


def shared_items(plans: Sequence[Sequence[Transaction]]) -> frozenset[Any]:
    """Items in the transactions of more than one lifecycle: the same items for every concurrent writer."""
    seen = Counter(item for plan in plans for item in frozenset[Any]().union(*plan))
    return frozenset(item for item, n in seen.items() if n > 1)


def fold_plans(folds: Sequence[Request]) -> list[list[frozenset[Place]]]:
    """Each shard's fold transactions, in order: what one folder of the shard commits."""
    by_shard: dict[str, list[frozenset[Place]]] = {}
    for transaction in transactions_of(folds):
        (shard,) = {place.hash for place in transaction}
        by_shard.setdefault(shard, []).append(transaction)
    return list(by_shard.values())


def retry_policy() -> RetryPolicy:
    from chalicelib.storage.pin_store import CONFLICT_BACKOFF_BASE_S, CONFLICT_RETRIES

    return RetryPolicy(CONFLICT_RETRIES, CONFLICT_BACKOFF_BASE_S)


def fold_retry_policy() -> RetryPolicy:
    from chalicelib.storage.count_folder import BACKOFF_BASE_S, FOLD_ATTEMPTS

    return RetryPolicy(FOLD_ATTEMPTS - 1, BACKOFF_BASE_S)


# -- one pin shape on one model ------------------------------------------------------------------


@dataclass
class ShapeFigures:
    """What one pin shape's lifecycles cost on one model, and where they bind."""

    shape: str
    steps: dict[str, StepCost]
    limits: list[Limit]
    storage: Storage
    plans: Sequence[Sequence[Transaction]]  # each lifecycle's transactions (the items each touched)
    common: frozenset[Any]  # items that are the same for every concurrent writer
    policy: RetryPolicy
    pins_until_limit: float | None = None
    loads: list[RangeLoad] = field(default_factory=list)  # the new model's ranges, by shard
    folds: Sequence[Sequence[Transaction]] = ()  # each shard's fold transactions
    shard_pins: dict[str, tuple[int, int]] = field(default_factory=dict)  # shard -> (measured pins, pins folded)
    outbox_units: float = 0.0  # write units per pin on the outbox, all its shards (the new model's)
    outbox_shards: int = 0
    largest_item: float = 0.0  # bytes, of any item written (the new model's)
    tenant_id: str = ""

    def units(self, steps: Sequence[str]) -> tuple[float, float]:
        costs = [self.steps.get(step, StepCost()) for step in steps]
        return sum(cost.write_units for cost in costs), sum(cost.read_units for cost in costs)

    def dollars_per_million(self, steps: Sequence[str]) -> float:
        writes, reads = self.units(steps)
        return writes * DOLLARS_PER_MILLION_WRU + reads * DOLLARS_PER_MILLION_RRU

    @property
    def storage_dollars_per_million_month(self) -> float:
        return self.storage.total * 1e6 / GB * DOLLARS_PER_GB_MONTH

    def largest_transaction(self, steps: Sequence[str]) -> int | None:
        return max((n for step in steps for n in self.steps.get(step, StepCost()).transactions), default=None)

    @property
    def transactions_per_pin(self) -> float:
        """A writer's transactions per lifecycle (the folds' are not a writer's)."""
        return sum(len(plan) for plan in self.plans) / len(self.plans)

    @property
    def per_shard_rate(self) -> float | None:
        """Pins/s one shard takes at its busiest range or item (None: not sharded)."""
        return min((limit.pins_per_second for limit in self.limits if limit.per_shard), default=None)

    def tenant_rate(self, max_shards: int) -> tuple[float, Limit]:
        """The tenant's largest sustained rate with `max_shards` shards, and the limit that sets it."""
        return min(
            ((limit.pins_per_second * (max_shards if limit.per_shard else 1), limit) for limit in self.limits),
            key=lambda pair: pair[0],
        )

    def shards_for(self, pins_per_second: float) -> int | None:
        rate = self.per_shard_rate
        return math.ceil(pins_per_second / rate) if rate else None


def measure_shape(stack: CapacityStack, shape: str, count: int, fillers: int) -> ShapeFigures:
    """`count` pins to pinned (and `fillers` more per shard), their changes
    folded, then deleted and folded again."""
    from chalicelib.storage.pin_keys import shard_key

    lifecycles = [stack.pin(shape, index) for index in range(count)]
    filled = stack.fill(fillers, int(time.time() * 1000) - FILLERS_BEFORE_MS)
    folded = stack.fold()
    stack.unfill(filled)
    for lifecycle in lifecycles:
        stack.delete(lifecycle)
    measured = Counter(_shard_of(lifecycle, stack.in_shard) for lifecycle in lifecycles)
    shards = [shard_key(stack.tenant_id, n) for n in range(stack.shards)]
    pins = {shard: fillers + measured[shard] for shard in shards}
    folds = Folds({FOLD_PINNED: folded, FOLD_DELETED: stack.fold()}, pins)
    loads = range_loads(lifecycles, folds, stack.in_shard, stack.family)
    outbox, spread = stack.family(Place(stack.outbox_table, "", "", ""))
    plans = [transactions_of(lifecycle.requests) for lifecycle in lifecycles]
    requests = [request for lifecycle in lifecycles for request in lifecycle.requests] + folds.every
    return ShapeFigures(
        shape,
        step_costs(lifecycles, folds),
        rate_limits(loads, lambda load: place_name(load.place, stack.tenant_id)),
        storage_per_pin(lifecycles, folds, stack.pins_table),
        plans,
        shared_items(plans),
        retry_policy(),
        loads=loads,
        folds=fold_plans(folds.every),
        shard_pins={shard: (measured[shard], n) for shard, n in pins.items()},
        outbox_units=sum(load.write_units for load in loads if load.place == outbox) * spread,
        outbox_shards=spread,
        largest_item=max(item_bytes(write.after) for r in requests for write in r.writes if write.after is not None),
        tenant_id=stack.tenant_id,
    )


def _shard_of(lifecycle: Lifecycle, in_shard: Callable[[Place], bool]) -> str:
    return next(write.place.hash for r in lifecycle.requests for write in r.writes if in_shard(write.place))


def run(lifecycles: int, fillers: int, shapes: Sequence[str] = tuple(SHAPES)) -> list[ShapeFigures]:
    """The new model: `lifecycles` pins of each shape in one tenant of SHARDS
    shards, their changes folded with those of `fillers` more pins per shard.
    At least two lifecycles: what pins share is what several touched."""
    if lifecycles < 2 or fillers < 1:
        raise ValueError("the capacity benchmark needs two lifecycles per shape and a filler per shard")
    with capacity_stack() as stack:
        warm = stack.pin(shapes[0], -1)  # warms the per-container caches and clients
        stack.delete(warm)
        stack.fold()
        return [measure_shape(stack, shape, lifecycles, fillers) for shape in shapes]


# -- today's model: its own benchmark at TODAY_COMMIT ------------------------------------------------

# Run by this project's Python in a worktree of TODAY_COMMIT: today's
# bench.capacity.run, unchanged, its figures written as JSON, and the
# transactions it hands its conflict model recorded for ours.
TODAY_DRIVER = """
import dataclasses, json, sys
from bench import capacity

handed = []
def recording_replay(lifecycles, shared, *rest):
    handed.append((lifecycles, shared))
    return replay(lifecycles, shared, *rest)
replay, capacity.replay = capacity.replay, recording_replay

def places(items):
    return sorted([place.table, place.index, place.hash, place.range] for place in items)

out = []
for figures, (lifecycles, shared) in zip(capacity.run(int(sys.argv[1]), (1,)), handed, strict=True):
    out.append({
        "shape": figures.shape,
        "steps": {step: dataclasses.asdict(cost) for step, cost in figures.steps.items()},
        "limits": [dataclasses.asdict(limit) for limit in figures.limits],
        "storage": dataclasses.asdict(figures.storage),
        "pins_until_limit": figures.pins_until_limit,
        "plans": [[places(transaction) for transaction in plan] for plan in lifecycles],
        "common": places(shared),
        "policy": dataclasses.asdict(capacity.retry_policy()),
    })
with open(sys.argv[2], "w", encoding="utf-8") as file:
    json.dump(out, file)
"""


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", REPO_ROOT, *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"FATAL: git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """A checkout of `commit` in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="capacity-baseline-") as parent:
        path = Path(parent) / commit
        _git("worktree", "add", "--detach", "--quiet", str(path), commit)
        try:
            yield path
        finally:
            _git("worktree", "remove", "--force", str(path))


def today_figures(entry: dict[str, Any], lifecycles: int) -> ShapeFigures:
    """One shape's figures as TODAY_DRIVER wrote them, of `lifecycles` pins."""

    def items(places: list[list[str]]) -> frozenset[Any]:
        return frozenset(tuple(place) for place in places)

    return ShapeFigures(
        entry["shape"],
        {
            step: StepCost(**cost, transactions_per_pin=len(cost["transactions"]) / lifecycles)
            for step, cost in entry["steps"].items()
        },
        [Limit(**limit) for limit in entry["limits"]],
        Storage(**entry["storage"]),
        [[items(transaction) for transaction in plan] for plan in entry["plans"]],
        items(entry["common"]),
        RetryPolicy(**entry["policy"]),
        pins_until_limit=entry["pins_until_limit"],
    )


def measure_today(lifecycles: int) -> list[ShapeFigures]:
    """Today's benchmark, unchanged, at TODAY_COMMIT (needs no network: this project's Python)."""
    with worktree(TODAY_COMMIT) as tree:
        out = tree / "capacity.json"
        done = subprocess.run(
            [sys.executable, "-c", TODAY_DRIVER, str(lifecycles), str(out)],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"FATAL: the benchmark of {TODAY_COMMIT} failed:\n{done.stderr[-3000:]}")
        return [today_figures(entry, lifecycles) for entry in json.loads(out.read_text(encoding="utf-8"))]


def new_label() -> str:
    changed = _git("status", "--porcelain", "--", "chalicelib", "app.py")
    return f"new ({_git('rev-parse', '--short', 'HEAD')}{' + uncommitted changes' if changed else ''})"


# -- conflicts ------------------------------------------------------------------------------------


def writer_counts(figures: ShapeFigures) -> list[int]:
    """10, 100, and the writers that 1,000 pins/s needs by the timing model."""
    return [10, 100, TIMING.writers_for(TARGET_PINS_PER_S, figures.transactions_per_pin)]


def conflicts(figures: ShapeFigures, writers: int) -> ConflictResult:
    return replay(figures.plans, figures.common, writers, figures.policy, TIMING, SEED)


def fold_conflicts(figures: ShapeFigures) -> ConflictResult | None:
    """FOLDERS_PER_SHARD folders of each shard at once, each committing the
    shard's recorded fold transactions; every item of a shard's folds is the
    same for its folders (they read the same changes)."""
    if not figures.folds:
        return None
    every = frozenset[Any]().union(*(transaction for plan in figures.folds for transaction in plan))
    return replay(figures.folds, every, FOLDERS_PER_SHARD * len(figures.folds), fold_retry_policy(), TIMING, SEED)


# -- the tables -------------------------------------------------------------------------------


@dataclass
class Models:
    """Both models' figures, shape by shape, and the new model's shard limit."""

    today: list[ShapeFigures]
    new: list[ShapeFigures]
    count: int
    new_label: str = "new"

    @property
    def max_shards(self) -> int:
        from chalicelib.storage.shard_plan import MAX_SHARDS

        return MAX_SHARDS

    @property
    def labels(self) -> list[str]:
        return [f"today ({TODAY_COMMIT})", self.new_label]

    def pairs(self) -> Iterator[tuple[ShapeFigures, ShapeFigures]]:
        return zip(self.today, self.new, strict=True)


def _transactions(cost: StepCost) -> str:
    sizes = sorted(set(cost.transactions))
    shown = "/".join(map(str, sizes)) if len(sizes) < 4 else f"{sizes[0]}-{sizes[-1]}"
    return f"{round(cost.transactions_per_pin, 2):g} ({shown or '-'})"


def print_steps(models: Models) -> None:
    for today, new in models.pairs():
        rows: list[list[Any]] = []
        for step in LIFECYCLE:
            rows.append([step])
            for figures in (today, new):
                cost = figures.steps.get(step)
                rows[-1] += (
                    ["-"] * 4
                    if cost is None
                    else [cost.requests, _transactions(cost), cost.write_units, cost.read_units]
                )
        for label, steps in (("create -> pinned", TO_PINNED), ("delete", DELETED), ("whole lifecycle", LIFECYCLE)):
            rows.append([label])
            for figures in (today, new):
                writes, reads = figures.units(steps)
                rows[-1] += [sum(figures.steps.get(s, StepCost()).requests for s in steps), "", writes, reads]
        columns = ["requests", "transactions (items each)", "write units", "read units"]
        print_table(
            f"Pin lifecycle, {new.shape}: DynamoDB per step, mean of {models.count} pins ({' | '.join(models.labels)})",
            ["step"] + [f"{column}: {which}" for which in ("today", "new") for column in columns],
            rows,
            "Write units include every index entry written; x2 in a transaction. Read units: strongly consistent, "
            "per 4 KB.\nFolds: the new model's count changes folded into the shards' counter trees, one fold per "
            "shard after all pins reached pinned, and again after all were deleted, each with the changes of "
            "fillers (pins one a millisecond: a stream's batch at 1,000 pins/s); per pin folded.",
        )


def _shard_number(shard: str) -> int:
    return int(shard.rsplit("#", 1)[1])


def busiest_by_kind(loads: Sequence[RangeLoad]) -> dict[str, dict[str, RangeLoad]]:
    """kind_of(range) -> shard -> the busiest range of that kind in that shard."""
    cells: dict[str, dict[str, RangeLoad]] = {}
    for load in loads:
        of_kind = cells.setdefault(kind_of(load.place.range), {})
        held = of_kind.get(load.place.hash)
        if held is None or load.pins_per_second < held.pins_per_second:
            of_kind[load.place.hash] = load
    return cells


def print_ranges(models: Models) -> None:
    """The new model's units per pin on each range and item of each shard."""
    for figures in models.new:
        in_shards = [load for load in figures.loads if load.per_shard]
        shards = sorted({load.place.hash for load in in_shards}, key=_shard_number)
        cells = busiest_by_kind(in_shards)
        pins = figures.shard_pins
        rows: list[list[Any]] = [
            ["pins: measured / folded"] + [f"{pins[shard][0]} / {pins[shard][1]}" for shard in shards]
        ]
        for kind, by_shard in sorted(
            cells.items(), key=lambda pair: min(load.pins_per_second for load in pair[1].values())
        ):
            rows.append(
                [kind]
                + [
                    f"{by_shard[shard].write_units:.1f} / {by_shard[shard].read_units:.1f}"
                    if shard in by_shard
                    else "-"
                    for shard in shards
                ]
            )
        print_table(
            f"New model, {figures.shape}: write / read units per pin on each sequential range or item of each "
            f"shard (folds included)",
            ["range or item"] + [_named(shard, figures.tenant_id) for shard in shards],
            rows,
            "Per pin that wrote or read the range (a range of one CID, name or pair: as if every pin of the shard "
            "had that value); the folds' units: per pin folded in the shard. Each at most "
            f"{PARTITION_WCU_PER_S:,.0f} WCU/s and {PARTITION_RCU_PER_S:,.0f} RCU/s.",
        )


def print_limits(models: Models) -> None:
    rows = []
    for label, all_figures in zip(models.labels, (models.today, models.new), strict=True):
        for figures in all_figures:
            for limit in sorted(figures.limits, key=lambda limit: limit.pins_per_second):
                scope = "one shard" if limit.per_shard else "the tenant"
                rows.append(
                    [label, figures.shape, limit.what, limit.units_per_pin, f"{limit.pins_per_second:,.1f}", scope]
                )
    print_table(
        "One tenant's busiest places at a sustained pin rate",
        ["model", "pin shape", "limit, where it binds", "units per pin", "pins/s at the limit", "of"],
        rows,
        "Today: a table with local indexes keeps each partition key in one partition; any item stays in one "
        "partition.\nNew: conservatively, each sequential range (partition key + sort-key prefix before the "
        "13-digit time) stays in one partition; any other item too. Outside the shards: the outbox, its load "
        "spread evenly over its shards (a hash picks one), which every tenant shares.",
    )


def print_storage(models: Models) -> None:
    for today, new in models.pairs():
        names = sorted(set(today.storage.by_table) | set(new.storage.by_table))
        rows: list[list[Any]] = [
            [_short(name)] + [figures.storage.by_table.get(name, "-") for figures in (today, new)] for name in names
        ]
        rows.append(["all tables and indexes"] + [figures.storage.total for figures in (today, new)])
        rows.append(
            ["in the tenant's item collection"] + [figures.storage.collection or "none" for figures in (today, new)]
        )
        rows.append(
            ["counter buckets (not in the total)"] + [figures.storage.counters or "-" for figures in (today, new)]
        )
        print_table(
            f"Bytes stored per pinned pin, {new.shape} (each item and index entry + 100 B overhead)",
            ["table / index / item", *models.labels],
            rows,
            "Counters are shared by pins: today's are not counted; the new model's are the buckets its fold to "
            "pinned left, per pin it folded (most of them fillers, a millisecond apart: a tenant at 1,000 pins/s).",
        )


def _rate(figures: ShapeFigures, max_shards: int) -> str:
    rate, limit = figures.tenant_rate(max_shards)
    if limit.per_shard:
        return f"{rate:,.0f}: {limit.pins_per_second:,.1f} per shard x {max_shards:,} shards ({limit.what})"
    return f"{rate:,.1f} ({limit.what})"


def _shards(figures: ShapeFigures) -> str:
    shards = figures.shards_for(TARGET_PINS_PER_S)
    if shards is None:
        return "- (one partition key)"
    text = f"{shards:,} ({figures.per_shard_rate:,.1f} pins/s each)"
    if figures.outbox_units:
        outbox = math.ceil(TARGET_PINS_PER_S * figures.outbox_units / PARTITION_WCU_PER_S)
        text += f"; outbox (every tenant's): {outbox} shards, now {figures.outbox_shards}"
    return text


def _size(figures: ShapeFigures) -> str:
    if figures.pins_until_limit:
        kb = figures.storage.collection / 1024
        return f"{figures.pins_until_limit:,.0f} (10 GB item collection, {kb:,.1f} KB per pin)"
    return f"none (no item collection; largest item {figures.largest_item / 1024:,.1f} KB of {ITEM_BYTES // 1024} KB)"


def _largest(figures: ShapeFigures) -> str:
    folds = figures.largest_transaction(DELETED[1:] + TO_PINNED[-1:])
    return (
        f"{figures.largest_transaction(STEPS)} items{f', folds {folds}' if folds else ''} (limit {TRANSACTION_ITEMS})"
    )


def _money(today: float, new: float) -> list[str]:
    return [f"{today:,.2f}", f"{new:,.2f} ({new / today:.2f}x today)" if today else f"{new:,.2f}"]


def shape_rows(today: ShapeFigures, new: ShapeFigures, max_shards: int) -> list[list[str]]:
    both = (today, new)
    shape = f"({new.shape})"
    return [
        [f"max sustained pins/s, one tenant {shape}"] + [_rate(figures, max_shards) for figures in both],
        [f"shards for {TARGET_PINS_PER_S:,.0f} pins/s {shape}"] + [_shards(figures) for figures in both],
        [f"pins per tenant until a limit {shape}"] + [_size(figures) for figures in both],
        [f"$ per million pins to pinned {shape}"] + _money(*(f.dollars_per_million(TO_PINNED) for f in both)),
        [f"$ per million pins deleted {shape}"] + _money(*(f.dollars_per_million(DELETED) for f in both)),
        [f"$ per million pins stored, a month {shape}"] + _money(*(f.storage_dollars_per_million_month for f in both)),
        [f"units per pin, whole lifecycle {shape}"]
        + ["{:,.0f} write, {:,.0f} read".format(*figures.units(LIFECYCLE)) for figures in both],
        [f"largest transaction {shape}"] + [_largest(figures) for figures in both],
    ]


def _conflict_cell(result: ConflictResult) -> str:
    return (
        f"{result.writers:,} writers: {result.conflict_rate:.2f} cancellations per transaction, "
        f"{result.retries_per_pin:.2f} retries per pin, {result.exhausted_share:.1%} 503s"
    )


def conflict_rows(today: ShapeFigures, new: ShapeFigures) -> list[list[str]]:
    labels = ["10 concurrent writers", "100 concurrent writers", f"writers for {TARGET_PINS_PER_S:,.0f} pins/s"]
    counts = zip(writer_counts(today), writer_counts(new), strict=True)
    rows = [
        [f"{label} ({new.shape})", _conflict_cell(conflicts(today, a)), _conflict_cell(conflicts(new, b))]
        for label, (a, b) in zip(labels, counts, strict=True)
    ]
    folders = fold_conflicts(new)
    if folders is not None:
        rows.append(
            [
                f"folders, {FOLDERS_PER_SHARD} of each shard at once ({new.shape})",
                "- (counters in every pin's transactions)",
                f"{folders.writers} folders: {folders.conflict_rate:.2f} cancellations per fold transaction, "
                f"{folders.exhausted} gave up (the stream delivers their changes again)",
            ]
        )
    return rows


def print_summary(models: Models) -> None:
    rows = [row for today, new in models.pairs() for row in shape_rows(today, new, models.max_shards)]
    rows += conflict_rows(models.today[0], models.new[0])
    policy, folds = models.new[0].policy, fold_retry_policy()
    print_table(
        "Capacity of ONE tenant: today's model beside the new one",
        ["figure", *models.labels],
        rows,
        f"Limits: {PARTITION_WCU_PER_S:,.0f} WCU/s and {PARTITION_RCU_PER_S:,.0f} RCU/s per partition (today: a "
        f"partition key with local indexes; new: a sequential range or an item), 10 GB per item collection "
        f"(tables with local indexes), {ITEM_BYTES // 1024} KB per item, {TRANSACTION_ITEMS} items per transaction; "
        f"new: at most {models.max_shards:,} shards per tenant. Today's limits are its benchmark's own, which did "
        f"not count the outbox (the same in both models).\n"
        f"Prices: {REGION_PRICED} on-demand, Standard tables: ${DOLLARS_PER_MILLION_WRU} per million write request "
        f"units, ${DOLLARS_PER_MILLION_RRU} per million read request units, ${DOLLARS_PER_GB_MONTH} per GB-month.\n"
        f"Conflict model (seed {SEED}): a transaction holds its items {TIMING.in_flight_s * 1000:.0f} ms, a writer "
        f"pauses {TIMING.think_s * 1000:.0f} ms on average between its transactions, so {TARGET_PINS_PER_S:,.0f} "
        f"pins/s takes rate x transactions per pin x {(TIMING.in_flight_s + TIMING.think_s) * 1000:.0f} ms writers; "
        f"{policy.retries} retries, each after uniform(0, {policy.backoff_base_s * 1000:.0f} ms x 2^attempt) "
        f"(folders: {folds.retries}, {folds.backoff_base_s * 1000:.0f} ms).",
    )


def target_rows(models: Models) -> list[list[str]]:
    rows = []
    for today, new in models.pairs():
        shape = f"({new.shape})"
        rates = [figures.tenant_rate(models.max_shards)[0] for figures in (today, new)]
        sizes = [figures.pins_until_limit for figures in (today, new)]
        ratio = new.dollars_per_million(TO_PINNED) / today.dollars_per_million(TO_PINNED)
        rows += [
            [f">= {TARGET_PINS_PER_S:,.0f} pin creations/s, one tenant {shape}"]
            + [verdict(rate >= TARGET_PINS_PER_S, f"{rate:,.1f}") for rate in rates],
            [f"no limit below {TARGET_PINS / 1e6:,.0f} million pins per tenant {shape}"]
            + [verdict(size is None or size >= TARGET_PINS, f"{size:,.0f}" if size else "none") for size in sizes],
            [
                f"$ per pinned pin <= {TARGET_COST_RATIO}x today's {shape}",
                "-",
                verdict(ratio <= TARGET_COST_RATIO, f"{ratio:.2f}x"),
            ],
        ]
    return rows


def report(models: Models) -> None:
    print_steps(models)
    print_ranges(models)
    print_limits(models)
    print_storage(models)
    print_summary(models)
    print_table("Issue 10's targets", ["target", *models.labels], target_rows(models))


def main() -> None:
    quick = quick_flag()
    count = 2 if quick else 6
    today = measure_today(count)
    new = run(count, FILLERS_PER_SHARD // 4 if quick else FILLERS_PER_SHARD)
    report(Models(today, new, count, new_label()))


if __name__ == "__main__":
    main()
