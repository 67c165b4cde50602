"""Serves the Chalice app locally, answering like the deployed API Gateway.

Built on `chalice.local` (what `chalice local` runs) with three differences:
- an unknown route answers 404 with a Failure body: API Gateway answers 403
  "Missing Authentication Token", which infra maps to this gateway response;
- a HEAD response carries no body (a body would corrupt the next response on a
  kept-alive connection);
- every HTTP method reaches the app (a method no route declares gets its 405),
  and the errors http.server itself sends (malformed request) are Failure JSON,
  not HTML.

`python -m devstack.api_server --state-dir DIR --listen-fd FD` serves it in a
process of its own, as API Gateway runs the API in a Lambda of its own: the
stack's process runs the emulated AWS, whose work grows with every tenant's
backlog, and a request served beside it waited for its interpreter (a
tenant's POST /pins 60 -> 580 ms under another's 10,000 queued pins;
BENCHMARKS.md, tenant fairness). The stack binds the socket (a port in use
fails its start, and it knows the URL at once) and hands it over (`ApiProcess`);
the process reads the handlers' environment from `DIR/service.env`, as the
worker does, and ends with the stack (`devstack.lifeline`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import FrameType
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

from devstack import lifeline
from devstack.env_file import read_env_file
from devstack.proc import stop_child
from devstack.state import REPO_ROOT, SERVICE_ENV

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


def listening_socket(host: str, port: int) -> socket.socket:
    """The API's socket, bound and listening (0 picks a free port), as _Server binds its own."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as HTTPServer's allow_reuse_address
        sock.bind((host, port))
        sock.listen(_Server.request_queue_size)
    except OSError:
        sock.close()
        raise
    return sock


class ApiServer:
    """The Chalice app on host:port (0 picks a free port), or on a socket
    already listening, one thread per connection."""

    def __init__(
        self, app: Chalice, config: Config, host: str, port: int, listening: socket.socket | None = None
    ) -> None:
        _serve_requests_on_threads(app)

        def server(address: tuple[str, int], handler: Any) -> _Server:
            if listening is None:
                return _Server(address, handler)
            adopted = _Server(address, handler, bind_and_activate=False)
            adopted.socket.close()
            adopted.socket, adopted.server_address = listening, listening.getsockname()
            return adopted

        self._dev_server = LocalDevServer(app, config, host, port, handler_cls=RequestHandler, server_cls=server)
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


class ApiProcess:
    """`python -m devstack.api_server` serving on the stack's socket, once
    service.env is written. Its output goes where ours does; a process group
    of its own (a terminal's Ctrl-C is for the stack, which then stops it)."""

    def __init__(self, state_dir: Path, listening: socket.socket) -> None:
        self._state_dir = state_dir
        self._listening = listening
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        fd = self._listening.fileno()
        options = lifeline.child_options()
        command = [sys.executable, "-m", "devstack.api_server", "--state-dir", str(self._state_dir), "--listen-fd"]
        self._process = subprocess.Popen(
            [*command, str(fd)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            process_group=0,
            env=options["env"],
            pass_fds=(*options["pass_fds"], fd),
        )
        self._listening.close()  # the child's now: connections wait in its backlog until it serves

    def is_alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (SIGKILL after `timeout`)."""
        self._listening.close()
        stop_child(self._process, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.api_server", description="Serve the local stack's API.")
    parser.add_argument("--state-dir", type=Path, required=True, help=f"the running stack's, holding {SERVICE_ENV}")
    parser.add_argument("--listen-fd", type=int, required=True, help="a listening TCP socket handed over by the stack")
    args = parser.parse_args(argv)
    os.environ.update(read_env_file(args.state_dir / SERVICE_ENV))
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    lifeline.follow_parent(stopping.set)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    server = _serve(args.state_dir, socket.socket(fileno=args.listen_fd))
    server.start()
    while not stopping.wait(0.5):
        if not server.is_alive():
            return 1
    server.stop()
    return 0


def _serve(state_dir: Path, listening: socket.socket) -> ApiServer:
    import logging

    import app as app_module
    from chalicelib.logs import ReadableFormatter, configure_logging
    from devstack.stage import chalice_config

    configure_logging(formatter=ReadableFormatter())
    for noisy in ("botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = Config.create(
        chalice_stage=os.environ["STAGE"], project_dir=str(REPO_ROOT), config_from_disk=chalice_config()
    )
    host, port = listening.getsockname()[:2]
    return ApiServer(app_module.app, config, host, port, listening)


if __name__ == "__main__":
    sys.exit(main())
