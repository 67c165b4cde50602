"""Time from `POST /pins` to `pinned` through the service, against a direct
pin of the same size between the same Kubo nodes, in the same run.

Three embedded Kubo nodes (devstack, one process each, loopback only): two
fleet nodes and the user's node. Each run adds 1 MiB of fresh random bytes
on the user's node (not timed), then either

- service: POST /pins (Chalice test client on the app, origins = the user
  node's multiaddr) -> SQS receive -> `process_batch` in this process (as
  tests/e2e does), replication 2, so both fleet nodes pin it; timed from the
  POST until process_batch has written `pinned`;
- direct, 1 node: `swarm/connect` to the user node + `pin/add` on one fleet
  node (alternating) over its RPC;
- direct, 2 nodes: the same on both fleet nodes at once (the service's work).

The three are interleaved, their order rotating per run, after a warm-up
run of each. The breakdown times calls on the service's own objects
(wrapped in this process only). AWS is moto in server mode in a child
process on loopback, so the calls cross a socket and moto's work is not
done on the worker's GIL.

The devstack RPC adapter (Python http.server) answers without TCP_NODELAY,
so on a kept-alive connection every call waits ~40 ms for the client's
delayed ACK; Kubo itself (Go) sets TCP_NODELAY. Everything is measured twice:
with the adapter as shipped, and with nodes whose adapter sets TCP_NODELAY
(a sitecustomize on their PYTHONPATH, this benchmark's only change to them).

    .venv/bin/python -m bench.pin_latency [--quick]
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.support import api_client, fake_credentials, print_table, quick_flag
from bench.worker_cost import Backends, worker_stack

SIZE = 1024 * 1024
TOKEN = "bench-kubo-token"
HTTP_TIMEOUT = 60
_NODELAY_SITE = "import socketserver\nsocketserver.StreamRequestHandler.disable_nagle_algorithm = True\n"


@contextlib.contextmanager
def _fleet(nodelay: bool, base_dir: str) -> Iterator[list[Any]]:
    """Two fleet nodes and the user's node (the last)."""
    from devstack.kubo.fleet import running_fleet

    saved = os.environ.get("PYTHONPATH")
    if nodelay:
        site = os.path.join(base_dir, "nodelay-site")
        os.makedirs(site, exist_ok=True)
        with open(os.path.join(site, "sitecustomize.py"), "w") as out:
            out.write(_NODELAY_SITE)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [site, saved]))
    try:
        with running_fleet(3, base_dir, prefix="nodelay" if nodelay else "shipped", auth_token=TOKEN) as nodes:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
            yield nodes
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


class _Rpc:
    """Plain calls on one node's RPC, one kept-alive connection (as a client would)."""

    def __init__(self, node: Any) -> None:
        import requests

        self.node = node
        self._session = requests.Session()
        self._headers = {"Authorization": f"Bearer {TOKEN}", "User-Agent": "bench-pin-latency"}

    def post(self, command: str, **kwargs: Any) -> Any:
        response = self._session.post(
            f"{self.node.rpc_url}/api/v0/{command}", headers=self._headers, timeout=HTTP_TIMEOUT, **kwargs
        )
        if response.status_code != 200:
            raise SystemExit(f"FATAL: {command} on {self.node.name}: {response.status_code} {response.text[:300]}")
        return response

    def add_fresh(self, size: int = SIZE) -> str:
        response = self.post("add", files={"file": ("data.bin", os.urandom(size))})
        lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        return lines[-1]["Hash"]

    def is_pinned(self, cid: str) -> bool:
        response = self._session.post(
            f"{self.node.rpc_url}/api/v0/pin/ls",
            params={"arg": cid, "type": "recursive"},
            headers=self._headers,
            timeout=HTTP_TIMEOUT,
        )
        return response.status_code == 200 and bool(response.json().get("Keys"))


# -- timing the service's objects ---------------------------------------------


class Recorder:
    """Wall time of calls on wrapped methods, while `active`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, float]] = []
        self.active = False
        self._lock = threading.Lock()

    def wrap(self, owner: Any, method: str, label: str) -> None:
        original = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if self.active:
                    ended = time.perf_counter()
                    with self._lock:
                        self.events.append((label, started, ended))

        setattr(owner, method, timed)

    def take(self) -> list[tuple[str, float, float]]:
        with self._lock:
            events, self.events = self.events, []
        return events


def _instrument(services: Any, fleet_nodes: Sequence[Any]) -> Recorder:
    recorder = Recorder()
    recorder.wrap(services.store, "create", "api.dynamodb")
    recorder.wrap(services.outbox, "publish", "api.sqs")
    recorder.wrap(services.store, "get", "worker.dynamodb")
    recorder.wrap(services.store, "update", "worker.dynamodb")
    recorder.wrap(services.worker._holds, "hold", "worker.dynamodb")
    recorder.wrap(services.registry, "nodes", "registry")
    for record in services.registry.nodes(fresh=True):
        client = services.kubo(record)  # the worker's cached client for this node
        for method, label in (
            ("swarm_connect", "swarm/connect"),
            ("pin_add", "pin/add"),
            ("is_pinned", "pin/ls"),
            ("dag_size", "dag/stat"),
        ):
            recorder.wrap(client, method, f"kubo.{label}@{record.node_id}")
    return recorder


@dataclass
class ServiceRun:
    total: float
    api: float
    receive: float
    worker: float
    parts: dict[str, float] = field(default_factory=dict)


def _service_run(stack: _Stack, rpc_user: _Rpc, recorder: Recorder) -> ServiceRun:
    from chalicelib.worker.batch import QueuedMessage, process_batch

    services = stack.services
    cid = rpc_user.add_fresh()
    recorder.take()
    recorder.active = True
    started = time.perf_counter()
    created = stack.api.ok("POST", "/pins", 202, body={"cid": cid, "origins": [rpc_user.node.multiaddr]})
    api_done = time.perf_counter()
    answer = stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)
    messages = answer.get("Messages", [])
    for message in messages:
        stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
    received = time.perf_counter()
    batch = [QueuedMessage(m["MessageId"], m["Body"]) for m in messages]
    result = process_batch(batch, services.worker, services.publisher, 60.0)
    ended = time.perf_counter()
    recorder.active = False
    events = recorder.take()
    if len(batch) != 1 or result["batchItemFailures"]:
        raise SystemExit(f"FATAL: batch of {len(batch)}: {result}")
    status = stack.api.ok("GET", f"/pins/{created['requestid']}", 200)
    if status["status"] != "pinned":
        raise SystemExit(f"FATAL: not pinned: {status}")

    def total_of(label: str, lo: float, hi: float) -> float:
        return sum(end - start for name, start, end in events if name == label and lo <= start <= hi)

    parts: dict[str, float] = {
        "api.dynamodb": total_of("api.dynamodb", started, api_done),
        "api.sqs": total_of("api.sqs", started, api_done),
        "worker.dynamodb": total_of("worker.dynamodb", received, ended),
        "worker.registry": total_of("registry", received, ended),
    }
    # Replicas pin in parallel: the slowest one (dial + pin/add) is on the critical path.
    per_node: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name, start, end in events:
        if name.startswith("kubo.") and received <= start <= ended:
            call, node = name[len("kubo.") :].split("@")
            per_node[node][call] += end - start
    slowest = max(per_node.values(), key=lambda calls: calls["swarm/connect"] + calls["pin/add"])
    parts["swarm/connect"] = slowest["swarm/connect"]
    parts["pin/add stream"] = slowest["pin/add"] - slowest["pin/ls"]  # pin_add confirms with pin/ls
    parts["pin/ls confirm"] = slowest["pin/ls"]
    parts["dag/stat"] = sum(calls["dag/stat"] for calls in per_node.values())
    worker = ended - received
    parts["worker other"] = worker - sum(
        parts[key]
        for key in (
            "worker.dynamodb",
            "worker.registry",
            "swarm/connect",
            "pin/add stream",
            "pin/ls confirm",
            "dag/stat",
        )
    )
    parts["api other"] = (api_done - started) - parts["api.dynamodb"] - parts["api.sqs"]
    return ServiceRun(ended - started, api_done - started, received - api_done, worker, parts)


@dataclass
class DirectRun:
    total: float
    connect: float
    pin: float


def _direct_pin(rpc: _Rpc, cid: str, origin: str) -> DirectRun:
    started = time.perf_counter()
    rpc.post("swarm/connect", params={"arg": origin})
    connected = time.perf_counter()
    rpc.post("pin/add", params={"arg": cid})
    ended = time.perf_counter()
    return DirectRun(ended - started, connected - started, ended - connected)


def _direct_run(rpc_user: _Rpc, fleet_rpcs: Sequence[_Rpc]) -> DirectRun:
    cid = rpc_user.add_fresh()
    started = time.perf_counter()
    if len(fleet_rpcs) == 1:
        run = _direct_pin(fleet_rpcs[0], cid, rpc_user.node.multiaddr)
    else:
        results: list[DirectRun | None] = [None] * len(fleet_rpcs)

        def pin(index: int) -> None:
            results[index] = _direct_pin(fleet_rpcs[index], cid, rpc_user.node.multiaddr)

        threads = [threading.Thread(target=pin, args=(i,)) for i in range(len(fleet_rpcs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        slowest = max((r for r in results if r is not None), key=lambda r: r.total)
        run = DirectRun(time.perf_counter() - started, slowest.connect, slowest.pin)
    if not all(rpc.is_pinned(cid) for rpc in fleet_rpcs):
        raise SystemExit("FATAL: direct pin not recorded")
    return run


# -- one fleet -------------------------------------------------------------------


@dataclass
class _Stack:
    services: Any
    api: Any
    sqs: Any
    queue_url: str


@dataclass
class FleetResult:
    service: list[ServiceRun]
    direct1: list[DirectRun]
    direct2: list[DirectRun]
    call_ms: float  # a bare `id` call on a kept-alive connection
    pin_ls_ms: float = 0.0  # a bare pin/ls of one pinned CID, after the runs
    pins_listed: int = 0  # what the fleet node lists as pinned then (recursive and indirect)


def _measure_fleet(backends: Any, nodelay: bool, runs: int, base_dir: str, prefix: str) -> FleetResult:
    with _fleet(nodelay, base_dir) as nodes:
        fleet_nodes, user = nodes[:2], nodes[2]
        stack_ = worker_stack(backends, prefix, stall_seconds=10, continue_delay_seconds=0, kubo_rpc_secret=TOKEN)
        services, sqs, queue_url = stack_.services, stack_.sqs, stack_.settings.queue_url
        for node in fleet_nodes:
            services.registry.register(node.name, node.rpc_url, node.peer_id, [node.multiaddr])
        token = services.admin.issue_token(stack_.tenant_id, "bench").secret
        recorder = _instrument(services, fleet_nodes)
        rpc_user = _Rpc(user)
        rpc_fleet = [_Rpc(node) for node in fleet_nodes]

        call_ms = []
        for _ in range(5):
            began = time.perf_counter()
            rpc_fleet[0].post("id")
            call_ms.append((time.perf_counter() - began) * 1000)

        result = FleetResult([], [], [], statistics.median(call_ms[1:]))
        with api_client(services, token) as api:
            stack = _Stack(services, api, sqs, queue_url)
            variants: list[tuple[str, Callable[[int], None]]] = [
                ("service", lambda i: result.service.append(_service_run(stack, rpc_user, recorder))),
                ("direct1", lambda i: result.direct1.append(_direct_run(rpc_user, [rpc_fleet[i % 2]]))),
                ("direct2", lambda i: result.direct2.append(_direct_run(rpc_user, rpc_fleet))),
            ]
            for _name, go in variants:  # warm-up: connections, caches, imports
                go(0)
            result.service.clear()
            result.direct1.clear()
            result.direct2.clear()
            for i in range(runs):
                shift = i % len(variants)
                for _name, go in variants[shift:] + variants[:shift]:
                    go(i)
        # The worker confirms each pin with pin/ls; how long one takes on this node now.
        cid = rpc_user.add_fresh(64 * 1024)
        _direct_pin(rpc_fleet[0], cid, user.multiaddr)
        pin_ls_ms = []
        for _ in range(5):
            began = time.perf_counter()
            if not rpc_fleet[0].is_pinned(cid):
                raise SystemExit("FATAL: pin/ls does not list the pin")
            pin_ls_ms.append((time.perf_counter() - began) * 1000)
        result.pin_ls_ms = statistics.median(pin_ls_ms)
        result.pins_listed = len(rpc_fleet[0].post("pin/ls").json().get("Keys", {}))
        return result


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def _measure(runs: int) -> dict[str, FleetResult]:
    results: dict[str, FleetResult] = {}
    with Backends(nodes=0) as backends, tempfile.TemporaryDirectory(prefix="bench-latency-") as base:
        results["adapter as shipped"] = _measure_fleet(backends, False, runs, base, "latshipped")
        results["adapter + TCP_NODELAY"] = _measure_fleet(backends, True, runs, base, "latnodelay")
    return results


class _Rows:
    """Table rows with one column per fleet variant."""

    def __init__(self, results: dict[str, FleetResult]) -> None:
        self.results = results

    def row(self, name: str, pick: Callable[[FleetResult], float]) -> list[Any]:
        return [name] + [_ms(pick(result)) for result in self.results.values()]

    def formatted(self, name: str, value: Callable[[FleetResult], str]) -> list[Any]:
        return [name] + [value(result) for result in self.results.values()]


def _part(key: str) -> Callable[[FleetResult], float]:
    """The median of one part of the service's runs."""
    return lambda r: statistics.median(run.parts[key] for run in r.service)


def _direct_rows(rows: _Rows) -> list[list[Any]]:
    med = statistics.median
    return [
        rows.formatted("one bare RPC call (id), kept-alive connection", lambda r: f"{r.call_ms:.1f}"),
        rows.formatted("one bare pin/ls of 1 CID, after the runs", lambda r: f"{r.pin_ls_ms:.1f}"),
        rows.formatted("  pins the node then lists (recursive + indirect)", lambda r: str(r.pins_listed)),
        rows.row("direct pin, 1 fleet node: swarm/connect + pin/add", lambda r: med(x.total for x in r.direct1)),
        rows.row("  swarm/connect", lambda r: med(x.connect for x in r.direct1)),
        rows.row("  pin/add", lambda r: med(x.pin for x in r.direct1)),
        rows.row("direct pin, both fleet nodes at once", lambda r: med(x.total for x in r.direct2)),
    ]


def _service_rows(rows: _Rows) -> list[list[Any]]:
    med = statistics.median
    return [
        rows.row("service: POST /pins -> pinned (2 replicas)", lambda r: med(x.total for x in r.service)),
        rows.row("  API request POST /pins", lambda r: med(x.api for x in r.service)),
        rows.row("    DynamoDB transaction (pin, counts, outbox)", _part("api.dynamodb")),
        rows.row("    SQS send + outbox delete", _part("api.sqs")),
        rows.row("    auth, validation, placement, Chalice", _part("api other")),
        rows.row("  queue receive + delete", lambda r: med(x.receive for x in r.service)),
        rows.row("  worker process_batch", lambda r: med(x.worker for x in r.service)),
        rows.row("    DynamoDB: get, 2 holds, 2 status writes", _part("worker.dynamodb")),
        rows.row("    Kubo swarm/connect (slowest replica)", _part("swarm/connect")),
        rows.row("    Kubo pin/add stream (slowest replica)", _part("pin/add stream")),
        rows.row("    Kubo pin/ls confirm (slowest replica)", _part("pin/ls confirm")),
        rows.row("    Kubo dag/stat", _part("dag/stat")),
        rows.row(
            "    node list (cached), threads, decode, other",
            lambda r: med(x.parts["worker other"] + x.parts["worker.registry"] for x in r.service),
        ),
    ]


def _ratio_rows(rows: _Rows) -> list[list[Any]]:
    def total(runs: Sequence[Any]) -> float:
        return statistics.median(x.total for x in runs)

    return [
        rows.formatted("ratio service / direct (1 node)", lambda r: f"{total(r.service) / total(r.direct1):.2f}"),
        rows.formatted("ratio service / direct (both nodes)", lambda r: f"{total(r.service) / total(r.direct2):.2f}"),
        rows.formatted(
            "service - direct (both nodes), ms", lambda r: f"{(total(r.service) - total(r.direct2)) * 1000:.0f}"
        ),
    ]


def run(quick: bool) -> dict[str, Any]:
    fake_credentials()
    import logging

    logging.getLogger("pinning").setLevel(logging.WARNING)
    runs = 2 if quick else 9
    results = _measure(runs)
    labels = list(results)
    table = _Rows(results)
    rows = _direct_rows(table) + _service_rows(table) + _ratio_rows(table)
    print_table(
        f"Pin latency, 1 MiB of fresh random content on the user's node, embedded Kubo on loopback "
        f"(ms, median of {runs} runs each, interleaved)",
        ["", *labels],
        rows,
        note=(
            "Indented rows are medians of the parts, so they need not add up to the median above them. "
            "The service pins on both\nfleet nodes in parallel; its Kubo rows are the replica whose dial + "
            "pin/add took longest. 'pin/add stream' is the streamed\npin/add with progress, without the pin/ls "
            "the client makes to confirm it. AWS is moto in server mode in a child process\n(loopback), "
            "so DynamoDB and SQS calls cross a socket as in AWS.\n"
            "'adapter + TCP_NODELAY': the same devstack nodes with Nagle's algorithm off on the RPC "
            "adapter's sockets, as Kubo (Go) has it."
        ),
    )
    return {"results": results}


def main(argv: Sequence[str] | None = None) -> int:
    quick = quick_flag(argv)
    started = time.perf_counter()
    run(quick)
    print(f"(pin_latency: {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
