"""A webhook receiver one can run: verifies each delivery (Standard
Webhooks, through the `standardwebhooks` library) and prints its event.

    python -m cli.webhook_receiver --secret whsec_... --port 8787

Register it on the local stack with
`python -m cli.admin webhooks add TENANT http://127.0.0.1:8787/ --events pin.pinned ...`.
Each verified event is one JSON line on stdout. A delivery whose signature
does not match, or whose timestamp is more than five minutes off (the
library's tolerance), is refused with 400; one whose `webhook-id` was
already received is acknowledged (200) and not printed again: a replay,
or the sender retrying a delivery whose answer it never saw.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

import click

# Ids remembered against replays: more than five minutes of deliveries (the
# timestamp tolerance refuses anything older).
SEEN_IDS = 100_000
MAX_BODY_BYTES = 1 << 20


class Receiver:
    """Verifies deliveries; `respond` chooses the status of a verified new
    one (tests make it fail or wait), 200 unless given."""

    def __init__(self, secret: str, respond: Callable[[Mapping[str, Any]], int] | None = None) -> None:
        from standardwebhooks.webhooks import Webhook

        self._webhook = Webhook(secret)
        self._respond = respond or (lambda event: 200)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.events: list[Mapping[str, Any]] = []  # verified, new, answered 2xx
        self.refused: list[str] = []  # why
        self.duplicates: list[str] = []  # webhook-ids received again

    def receive(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, Mapping[str, Any] | None]:
        """The status to answer, and the event when it is a new one."""
        from standardwebhooks.webhooks import WebhookVerificationError

        try:
            event = self._webhook.verify(body, dict(headers))
        except (WebhookVerificationError, ValueError) as error:
            with self._lock:
                self.refused.append(str(error))
            return 400, None
        message_id = {key.lower(): value for key, value in headers.items()}["webhook-id"]
        with self._lock:
            if message_id in self._seen:
                self.duplicates.append(message_id)
                return 200, None
        status = self._respond(event)
        if 200 <= status < 300:
            with self._lock:
                self._seen[message_id] = None
                while len(self._seen) > SEEN_IDS:
                    self._seen.popitem(last=False)
                self.events.append(event)
            return status, event
        return status, None


class ReceiverServer:
    """The receiver on an HTTP port of its own (0: any free one)."""

    def __init__(self, receiver: Receiver, host: str = "127.0.0.1", port: int = 0, out: TextIO | None = None) -> None:
        self.receiver = receiver
        self._out = out

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # noqa: N802, N805  (http.server's names)
                length = int(handler.headers.get("content-length") or 0)
                body = handler.rfile.read(min(length, MAX_BODY_BYTES))
                status, event = self.receiver.receive(body, dict(handler.headers.items()))
                if event is not None and self._out is not None:
                    self._out.write(json.dumps(_line(handler.headers.get("webhook-id", ""), event)) + "\n")
                    self._out.flush()
                handler.send_response(status)
                handler.send_header("content-length", "0")
                handler.end_headers()

            def log_message(handler, format: str, *args: Any) -> None:  # noqa: A002, N805
                pass  # one line per event on stdout is the output

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> ReceiverServer:
        self._thread.start()
        return self

    def serve(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _line(message_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
    data = event.get("data") or {}
    return {
        "id": message_id,
        "type": event.get("type"),
        "timestamp": event.get("timestamp"),
        "requestid": data.get("requestid"),
        "cid": (data.get("pin") or {}).get("cid"),
    }


@click.command()
@click.option("--secret", required=True, help="The endpoint's secret (whsec_...), as registering it showed.")
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
def main(secret: str, port: int, host: str) -> None:
    """Print the verified webhook events sent to http://HOST:PORT/."""
    server = ReceiverServer(Receiver(secret), host, port, out=sys.stdout)
    click.echo(f"listening on {server.url}", err=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
