"""What the benchmarks share: an emulated AWS on loopback, honest DynamoDB and
SQS accounting, test data and table printing.

Nothing here is timed: the benchmarks count work (requests, items) or measure
processes, and print medians and ratios taken side by side in one run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from devstack.console import READY_LINE

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = "us-east-1"

PEER_A = "12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N"
PEER_B = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"


def fake_credentials(keep_endpoint: bool = False) -> None:
    """Fake credentials and no shared config, profile or per-service endpoint
    (the local stack's `use_fake_aws`): nothing here can reach real AWS."""
    from devstack.aws import use_fake_aws

    use_fake_aws()
    if not keep_endpoint:
        os.environ.pop("AWS_ENDPOINT_URL", None)


def cheap_moto_transactions() -> None:
    """moto deep-copies every table a TransactWriteItems touches (to roll back
    on failure), so building a 20,000-pin tenant would take hours. The local
    stack's and the tests' patch keeps all-or-nothing by saving only the
    items the transaction names; counts of requests and items are unchanged."""
    from devstack import moto_transactions

    moto_transactions.install()


def partition_scoped_moto_queries() -> None:
    """moto answers every Query by sorting ALL items of the table, so with
    20,000 pins and ~50,000 counter cells in the tables each Query costs
    ~0.1 s whatever it reads. This runs moto's own Query on a view of the
    table holding only the queried partition (base table or local index,
    whose partition key is the table's), which is the same answer, the same
    ScannedCount and LastEvaluatedKey, and much faster. Emulator speed only;
    every count is still checked against a brute-force one."""
    from moto.dynamodb.models.table import Table

    original = Table.query
    if getattr(original, "_bench_partition_scoped", False):
        return

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        conditions = kwargs.get("hash_key_conditions") or []
        if conditions:
            if len(conditions) != 1 or conditions[0][0] != self.hash_key_attr:
                return original(self, hash_key, *args, **kwargs)  # a global index: other partitions
            value = conditions[0][1]
        else:
            value = hash_key
        if value is None or not self.range_key_attr:
            return original(self, hash_key, *args, **kwargs)
        everything = self.items
        partition = everything.get(value)
        self.items = {value: partition} if partition is not None else {}
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            self.items = everything

    query._bench_partition_scoped = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]


@contextlib.contextmanager
def read_only_moto_caches() -> Iterator[None]:
    """While nothing writes (the list measurements only read), memoize two
    things moto recomputes on every Query: the sort of a partition by an
    index's key, and each item's size (moto sizes every item it walks past
    to enforce the 1 MB page). Both are pure functions of unchanged data, so
    answers, ScannedCount and pages are the same; only the emulator is faster.
    Every count and page is still checked against a brute-force answer."""
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table

    original_sort, original_size = Table.sorted_items, Item.size
    sorts: dict[tuple[Any, ...], tuple[list[Any], list[Any]]] = {}

    def sorted_items(
        self: Any, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]
    ) -> list[Any]:
        key = (
            id(self),
            tuple(hash_key_attrs),
            tuple(range_key_attrs),
            len(items),
            id(items[0]) if items else 0,
            id(items[-1]) if items else 0,
        )
        if key not in sorts:
            given = list(items)  # kept alive, so the ids in the key stay theirs
            sorts[key] = (given, list(original_sort(self, hash_key_attrs, range_key_attrs, items)))
        items[:] = sorts[key][1]
        return items

    def size(self: Any) -> int:
        cached = self.__dict__.get("_bench_size")
        if cached is None:
            cached = self.__dict__["_bench_size"] = original_size(self)
        return cached

    Table.sorted_items, Item.size = sorted_items, size  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.sorted_items, Item.size = original_sort, original_size  # type: ignore[method-assign]


# -- test data ---------------------------------------------------------------


def cid_for(seed: str) -> str:
    """A valid, unique CIDv1 (raw, sha2-256, base32) derived from `seed`."""
    digest = hashlib.sha256(seed.encode()).digest()
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


# -- DynamoDB / SQS accounting ------------------------------------------------

_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class Call:
    operation: str
    table: str
    items_read: int
    write: bool
    tx_items: int = 0  # items in a TransactWriteItems / TransactGetItems
    tx_tables: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    rcu: float = 0.0  # estimated read capacity units, strongly consistent (see estimated_rcu)
    key_strings: list[str] = field(default_factory=list)  # string values of a Query's key condition


@dataclass
class Tally:
    calls: list[Call]

    @property
    def requests(self) -> int:
        return len(self.calls)

    @property
    def items_read(self) -> int:
        return sum(call.items_read for call in self.calls)

    @property
    def rcu(self) -> float:
        return sum(call.rcu for call in self.calls)

    @property
    def reads(self) -> int:
        """Read requests."""
        return sum(1 for call in self.calls if not call.write)

    @property
    def writes(self) -> int:
        """Write requests (a transaction or a batch is one)."""
        return sum(1 for call in self.calls if call.write)

    @property
    def tx_items(self) -> list[int]:
        return [call.tx_items for call in self.calls if call.operation == "TransactWriteItems"]

    def only(self, table_suffix: str) -> Tally:
        return Tally([call for call in self.calls if call.table.endswith(table_suffix)])

    def without(self, table_suffix: str) -> Tally:
        return Tally([call for call in self.calls if not call.table.endswith(table_suffix)])

    def describe(self) -> str:
        parts: dict[str, list[int]] = {}
        for call in self.calls:
            tables = ",".join(name.split("-", 1)[-1] for name in call.table.split(",")) if call.table else "?"
            key = f"{call.operation}({tables})"
            entry = parts.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += call.items_read
        return ", ".join(f"{key} x{n} [{items} items]" for key, (n, items) in parts.items())


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item in wire JSON, following the documented rules
    (names + values; numbers ~1 byte per 2 digits + 1; 3 bytes per map/list)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = len(inner.lstrip("-").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_bytes(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in inner)
    if kind == "SS":
        return sum(len(v.encode()) for v in inner)
    if kind == "NS":
        return sum(_value_bytes({"N": v}) for v in inner)
    return sum(len(v) for v in inner)


def estimated_rcu(operation: str, parsed: dict[str, Any], mean_item_bytes: float = 0.0) -> float:
    """Read capacity a strongly consistent read would consume: the bytes of
    the items read, rounded up to 4 KB per request (1 RCU at least). Items a
    Query/Scan read but did not return (dropped by a FilterExpression, or
    only counted) are sized at `mean_item_bytes`, the mean size of that
    table's items returned so far."""
    if operation in ("Query", "Scan"):
        items = parsed.get("Items", [])
        size = sum(item_bytes(item) for item in items)
        size += max(0, int(parsed.get("ScannedCount", 0)) - len(items)) * mean_item_bytes
    elif operation == "GetItem":
        size = item_bytes(parsed["Item"]) if parsed.get("Item") else 0
    elif operation == "BatchGetItem":
        return float(
            sum(
                max(1, -(-item_bytes(item) // 4096)) for items in parsed.get("Responses", {}).values() for item in items
            )
        )
    else:
        return 0.0
    return float(max(1, -(-int(size) // 4096)))


def _items_read(operation: str, parsed: dict[str, Any]) -> int:
    if operation in ("Query", "Scan"):
        return int(parsed.get("ScannedCount", 0))
    if operation == "GetItem":
        return 1 if parsed.get("Item") else 0
    if operation == "BatchGetItem":
        return sum(len(items) for items in parsed.get("Responses", {}).values())
    if operation == "TransactGetItems":
        return len(parsed.get("Responses", []))
    return 0


class DynamoMeter:
    """Records every DynamoDB call made by the clients the models use.

    The models share one botocore client per `bind_models` (a new one each
    time it is called), so `attach` hooks the client of every model, once
    each, and may be called again at any time.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._hooked: dict[int, Any] = {}
        self._sizes: dict[str, list[int]] = {}  # table -> [bytes, items] returned so far

    def mean_item_bytes(self, table: str) -> float:
        total, count = self._sizes.get(table, [0, 0])
        return total / count if count else 0.0

    def attach(self) -> int:
        from chalicelib.storage.tables import MODELS

        for model in MODELS:
            client = model._get_connection().connection.client
            if id(client) in self._hooked:
                continue
            self._hooked[id(client)] = client  # keep it alive: ids stay unique
            client.meta.events.register(
                "before-parameter-build.dynamodb.*", self._before, unique_id=f"bench-b-{id(self)}"
            )
            client.meta.events.register("after-call.dynamodb.*", self._after, unique_id=f"bench-a-{id(self)}")
        return len(self._hooked)

    @staticmethod
    def _before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        tables: dict[str, int] = {}
        for entry in params.get("TransactItems", []):
            (op,) = entry.values()
            name = op.get("TableName", "?")
            tables[name] = tables.get(name, 0) + 1
        for name, entries in params.get("RequestItems", {}).items():
            tables[name] = tables.get(name, 0) + (
                len(entries) if isinstance(entries, list) else len(entries.get("Keys", []))
            )
        key_strings = []
        if params.get("KeyConditionExpression"):
            key_strings = [
                v["S"] for v in params.get("ExpressionAttributeValues", {}).values() if isinstance(v, dict) and "S" in v
            ]
        context["bench"] = {
            "table": params.get("TableName") or ",".join(sorted(tables)),
            "tables": tables,
            "keys": key_strings,
        }

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        info = context.get("bench", {"table": "?", "tables": {}})
        operation = model.name
        error = parsed.get("Error", {}).get("Code") if isinstance(parsed, dict) else None
        returned = [] if error else parsed.get("Items", []) + ([parsed["Item"]] if parsed.get("Item") else [])
        if returned:
            sizes = self._sizes.setdefault(info["table"], [0, 0])
            sizes[0] += sum(item_bytes(item) for item in returned)
            sizes[1] += len(returned)
        self.calls.append(
            Call(
                operation=operation,
                table=info["table"],
                items_read=0 if error else _items_read(operation, parsed),
                rcu=0.0 if error else estimated_rcu(operation, parsed, self.mean_item_bytes(info["table"])),
                key_strings=list(info.get("keys", [])),
                write=operation in _WRITES,
                tx_items=sum(info["tables"].values()) if operation.startswith("Transact") else 0,
                tx_tables=dict(info["tables"]),
                error=error,
            )
        )

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int) -> Tally:
        return Tally(self.calls[mark:])

    @contextlib.contextmanager
    def measure(self) -> Iterator[Tally]:
        self.attach()
        tally = Tally([])
        start = self.mark()
        yield tally
        tally.calls.extend(self.calls[start:])


class SqsMeter:
    """Counts SendMessage(Batch) calls on the publisher's SQS client."""

    def __init__(self) -> None:
        self.sends = 0
        self.messages = 0
        self._hooked: dict[int, Any] = {}

    def attach(self, services: Any) -> None:
        client = services.outbox._publisher._sqs()
        if id(client) in self._hooked:
            return
        self._hooked[id(client)] = client
        client.meta.events.register("after-call.sqs.*", self._after, unique_id=f"bench-sqs-{id(self)}")

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "SendMessage":
            self.sends += 1
            self.messages += 1
        elif model.name == "SendMessageBatch":
            self.sends += 1
            self.messages += len(parsed.get("Successful", []))


# -- the service on an emulated AWS --------------------------------------------


@dataclass
class Stack:
    settings: Any
    services: Any
    tenant_id: str
    token: str

    def new_tenant(self, name: str) -> tuple[str, str]:
        admin = self.services.admin
        tenant = admin.create_tenant(name)
        return tenant.tenant_id, admin.issue_token(tenant.tenant_id, "bench").secret


def build_stack(
    prefix: str = "bench",
    endpoint_url: str | None = None,
    node_urls: Sequence[str] = ("http://127.0.0.1:5101", "http://127.0.0.1:5102"),
    **settings_changes: Any,
) -> Stack:
    """Queue, tables, two storage nodes (at `node_urls`), a tenant and its token, as
    tests/conftest.py does; `settings_changes` on top of the default Settings. Must
    run inside `mock_aws()` unless `endpoint_url` points at a moto server."""
    import botocore.session

    from chalicelib.config import Settings
    from chalicelib.storage.tables import create_tables
    from chalicelib.wiring import build_services

    sqs = botocore.session.get_session().create_client("sqs", region_name=REGION, endpoint_url=endpoint_url)
    queue_url = sqs.create_queue(QueueName=f"{prefix}-pins")["QueueUrl"]
    settings = replace(
        Settings(),
        table_prefix=prefix,
        queue_url=queue_url,
        region=REGION,
        aws_endpoint_url=endpoint_url,
        **settings_changes,
    )
    create_tables(settings)
    services = build_services(settings)
    url_a, url_b = node_urls
    services.registry.register("node-a", url_a, PEER_A, ["/ip4/203.0.113.1/tcp/4001"])
    services.registry.register("node-b", url_b, PEER_B, ["/ip4/203.0.113.2/tcp/4001"])
    stack = Stack(settings, services, "", "")
    stack.tenant_id, stack.token = stack.new_tenant("bench")
    return stack


class Api:
    """The Chalice test client with a bearer token (as tests/support/api.py)."""

    def __init__(self, client: Any, token: str) -> None:
        self._client = client
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        from urllib.parse import urlencode

        headers = {"Accept": "application/json", "Authorization": f"Bearer {token or self.token}"}
        raw = b""
        if body is not None:
            raw = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = path + ("?" + urlencode(params, doseq=True) if params else "")
        response = self._client.http.request(method, url, headers=headers, body=raw)
        payload = json.loads(response.body) if response.body else None
        return response.status_code, payload

    def ok(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        status, payload = self.request(method, path, **kwargs)
        if status != expect:
            raise SystemExit(f"FATAL: {method} {path} answered {status}, expected {expect}: {payload}")
        return payload


@contextlib.contextmanager
def api_client(services: Any, token: str) -> Iterator[Api]:
    import logging

    from chalice.test import Client

    import app as app_module

    logging.getLogger("botocore").setLevel(logging.WARNING)
    app_module.services.install(services)
    try:
        with Client(app_module.app) as client:
            yield Api(client, token)
    finally:
        app_module.services.install(None)


# -- the local stack as `make dev` runs it ---------------------------------------

HTTP_TIMEOUT = 600  # a 100 MiB add or pin on a busy 2-core machine


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS's pick; nothing holds it for us)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalStack:
    """`python -m devstack` in a child process, ready; its stderr (the log) is
    `<state_dir>/stderr.log`."""

    process: subprocess.Popen
    state_dir: Path
    lines: list[tuple[float, str]] = field(default_factory=list)  # stdout, seconds after launch as read
    ready_seconds: float = 0.0
    stop_seconds: float = 0.0
    env: dict[str, str] = field(default_factory=dict)  # local.env

    @property
    def url(self) -> str:
        return self.env["PINNING_SERVICE_URL"]

    @property
    def log(self) -> Path:
        return self.state_dir / "stderr.log"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.env['PINNING_SERVICE_TOKEN']}"}

    def your_node(self) -> KuboRpc:
        return KuboRpc(self.env["KUBO_RPC_URL"])

    def fleet_nodes(self) -> list[KuboRpc]:
        """The fleet nodes' RPCs, with their secret, from `<state_dir>/stack.json`."""
        described = json.loads((self.state_dir / "stack.json").read_text(encoding="utf-8"))
        return [KuboRpc(node["rpc_url"], described["kubo_rpc_secret"]) for node in described["fleet"]]


@contextlib.contextmanager
def local_stack(state_dir: Path, args: Sequence[str] = (), timeout: float = 180) -> Iterator[LocalStack]:
    """Start the stack on free loopback ports (your node too), yield it once it
    printed its ready line, stop it with SIGTERM (as Ctrl-C) at the end."""
    from devstack.env_file import read_env_file

    state_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "devstack",
        "--port",
        "0",
        "--aws-port",
        "0",
        "--user-node-port",
        str(free_port()),
        "--state-dir",
        str(state_dir),
        *args,
    ]
    with (state_dir / "stderr.log").open("a", encoding="utf-8") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)
    stack = LocalStack(process, state_dir)
    ready = threading.Event()

    def pump() -> None:  # also keeps the pipe drained after the ready line
        assert process.stdout is not None
        for line in process.stdout:
            stack.lines.append((time.perf_counter() - started, line.rstrip("\n")))
            if line.startswith(READY_LINE):
                stack.ready_seconds = stack.lines[-1][0]
                ready.set()
        ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        ready.wait(timeout)
        if not stack.ready_seconds:
            output = "\n".join(text for _, text in stack.lines)
            log = stack.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(
                f"FATAL: devstack not ready within {timeout:g} s (exit {process.poll()}):\n{output}\n{log}"
            )
        stack.env = read_env_file(state_dir / "local.env")
        yield stack
    finally:
        stopping = time.perf_counter()
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stack.stop_seconds = time.perf_counter() - stopping
        reader.join(10)


class _RandomUpload:
    """A multipart/form-data body of `size` fresh random bytes, made as it is
    read: requests sends it with a Content-Length, in small blocks, so even
    100 MiB never sits in this process's memory."""

    def __init__(self, size: int) -> None:
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="data.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._size = size
        self._random_left = size

    def __len__(self) -> int:
        return len(self._head) + self._size + len(self._tail)

    def read(self, wanted: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        if self._random_left:
            block = min(self._random_left, wanted if wanted > 0 else 1 << 20)
            self._random_left -= block
            return os.urandom(block)
        tail, self._tail = self._tail, b""
        return tail


class KuboRpc:
    """A Kubo RPC endpoint (your node, or a fleet node with its bearer secret)."""

    def __init__(self, url: str, secret: str | None = None) -> None:
        import requests

        self.url = url
        self._session = requests.Session()
        if secret:
            self._session.headers["Authorization"] = f"Bearer {secret}"

    def post(self, command: str, *args: str, **kwargs: Any) -> Any:
        params = [("arg", arg) for arg in args] + list(kwargs.pop("params", {}).items())
        response = self._session.post(f"{self.url}/api/v0/{command}", params=params, timeout=HTTP_TIMEOUT, **kwargs)
        if response.status_code != 200:
            raise SystemExit(f"FATAL: {command} on {self.url}: {response.status_code} {response.text[:300]}")
        return response

    def add_random(self, size: int) -> str:
        """Adds `size` fresh random bytes (streamed); returns the CID."""
        body = _RandomUpload(size)
        response = self.post("add", data=body, headers={"Content-Type": body.content_type})
        return json.loads(response.text.splitlines()[-1])["Hash"]

    def multiaddrs(self) -> list[str]:
        return list(self.post("id").json()["Addresses"])


# -- output --------------------------------------------------------------------


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "") -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print()
    print(title)
    print(line)
    for index, row in enumerate(cells):
        print(
            "| "
            + " | ".join(
                value.ljust(w) if i == 0 else value.rjust(w)
                for i, (value, w) in enumerate(zip(row, widths, strict=False))
            )
            + " |"
        )
        if index == 0:
            print(line)
    print(line)
    if note:
        print(note)
    sys.stdout.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def verdict(met: bool, detail: str) -> str:
    return ("MET" if met else "NOT MET") + f" ({detail})"


def quick_flag(argv: Sequence[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    unknown = [arg for arg in argv if arg not in ("--quick",)]
    if unknown:
        raise SystemExit(f"unknown arguments: {unknown}; only --quick is accepted")
    return "--quick" in argv
