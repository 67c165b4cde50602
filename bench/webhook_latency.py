"""Webhook latency on the local stack: from a pin's status change to its
signed event received (and verified) by a receiver on this machine.

One stack (`python -m devstack`, as `make dev` runs it, the worker included)
and one receiver (cli.webhook_receiver's, in this process) registered
through `POST /webhooks` for every pin event. Each run adds fresh bytes to
your node, pins them (POST /pins with your node as origin), waits for the
`pin.pinned` event, deletes the pin (DELETE /pins/{id}) and waits for
`pin.deleted`. Latency of each event:

- pin.queued, pin.deleted: from the API's 202 (the change is committed by
  then) to the receipt: the whole path, stream to receiver;
- pin.pinning, pin.pinned (the worker's writes): from the time the stream
  gives the change (its ApproximateCreationDateTime, the event's `timestamp`).

The local stack reads the pins stream for webhooks every 0.1 s
(devstack.webhook_poller.POLL_SECONDS; Lambda's mapping has no batching
window) and long-polls the webhooks queue.

    .venv/bin/python -m bench.webhook_latency [--runs 20] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.support import LocalStack, local_stack, print_table
from chalicelib.webhooks.endpoints import PIN_EVENTS, new_secret
from cli.webhook_receiver import Receiver, ReceiverServer

EVENT_SECONDS = 120.0
CONTENT_BYTES = 4096


class Arrivals:
    """Events as the receiver verified them, with the wall-clock time of each."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.seen: dict[tuple[str, str], tuple[float, Mapping[str, Any]]] = {}  # (request, type) -> (time, event)

    def __call__(self, event: Mapping[str, Any]) -> int:
        arrived = time.time()
        with self._changed:
            self.seen.setdefault((event["data"]["requestid"], event["type"]), (arrived, event))
            self._changed.notify_all()
        return 200

    def wait(self, request_id: str, event_type: str) -> tuple[float, Mapping[str, Any]]:
        deadline = time.monotonic() + EVENT_SECONDS
        with self._changed:
            while (request_id, event_type) not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"FATAL: no {event_type} event for {request_id} within {EVENT_SECONDS:g} s")
                self._changed.wait(left)
            return self.seen[(request_id, event_type)]


def _stream_time(event: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def measure(stack: LocalStack, runs: int) -> dict[str, list[float]]:
    """Latencies in ms by event type."""
    import requests

    api = requests.Session()
    api.headers.update(stack.auth())
    arrivals = Arrivals()
    server = ReceiverServer(Receiver(new_secret(), arrivals)).start()
    try:
        registered = api.post(f"{stack.url}/webhooks", json={"url": server.url, "events": list(PIN_EVENTS)}, timeout=30)
        if registered.status_code != 201:
            raise SystemExit(f"FATAL: POST /webhooks answered {registered.status_code}: {registered.text[:300]}")
        server.receiver = Receiver(registered.json()["secret"], arrivals)
        your = stack.your_node()
        origins = your.multiaddrs()
        latencies: dict[str, list[float]] = {event: [] for event in PIN_EVENTS if event != "pin.failed"}
        for _ in range(runs):
            cid = your.add_random(CONTENT_BYTES)
            created = api.post(f"{stack.url}/pins", json={"cid": cid, "origins": origins}, timeout=60)
            answered = time.time()
            if created.status_code != 202:
                raise SystemExit(f"FATAL: POST /pins answered {created.status_code}: {created.text[:300]}")
            request_id = created.json()["requestid"]
            latencies["pin.queued"].append((arrivals.wait(request_id, "pin.queued")[0] - answered) * 1000)
            for event_type in ("pin.pinning", "pin.pinned"):
                arrived, event = arrivals.wait(request_id, event_type)
                latencies[event_type].append((arrived - _stream_time(event)) * 1000)
            deleted = api.delete(f"{stack.url}/pins/{request_id}", timeout=60)
            answered = time.time()
            if deleted.status_code != 202:
                raise SystemExit(f"FATAL: DELETE answered {deleted.status_code}: {deleted.text[:300]}")
            latencies["pin.deleted"].append((arrivals.wait(request_id, "pin.deleted")[0] - answered) * 1000)
        return latencies
    finally:
        server.stop()


def report(latencies: Mapping[str, list[float]]) -> None:
    rows = []
    for event_type, values in latencies.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        since = "API's 202" if event_type in ("pin.queued", "pin.deleted") else "stream's time"
        rows.append((event_type, since, len(values), statistics.median(values), p90, max(values)))
    print_table(
        "Webhook latency on the local stack: status change -> event received and verified (ms)",
        ("event", "from", "events", "median", "p90", "max"),
        rows,
        "pin.pinning/pin.pinned are measured from the stream record's time (moto's clock, this machine's).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="pins created, pinned and deleted (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 runs")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else args.runs
    with tempfile.TemporaryDirectory(prefix="webhook-latency-") as state, local_stack(Path(state)) as stack:
        latencies = measure(stack, runs)
    report(latencies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
