"""Serves the Chalice app locally, answering like the deployed API Gateway.

Built on `chalice.local` (what `chalice local` runs) with three differences:
- an unknown route answers 404 with a Failure body: API Gateway answers 403
  "Missing Authentication Token", which infra maps to this gateway response;
- a HEAD response carries no body (a body would corrupt the next response on a
  kept-alive connection);
- every HTTP method reaches the app (a method no route declares gets its 405),
  and the errors http.server itself sends (malformed request) are Failure JSON,
  not HTML.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    LocalChalice,
    LocalDevServer,
    LocalGateway,
    LocalGatewayException,
    ThreadedHTTPServer,
)

JSON = "application/json"
ROUTE_NOT_FOUND_DETAILS = "unknown route; the API lives under /pins"

_SERVER_ERROR_REASONS = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


def failure_body(reason: str, details: str) -> bytes:
    return json.dumps({"error": {"reason": reason, "details": details}}).encode()


class RouteNotFound(LocalGatewayException):
    CODE = 404

    def __init__(self) -> None:
        super().__init__(
            {"Content-Type": JSON, "x-amzn-ErrorType": "MissingAuthenticationTokenException"},
            failure_body("NOT_FOUND", ROUTE_NOT_FOUND_DETAILS),
        )


class ApiGatewayLikeGateway(LocalGateway):
    def _generate_lambda_event(self, method: str, path: str, headers: dict[str, Any], body: bytes | None) -> Any:
        try:
            return super()._generate_lambda_event(method, path, headers, body)
        except ValueError:  # chalice.local's RouteMatcher: no route matches the path
            raise RouteNotFound() from None


class RequestHandler(ChaliceRequestHandler):
    # Headers and body leave in separate writes: with Nagle's algorithm the
    # body waits for the client's delayed ACK (40 ms per response on Linux).
    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Chalice, config: Config) -> None:
        # As ChaliceRequestHandler.__init__, with our gateway (the request is
        # handled inside BaseHTTPRequestHandler.__init__).
        self.local_gateway = ApiGatewayLikeGateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the gateway (chalice.local lists only seven), so
        # e.g. TRACE gets the app's 405 rather than http.server's 501.
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)

    def _send_http_response_with_body(self, code: int, headers: dict[str, Any], body: Any) -> None:
        super()._send_http_response_with_body(code, headers, b"" if self.command == "HEAD" else body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by http.server itself, before the request reaches Chalice."""
        reason = _SERVER_ERROR_REASONS.get(code, "BAD_REQUEST" if code < 500 else "INTERNAL_SERVER_ERROR")
        body = failure_body(reason, message or self.responses.get(code, ("error",))[0])
        self.log_error("code %d, message %s", code, message)
        self.send_response(code, message)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)


class _Server(ThreadedHTTPServer):
    # socketserver listens with a backlog of 5: a burst of new connections
    # (32 client threads opening theirs at once) overflowed it and got resets.
    request_queue_size = 128


class ApiServer:
    """The Chalice app on host:port (0 picks a free port), one thread per connection."""

    def __init__(self, app: Chalice, config: Config, host: str, port: int) -> None:
        _serve_requests_on_threads(app)
        self._dev_server = LocalDevServer(app, config, host, port, handler_cls=RequestHandler, server_cls=_Server)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._dev_server.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        # Not LocalDevServer.serve_forever, which prints the port it was given (maybe 0).
        self._thread = threading.Thread(target=self._dev_server.server.serve_forever, name="api-server", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is not None:
            self._dev_server.shutdown()
            self._thread.join()
        self._dev_server.server.server_close()


def _serve_requests_on_threads(app: Chalice) -> None:
    """Give `app.current_request` one value per thread, as chalice.local's
    create_local_server does (without touching its shared CustomLocalChalice)."""
    if not isinstance(app, LocalChalice):
        app.__class__ = type("ThreadLocal" + type(app).__name__, (LocalChalice, type(app)), {})
