"""A command-line client of the Pinning Service API, for its users.

    python -m cli.pins --help

It speaks only HTTP: the service's API (with your access token) and, for
`add`, the RPC API of your own Kubo node. Nothing here needs AWS; of the
service's code it uses only small pure helpers of chalicelib/pins, the CAR
and UnixFS readers of chalicelib/cold for `get`, and the local stack's
env-file reader (devstack.env_file) for `.dev/local.env`. Results
go to stdout (`--json` makes every command print JSON there); progress and
remarks go to stderr.

Where the service is: --url/--token, else an --env-file given explicitly,
else $PINNING_SERVICE_URL/$PINNING_SERVICE_TOKEN, else `.dev/local.env` (what
`make dev` writes). Your Kubo node: --kubo-url, else the same places with
KUBO_RPC_URL.

Exit status: 0 on success; 1 for an error (one line on stderr: the API's
`Error: REASON: details`, or what went wrong) and for a pin that failed;
2 when `wait` (or `--wait`) times out, and for a bad command line; for
`get`, 3 when what arrived failed verification (nothing is written) and 4
when the service asks to retry later (503; its Retry-After is shown).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO
from urllib.parse import quote, urljoin

import click
import requests

from chalicelib.pins.model import MATCHES, MAX_ORIGINS, STATUSES
from chalicelib.pins.sizes import format_bytes
from cli.commands import emit, json_command, note, print_table
from devstack.env_file import read_env_file

if TYPE_CHECKING:  # `get` imports these when it runs: the other commands need none of them
    from chalicelib.cold.car import Block
    from chalicelib.cold.cids import Cid
    from cli.disk_output import DiskOutput

URL_VAR = "PINNING_SERVICE_URL"
TOKEN_VAR = "PINNING_SERVICE_TOKEN"
KUBO_VAR = "KUBO_RPC_URL"
DEFAULT_ENV_FILE = Path(".dev") / "local.env"
REPO_ENV_FILE = Path(__file__).resolve().parents[1] / DEFAULT_ENV_FILE
POLL_SECONDS = 0.5
HTTP_TIMEOUT_S = 30.0
# An upload to Kubo may take a while; only the wait for its first byte is bounded.
KUBO_ADD_TIMEOUT_S = (10.0, 600.0)
# Progress on a terminal is redrawn at most this often; elsewhere a plain line comes at most this often.
REDRAW_S = 0.1
PLAIN_LINE_S = 5.0
UPLOAD_CHUNK = 256 * 1024
CAR_TYPE = "application/vnd.ipld.car"
# A CAR streams for as long as it takes; only the wait for each read is bounded.
GET_TIMEOUT_S = (10.0, 120.0)
DOWNLOAD_CHUNK = 256 * 1024
# Exit status of a wait that ran out of time.
EXIT_TIMEOUT = 2
# Exit status of `get` when what arrived failed verification (nothing written).
EXIT_INTEGRITY = 3
# Exit status of `get` when the service asks to retry later (503 with Retry-After).
EXIT_UNAVAILABLE = 4


class CliError(click.ClickException):
    """A one-line message on stderr (`Error: ...`) and exit status 1, never a traceback."""

    exit_code = 1


class ApiFailure(CliError):
    """A Failure answer of the service: `Error: REASON: details`."""

    def __init__(self, status: int, reason: str, details: str) -> None:
        self.status = status
        self.reason = reason
        self.details = details
        super().__init__(f"{reason}: {details}" if details else reason)


class Unavailable(CliError):
    """A 503 answer: exit status 4, its Retry-After in the message."""

    exit_code = EXIT_UNAVAILABLE


class IntegrityFailure(CliError):
    """Content that failed verification: exit status 3."""

    exit_code = EXIT_INTEGRITY


class WaitTimedOut(CliError):
    """A wait that ran out of time: exit status 2."""

    exit_code = EXIT_TIMEOUT

    def __init__(self, message: str, status: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.status = status


# --- configuration --------------------------------------------------------------


@dataclass
class Options:
    url: str | None = None
    token: str | None = None
    kubo_url: str | None = None
    env_file: Path | None = None
    json: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    _file_values: dict[str, str] | None = None

    def _from_file(self) -> dict[str, str]:
        if self._file_values is None:
            self._file_values = {}
            if self.env_file is not None:
                path = self.env_file
                try:
                    self._file_values = read_env_file(path)
                except OSError as error:
                    raise CliError(f"cannot read --env-file {path}: {error.strerror or error}") from None
                except ValueError as error:  # a line no shell could read either
                    raise CliError(str(error)) from None
            else:
                for path in (DEFAULT_ENV_FILE, REPO_ENV_FILE):
                    try:
                        self._file_values = read_env_file(path)
                    except OSError:
                        continue
                    except ValueError as error:
                        raise CliError(str(error)) from None
                    break
        return self._file_values

    def _setting(self, given: str | None, name: str) -> str | None:
        """The option, else an explicit --env-file, else the environment, else the default file."""
        if given:
            return given
        if self.env_file is not None:
            return self._from_file().get(name) or None
        return self.environ.get(name) or self._from_file().get(name) or None

    def _where(self) -> str:
        if self.env_file is not None:
            return f"--env-file {self.env_file} has no"
        return "no"

    def service(self) -> tuple[str, str]:
        url = self._setting(self.url, URL_VAR)
        if not url:
            raise CliError(
                f"{self._where()} pinning service URL: pass --url or set {URL_VAR} "
                f"(or run `make dev`, which writes {DEFAULT_ENV_FILE})"
            )
        token = self._setting(self.token, TOKEN_VAR)
        if not token:
            raise CliError(
                f"{self._where()} access token: pass --token or set {TOKEN_VAR} "
                f"(or run `make dev`, which writes {DEFAULT_ENV_FILE})"
            )
        return _check_url(url, "pinning service"), token

    def kubo(self) -> str:
        url = self._setting(self.kubo_url, KUBO_VAR)
        if not url:
            raise CliError(
                f"{self._where()} Kubo node for `add`: pass --kubo-url or set {KUBO_VAR} "
                f"(`make dev` runs one and writes it to {DEFAULT_ENV_FILE})"
            )
        return _check_url(url, "Kubo RPC")


def _check_url(url: str, what: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise CliError(f"invalid {what} URL {url!r}: it must start with http:// or https://")
    return url.rstrip("/")


# --- HTTP -------------------------------------------------------------------------


def _refused(error: BaseException) -> bool:
    """Whether a requests ConnectionError comes from a refused connection."""
    seen = set()
    stack: list[Any] = [error]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ConnectionRefusedError):
            return True
        if isinstance(item, BaseException):
            stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return "refused" in str(error).lower()


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _connection_error(what: str, url: str, error: requests.RequestException, hint: str, timeout: Any) -> CliError:
    if isinstance(error, requests.Timeout):
        seconds = timeout[-1] if isinstance(timeout, tuple) else timeout
        return CliError(f"{what} at {url} did not answer within {seconds:g} s")
    if isinstance(error, requests.ConnectionError):
        if _refused(error):
            return CliError(f"cannot connect to {what} at {url}: connection refused. {hint}")
        reason = getattr(error.args[0], "reason", None) if error.args else None
        return CliError(f"cannot connect to {what} at {url}: {_one_line(str(reason or error))}")
    return CliError(f"request to {what} at {url} failed: {_one_line(str(error))}")


class PinningClient:
    """The Pinning Service API; errors become ApiFailure or CliError."""

    def __init__(self, url: str, token: str, timeout: float = HTTP_TIMEOUT_S) -> None:
        self.url = url
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": "pinning-cli/1"}
        )

    def _send(self, method: str, path: str, timeout: Any = None, **kwargs: Any) -> requests.Response:
        timeout = self._timeout if timeout is None else timeout
        try:
            return self._session.request(method, f"{self.url}{path}", timeout=timeout, **kwargs)
        except requests.RequestException as error:
            raise _connection_error(
                "the pinning service",
                self.url,
                error,
                "Is it running? Start the local stack with `make dev`, or pass --url.",
                timeout,
            ) from None

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The answer's JSON object ({} for none, as a delete's 202)."""
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise _failure(response)
        if not response.content:
            return {}
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise CliError(
                f"unexpected answer from the pinning service (HTTP {response.status_code}): "
                f"{_one_line(response.text) or 'not JSON'}"
            )
        return answer

    def add(self, pin: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/pins", json=pin)

    def get(self, request_id: str) -> dict[str, Any]:
        return self._call("GET", f"/pins/{_path_segment(request_id)}")

    def replace(self, request_id: str, pin: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/pins/{_path_segment(request_id)}", json=pin)

    def delete(self, request_id: str) -> None:
        self._call("DELETE", f"/pins/{_path_segment(request_id)}")

    def receipts(self, request_id: str) -> dict[str, Any]:
        return self._call("GET", f"/pins/{_path_segment(request_id)}/receipts")

    def list(self, query: dict[str, str]) -> dict[str, Any]:
        return self._call("GET", "/pins", params=query)

    def car(self, cid: str) -> requests.Response:
        """GET /ipfs/{cid} as a CAR, streamed (the caller closes it). A redirect,
        to a short-lived URL of the archive, is followed without the token: it
        is for the service alone, and S3 refuses a request carrying a second
        credential beside the URL's signature."""
        response = self._send(
            "GET",
            f"/ipfs/{_path_segment(cid)}",
            timeout=GET_TIMEOUT_S,
            headers={"Accept": CAR_TYPE},
            stream=True,
            allow_redirects=False,
        )
        redirected = response.is_redirect
        if redirected:
            location = urljoin(response.url, response.headers["Location"])
            response.close()
            response = _download(location)
        if response.status_code >= 400:
            with response:
                failure = _failure(response)
            if response.status_code == 503:
                retry = response.headers.get("Retry-After")
                raise Unavailable(failure.message + (f" (retry after {_retry_after(retry)})" if retry else ""))
            raise failure
        content_type = response.headers.get("Content-Type", "")
        # A presigned URL's type is what the archive says; every byte is verified anyway.
        if response.status_code != 200 or not (redirected or content_type.startswith(CAR_TYPE)):
            response.close()
            raise CliError(
                f"unexpected answer to GET /ipfs/{cid}: HTTP {response.status_code}, {content_type or 'no type'}"
            )
        return response

    def list_all(self, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every matching pin, newest first, paging as Kubo does: the next page
        is `before` the last result's `created`, until a page's count equals
        the number of results it holds."""
        query = dict(query)
        while True:
            page = self.list(query)
            results = page.get("results") or []
            yield page
            if not results or int(page.get("count", 0)) <= len(results):
                return
            query["before"] = results[-1]["created"]


def _path_segment(value: str) -> str:
    return quote(value, safe="")


def _download(url: str) -> requests.Response:
    """A GET of the archive's presigned URL: no token, no session."""
    try:
        return requests.get(
            url, headers={"Accept": CAR_TYPE, "User-Agent": "pinning-cli/1"}, stream=True, timeout=GET_TIMEOUT_S
        )
    except requests.RequestException as error:
        where = url.split("?", 1)[0]  # the signature stays off the screen
        raise _connection_error(
            "the archive's download URL", where, error, "It may have expired: run get again.", GET_TIMEOUT_S
        ) from None


def _retry_after(value: str) -> str:
    return f"{value} s" if value.strip().isdigit() else value


def _failure(response: requests.Response) -> CliError:
    try:
        error = response.json()["error"]
        reason = str(error["reason"])
        details = str(error.get("details") or "")
    except (ValueError, KeyError, TypeError):
        text = _one_line(response.text)
        return CliError(f"HTTP {response.status_code} {response.reason or ''}".rstrip() + (f": {text}" if text else ""))
    return ApiFailure(response.status_code, reason, _one_line(details, 500))


class YourNode:
    """The few Kubo RPC calls `add` makes to your own node."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _post(self, command: str, timeout: Any = HTTP_TIMEOUT_S, **kwargs: Any) -> requests.Response:
        try:
            response = requests.post(f"{self.url}/api/v0/{command}", timeout=timeout, **kwargs)
        except requests.RequestException as error:
            raise _connection_error(
                "your Kubo node",
                self.url,
                error,
                "Is it running? `make dev` starts one; or pass --kubo-url.",
                timeout,
            ) from None
        if response.status_code >= 400:
            try:
                message = response.json()["Message"]
            except (ValueError, KeyError, TypeError):
                message = _one_line(response.text) or response.reason
            raise CliError(f"Kubo {command}: HTTP {response.status_code}: {_one_line(str(message))}")
        return response

    def add_file(self, path: Path, on_sent: Callable[[int], None] | None = None) -> dict[str, str]:
        """Adds (and pins) one file, read from disk as it is sent; Kubo's `{"Name", "Hash", "Size"}`.

        `on_sent(bytes)` follows the upload. Kubo could report the bytes it
        added (`progress=true`), but it writes those lines while the body is
        still arriving, and this client reads nothing before it has sent it
        all: with a large file they would fill the connection's buffers and
        stall both ends. The bytes sent are counted instead; TCP keeps them
        within a buffer's worth of what the node has read."""
        with _UploadBody(path, on_sent) as body:
            response = self._post(
                "add",
                timeout=KUBO_ADD_TIMEOUT_S,
                params={"pin": "true"},
                data=body,
                headers={"Content-Type": f"multipart/form-data; boundary={body.boundary}"},
            )
        added = None
        for line in response.text.splitlines():
            try:
                item = json.loads(line) if line.strip() else None
            except ValueError:
                item = None
            if isinstance(item, dict) and item.get("Hash"):
                added = item
        if added is None:
            raise CliError(f"Kubo add: no CID in the answer: {_one_line(response.text) or 'empty'}")
        return added

    def peer_addresses(self) -> list[str]:
        """The node's addresses, each ending /p2p/<its ID>, public ones first."""
        try:
            identity = self._post("id").json()
            peer_id = identity["ID"]
            addresses = identity.get("Addresses") or []
        except (ValueError, KeyError, TypeError):
            raise CliError("Kubo id: unexpected answer (no ID)") from None
        suffix = f"/p2p/{peer_id}"
        seen: list[str] = []
        for address in addresses:
            if not isinstance(address, str) or "/p2p-circuit" in address:
                continue
            full = address if address.endswith(suffix) else f"{address}{suffix}"
            if full not in seen:
                seen.append(full)
        seen.sort(key=lambda address: not _looks_public(address))
        return seen[:MAX_ORIGINS]


class _UploadBody:
    """A multipart/form-data body holding one file, read from disk as the HTTP
    library sends it (its length known, so it goes with a Content-Length)."""

    def __init__(self, path: Path, on_sent: Callable[[int], None] | None) -> None:
        self.boundary = uuid.uuid4().hex
        head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{quote(path.name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        self._pieces = [head.encode(), f"\r\n--{self.boundary}--\r\n".encode()]
        self._file: BinaryIO = path.open("rb")
        # Fixed now: read() consumes the pieces as it sends them.
        self._length = os.fstat(self._file.fileno()).st_size + sum(len(piece) for piece in self._pieces)
        self._on_sent = on_sent
        self._sent = 0

    def __len__(self) -> int:
        return self._length

    def __enter__(self) -> _UploadBody:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()

    def read(self, amount: int = -1) -> bytes:
        if len(self._pieces) == 2:
            return self._pieces.pop(0)
        data = self._file.read(amount if amount > 0 else UPLOAD_CHUNK)
        if data:
            self._sent += len(data)
            if self._on_sent is not None:
                self._on_sent(self._sent)
            return data
        return self._pieces.pop() if self._pieces else b""


def _looks_public(multiaddr: str) -> bool:
    import ipaddress

    parts = multiaddr.split("/")
    if len(parts) > 2 and parts[1] in ("ip4", "ip6"):
        try:
            return ipaddress.ip_address(parts[2]).is_global
        except ValueError:
            return False
    return True


# --- output -------------------------------------------------------------------------


def _options() -> Options:
    return click.get_current_context().find_root().ensure_object(Options)


def _client() -> PinningClient:
    url, token = _options().service()
    return PinningClient(url, token)


def _accepted(client: PinningClient, status: dict[str, Any], wait: bool, timeout: float | None) -> None:
    """Shows a new request's id, then follows it when asked to."""
    if not _options().json:
        click.echo(status["requestid"])
    if wait:
        _wait_and_report(client, status, timeout)
    else:
        emit(status, lambda: None)


def _print_status(status: dict[str, Any]) -> None:
    pin = status.get("pin") or {}
    rows: list[tuple[str, list[str]]] = [
        ("request", [status.get("requestid", "")]),
        ("status", [status.get("status", "")]),
        ("created", [status.get("created", "")]),
        ("cid", [pin.get("cid", "")]),
        ("name", [pin.get("name") or "-"]),
    ]
    if pin.get("origins"):
        rows.append(("origins", list(pin["origins"])))
    if pin.get("meta"):
        rows.append(("meta", [f"{key}={value}" for key, value in sorted(pin["meta"].items())]))
    rows.append(("delegates", list(status.get("delegates") or []) or ["-"]))
    info = status.get("info") or {}
    rows.append(("info", [f"{key}: {value}" for key, value in sorted(info.items())] or ["-"]))
    width = max(len(label) for label, _ in rows)
    for label, values in rows:
        for index, value in enumerate(values):
            click.echo(f"{(label if index == 0 else '').ljust(width)}  {value}")


def command(group: click.Group, name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], click.Command]:
    return json_command(group, name, Options, **kwargs)


# --- waiting --------------------------------------------------------------------------


class StatusLine:
    """One line of progress: redrawn in place on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO, tty: bool) -> None:
        self._stream = stream
        self.tty = tty
        self._open = False

    def show(self, text: str) -> None:
        if self.tty:
            columns = shutil.get_terminal_size((80, 24)).columns
            if len(text) > columns - 1:
                text = text[: max(10, columns - 4)] + "..."
            self._stream.write(f"\r\x1b[K{text}")
            self._open = True
        else:
            self._stream.write(f"{text}\n")
        self._stream.flush()

    def end(self, clear: bool = False) -> None:
        """Leave the line on a terminal: kept (a newline after it), or cleared."""
        if self._open:
            self._stream.write("\r\x1b[K" if clear else "\n")
            self._stream.flush()
            self._open = False


class _Throttle:
    """When a progress line is due: the first, the last, and in between at most
    every REDRAW_S on a terminal, every PLAIN_LINE_S elsewhere."""

    def __init__(self, line: StatusLine, clock: Callable[[], float]) -> None:
        self._every = REDRAW_S if line.tty else PLAIN_LINE_S
        self._clock = clock
        self._shown_at: float | None = None

    def due(self, final: bool) -> bool:
        now = self._clock()
        if not final and self._shown_at is not None and now - self._shown_at < self._every:
            return False
        self._shown_at = now
        return True


class SendProgress:
    """`adding NAME: 12.3 MiB / 50.0 MiB sent` while a file goes to your node."""

    def __init__(self, line: StatusLine, name: str, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._line = line
        self._name = name
        self._total = total
        self._throttle = _Throttle(line, clock)

    def sent(self, done: int) -> None:
        if not self._throttle.due(final=done >= self._total):
            return
        text = f"adding {self._name}: {format_bytes(done)} / {format_bytes(self._total)} sent"
        self._line.show(text + (", waiting for your node" if done >= self._total else ""))

    def finish(self) -> None:
        self._line.end(clear=True)


class GetProgress:
    """Counts what a CAR brought and, given a line, shows it while it arrives:
    `getting CID: 12.3 MiB of 50.0 MiB, 45 blocks verified` (the total when
    the answer has a length)."""

    def __init__(
        self, line: StatusLine | None, name: str, total: int | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._line = line
        self._name = name
        self._total = total
        self._throttle = _Throttle(line, clock) if line is not None else None
        self.received = 0
        self.blocks = 0

    def chunk(self, size: int) -> None:
        self.received += size
        self._show()

    def block(self, _block: Block) -> None:
        self.blocks += 1
        self._show()

    def _show(self, final: bool = False) -> None:
        if self._line is not None and self._throttle is not None and self._throttle.due(final):
            of = f" of {format_bytes(self._total)}" if self._total is not None else ""
            self._line.show(f"getting {self._name}: {format_bytes(self.received)}{of}, {_blocks(self.blocks)} verified")

    def finish(self) -> None:
        if self._line is not None:
            self._show(final=True)
            self._line.end(clear=True)


class ProgressDisplay:
    """queued -> pinning (with info.status_details) -> pinned: one updating line
    on a terminal, one line per change otherwise."""

    SPINNER = "|/-\\"

    def __init__(self, stream: TextIO, tty: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._line = StatusLine(stream, tty)
        self._clock = clock
        self._started = clock()
        self._last: tuple[str, str] | None = None
        self._ticks = 0

    @staticmethod
    def describe(status: dict[str, Any]) -> str:
        state = str(status.get("status", "?"))
        info = status.get("info") or {}
        details = info.get("failed_reason") if state == "failed" else info.get("status_details")
        return f"{state}: {details}" if details else state

    def update(self, status: dict[str, Any]) -> None:
        text = self.describe(status)
        key = (str(status.get("status")), text)
        if self._line.tty:
            final = status.get("status") in ("pinned", "failed")
            spinner = " " if final else self.SPINNER[self._ticks % len(self.SPINNER)]
            self._ticks += 1
            self._line.show(f"{spinner} [{self._clock() - self._started:5.1f}s] {text}")
            if final:
                self.finish()
        elif key != self._last:
            self._line.show(text)
        self._last = key

    def finish(self) -> None:
        self._line.end()


def wait_for(
    client: PinningClient,
    request_id: str,
    timeout: float | None,
    display: ProgressDisplay | None,
    first: dict[str, Any] | None = None,
    interval: float = POLL_SECONDS,
) -> dict[str, Any]:
    """Polls until pinned or failed; returns the last PinStatus, or raises WaitTimedOut."""
    deadline = None if timeout is None else time.monotonic() + timeout
    status = first
    try:
        while True:
            if status is None:
                try:
                    status = client.get(request_id)
                except ApiFailure as error:
                    if error.reason != "SERVICE_UNAVAILABLE":
                        raise
            if status is not None:
                if display is not None:
                    display.update(status)
                if status.get("status") in ("pinned", "failed"):
                    return status
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                last = ProgressDisplay.describe(status) if status else "unknown"
                raise WaitTimedOut(
                    f"timed out after {timeout:g} s waiting for {request_id} (last status: {last})", status
                )
            time.sleep(interval if deadline is None else min(interval, deadline - now))
            status = None
    finally:
        if display is not None:
            display.finish()


def _wait_and_report(client: PinningClient, status: dict[str, Any], timeout: float | None) -> None:
    """The shared end of `wait`, `pin --wait`, `add` and `replace --wait`."""
    options = _options()
    display = None
    if not options.json:
        display = ProgressDisplay(sys.stderr, tty=sys.stderr.isatty())
    try:
        final = wait_for(client, status["requestid"], timeout, display, first=status)
    except WaitTimedOut as error:
        if options.json and error.status is not None:
            click.echo(json.dumps(error.status, indent=2))
        raise
    if options.json:
        click.echo(json.dumps(final, indent=2))
    if final["status"] == "failed":
        reason = (final.get("info") or {}).get("failed_reason") or "no reason given"
        raise CliError(f"pin {final['requestid']} failed: {reason}")


# --- the tool -------------------------------------------------------------------------


def _meta(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str] | None:
    meta: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {value!r}", ctx=ctx, param=param)
        meta[key] = text
    return meta or None


def _statuses(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in STATUSES]
    if not names or unknown:
        raise click.BadParameter(
            f"expected a comma-separated list of {', '.join(STATUSES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
            ctx=ctx,
            param=param,
        )
    return ",".join(dict.fromkeys(names))


def _pin_body(cid: str, name: str | None, origins: Sequence[str], meta: dict[str, str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"cid": cid}
    if name is not None:
        body["name"] = name
    if origins:
        body["origins"] = list(dict.fromkeys(origins))
    if meta:
        body["meta"] = meta
    return body


_name_option = click.option("--name", help="A label for the pin (at most 255 characters), usable as a filter.")
_origin_option = click.option(
    "--origin",
    "origins",
    multiple=True,
    metavar="MULTIADDR",
    help="A peer that has the data, e.g. /ip4/198.51.100.7/tcp/4001/p2p/<peer ID>. Repeatable (20 at most).",
)
_meta_option = click.option(
    "--meta", multiple=True, metavar="KEY=VALUE", callback=_meta, help="Metadata stored with the pin. Repeatable."
)
_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Give up waiting after this long (exit status 2). Default: wait until pinned or failed.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", metavar="URL", help=f"The Pinning Service API, e.g. http://127.0.0.1:8000 [env {URL_VAR}].")
@click.option("--token", metavar="TOKEN", help=f"Your access token [env {TOKEN_VAR}].")
@click.option("--kubo-url", metavar="URL", help=f"Your Kubo node's RPC API, for `add` [env {KUBO_VAR}].")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read settings missing from the options from this KEY=VALUE file (it wins over the environment). "
    f"Without it: the environment, then {DEFAULT_ENV_FILE} (written by `make dev`).",
)
@click.option("--json", "json_output", is_flag=True, help="Print machine-readable JSON on stdout.")
@click.pass_context
def cli(
    ctx: click.Context,
    url: str | None,
    token: str | None,
    kubo_url: str | None,
    env_file: Path | None,
    json_output: bool,
) -> None:
    """Pin content with an IPFS Pinning Service: add, pin, list, wait, replace, remove, get.

    \b
    Quickstart, with the local stack running (`make dev`):
      python -m cli.pins add hello.txt      # add to your node, pin it, wait
      python -m cli.pins ls                 # your pinned pins
      python -m cli.pins get CID -o FILE    # fetch it back, verified
      python -m cli.pins --help             # this

    Errors go to stderr as one line (`Error: REASON: details` for the API's
    errors) with exit status 1; a wait that times out exits with 2.
    """
    options = ctx.ensure_object(Options)
    options.url = url
    options.token = token
    options.kubo_url = kubo_url
    options.env_file = env_file
    options.json = options.json or json_output


@command(cli, "pin")
@click.argument("cid")
@_name_option
@_origin_option
@_meta_option
@click.option("--wait", is_flag=True, help="Wait until pinned or failed, showing progress.")
@_timeout_option
def pin_command(
    cid: str,
    name: str | None,
    origins: Sequence[str],
    meta: dict[str, str] | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Ask the service to pin CID; print the request id.

    Each call makes a new request, even for a CID already pinned.
    """
    client = _client()
    _accepted(client, client.add(_pin_body(cid, name, origins, meta)), wait, timeout)


@command(cli, "add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--name", help="A label for the pin [default: the file's name].")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until pinned or failed.")
@_timeout_option
def add_command(file: Path, name: str | None, wait: bool, timeout: float | None) -> None:
    """Add FILE to your Kubo node and have the service pin it from there.

    Adds the file to your node (Kubo's `add`), reads the node's addresses
    (`id`) and asks the service to pin the CID with them as origins, so the
    service's nodes fetch it straight from yours. Prints the request id,
    then waits (unless --no-wait). Keep your node running until it is pinned.
    The bytes sent to your node, then the pin's progress, show on stderr.
    """
    options = _options()
    client = _client()
    node = YourNode(options.kubo())
    size = file.stat().st_size
    progress = None if options.json else SendProgress(StatusLine(sys.stderr, sys.stderr.isatty()), file.name, size)
    try:
        added = node.add_file(file, on_sent=progress.sent if progress else None)
    finally:
        if progress is not None:
            progress.finish()
    origins = node.peer_addresses()
    if not options.json:
        note(f"added {file.name} ({format_bytes(size)}) to your node ({node.url}): {added['Hash']}")
        if not origins:
            note("your node reports no addresses: the service's nodes will have to find it on their own")
    _accepted(
        client,
        client.add(_pin_body(added["Hash"], name if name is not None else file.name, origins, None)),
        wait,
        timeout,
    )


@command(cli, "ls")
@click.option(
    "--status",
    "status",
    callback=_statuses,
    metavar="S1,S2",
    help=f"Only these states (of {', '.join(STATUSES)}). Default: pinned, or all when --cid, --name or --meta is given.",
)
@click.option("--cid", "cids", multiple=True, metavar="CID", help="Only pins of this CID. Repeatable (10 at most).")
@click.option("--name", help="Only pins whose name matches (see --match).")
@click.option("--match", type=click.Choice(MATCHES), help="How --name matches [service default: exact].")
@click.option(
    "--meta", multiple=True, metavar="KEY=VALUE", callback=_meta, help="Only pins whose meta has KEY=VALUE. Repeatable."
)
@click.option("--before", metavar="TIME", help="Only pins created before this RFC 3339 time.")
@click.option("--after", metavar="TIME", help="Only pins created after this RFC 3339 time.")
@click.option("--limit", type=click.IntRange(1, 1000), help="At most this many pins (a page's size with --all).")
@click.option("--all", "all_pages", is_flag=True, help="Every matching pin, page after page.")
def ls_command(
    status: str | None,
    cids: Sequence[str],
    name: str | None,
    match: str | None,
    meta: dict[str, str] | None,
    before: str | None,
    after: str | None,
    limit: int | None,
    all_pages: bool,
) -> None:
    """List your pins, newest first: request id, status, created, CID, name."""
    query: dict[str, str] = {}
    if status:
        query["status"] = status
    if cids:
        query["cid"] = ",".join(dict.fromkeys(cids))
    if name is not None:
        query["name"] = name
    if match:
        query["match"] = match
    if meta:
        query["meta"] = json.dumps(meta, separators=(",", ":"))
    if before:
        query["before"] = before
    if after:
        query["after"] = after
    if limit:
        query["limit"] = str(limit)
    client = _client()
    if all_pages:
        results: list[dict[str, Any]] = []
        count = 0
        for index, page in enumerate(client.list_all(query)):
            if index == 0:
                count = int(page.get("count", 0))
            results.extend(page.get("results") or [])
    else:
        page = client.list(query)
        results = list(page.get("results") or [])
        count = int(page.get("count", len(results)))

    def human() -> None:
        if not results:
            note("no pins match")
            return
        print_table(
            ("REQUEST ID", "STATUS", "CREATED", "CID", "NAME"),
            [
                (
                    r.get("requestid", ""),
                    r.get("status", ""),
                    r.get("created", ""),
                    (r.get("pin") or {}).get("cid", ""),
                    (r.get("pin") or {}).get("name") or "-",
                )
                for r in results
            ],
        )
        if count > len(results):
            note(f"{len(results)} of {count} shown; --all lists every one")

    emit({"count": count, "results": results}, human)


@command(cli, "status")
@click.argument("request_id")
def status_command(request_id: str) -> None:
    """Show one pin request: status, created, CID, name, delegates, info."""
    status = _client().get(request_id)
    emit(status, lambda: _print_status(status))


@command(cli, "receipts")
@click.argument("request_id")
def receipts_command(request_id: str) -> None:
    """Show a request's Filecoin copies: wanted, proving, and each copy's receipt.

    One line a copy of the CID ever begun, oldest first: provider, state, data
    set and piece ids, last proven epoch, the latest transaction, and why it
    is in its state. --json prints the API's answer (every transaction).
    """
    document = _client().receipts(request_id)
    emit(document, lambda: _print_receipts(document))


def _print_receipts(document: dict[str, Any]) -> None:
    click.echo(
        f"copies: {document.get('copies_proving', 0)}/{document.get('copies_wanted', 0)} proving"
        f" ({document.get('filecoin', '-')})"
    )
    receipts = document.get("receipts") or []
    if not receipts:
        note("no copy begun yet")
        return

    def cell(value: Any) -> str:
        return "-" if value is None or value == "" else str(value)

    print_table(
        ("PROVIDER", "STATE", "DATA SET", "PIECE", "PROVEN AT", "TRANSACTION", "UPDATED", "DETAIL"),
        [
            (
                f"{receipt.get('provider_id')} ({receipt['provider']})"
                if receipt.get("provider")
                else cell(receipt.get("provider_id")),
                cell(receipt.get("state")),
                cell(receipt.get("data_set_id")),
                cell(receipt.get("piece_id")),
                cell(receipt.get("last_proven_epoch")),
                cell((receipt.get("transactions") or [None])[-1]),
                cell(receipt.get("updated")),
                cell(receipt.get("detail")),
            )
            for receipt in receipts
        ],
    )


@command(cli, "wait")
@click.argument("request_id")
@_timeout_option
def wait_command(request_id: str, timeout: float | None) -> None:
    """Wait until REQUEST_ID is pinned (exit 0) or failed (exit 1); 2 on --timeout.

    Polls every 0.5 s and shows queued -> pinning (with the blocks and bytes
    fetched so far) -> pinned on stderr: on one updating line in a terminal,
    one line per change otherwise.
    """
    client = _client()
    _wait_and_report(client, client.get(request_id), timeout)


@command(cli, "replace")
@click.argument("request_id")
@click.argument("cid")
@_name_option
@_origin_option
@_meta_option
@click.option("--wait", is_flag=True, help="Wait until the new request is pinned or failed.")
@_timeout_option
def replace_command(
    request_id: str,
    cid: str,
    name: str | None,
    origins: Sequence[str],
    meta: dict[str, str] | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Replace REQUEST_ID by a pin of CID in one step; print the new request id.

    The old request id is gone afterwards. Name, origins and meta are not
    carried over: give them again if you want them.
    """
    client = _client()
    _accepted(client, client.replace(request_id, _pin_body(cid, name, origins, meta)), wait, timeout)


@command(cli, "rm")
@click.argument("request_id")
def rm_command(request_id: str) -> None:
    """Remove the pin request REQUEST_ID."""
    _client().delete(request_id)
    emit({"requestid": request_id, "removed": True}, lambda: click.echo(f"removed {request_id}"))


@command(cli, "get")
@click.argument("cid")
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Where to write: a file, a directory for a directory's CID, or - for stdout (a file's bytes only). "
    "[default: ./CID, or ./CID.car with --car]",
)
@click.option(
    "--car", "as_car", is_flag=True, help="Write the verified CAR itself (any DAG, dag-cbor too), not its content."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary on stderr.")
def get_command(cid: str, output: str | None, as_car: bool, quiet: bool) -> None:
    """Fetch CID from the service and write its file or directory (UnixFS).

    The service sends a CAR (or redirects to its archive's copy); every block
    is verified against its CID as it arrives, the root must be CID, and
    every block the content needs must come. Nothing is written at PATH
    until all of it checked out: it is written beside PATH, then renamed
    (an existing file is replaced, an existing directory never). Entries
    named `..`, with a `/`, or twice in one directory are refused; symlinks
    are written as symlinks, never followed. Without -o the content goes to
    a file (or directory) named CID, as `ipfs get` does: a file can be
    replaced whole once verified, where stdout (-o -) cannot take back bytes,
    so stdout gets the file only after it verified.

    \b
    Exit status: 0 written; 1 an error (404: you have no pin of CID; 406:
    the service cannot send it as a CAR); 3 what arrived failed verification
    (nothing written); 4 the service asks to retry later (its Retry-After is
    shown, e.g. while a Deep Archive copy thaws).
    """
    from cli.disk_output import DiskOutput

    root = _root_cid(cid, as_car)
    options = _options()
    to_stdout = output == "-"
    if to_stdout and options.json:
        raise click.UsageError("--json and -o - would both write to stdout")
    target = None if to_stdout else _target(Path(output or (f"{cid}.car" if as_car else cid)))
    client = _client()
    with client.car(cid) as response, tempfile.TemporaryDirectory(prefix="pins-get-") as scratch:
        length = response.headers.get("Content-Length")
        line = None if quiet else StatusLine(sys.stderr, sys.stderr.isatty())
        progress = GetProgress(line, cid, int(length) if length and length.isdigit() else None)
        with DiskOutput(Path(scratch) / "content" if target is None else target) as written:
            try:
                summary = _retrieve(response, root, written, as_car, progress)
            finally:
                progress.finish()
            summary["path"] = "-" if target is None else str(target)
            _deliver(written, summary)
    if not quiet and not options.json:
        note(f"wrote {summary['path']}: {_described(summary)}")
    emit({"cid": cid, **summary}, lambda: None)


def _target(target: Path) -> Path:
    """A path `get` can write, checked before anything is fetched."""
    if target.is_dir():
        raise CliError(f"{target} is an existing directory: give -o a path that does not exist yet")
    if not target.absolute().parent.is_dir():
        raise CliError(f"{target.parent} is not a directory: the content is written there")
    return target


def _root_cid(cid: str, as_car: bool) -> Cid:
    """The CID asked for; refused before any request when it cannot be UnixFS (without --car)."""
    from chalicelib.cold.cids import CidError, cid_from_text
    from chalicelib.cold.unixfs import NotUnixfs, check_unixfs_root

    try:
        root = cid_from_text(cid)
        if not as_car:
            check_unixfs_root(root)
    except CidError as error:
        raise click.BadParameter(str(error), param_hint="CID") from None
    except NotUnixfs as error:
        raise CliError(f"{error}: `get --car` writes its verified CAR instead") from None
    return root


def _retrieve(
    response: requests.Response, root: Cid, written: DiskOutput, as_car: bool, progress: GetProgress
) -> dict[str, Any]:
    """Writes what the response carries into `written` (not committed); what was written."""
    from chalicelib.cold.unixfs import NotUnixfs, save_car, unpack

    def chunks() -> Iterator[bytes]:
        try:
            for chunk in response.iter_content(DOWNLOAD_CHUNK):
                progress.chunk(len(chunk))
                yield chunk
        except requests.RequestException as error:
            raise CliError(f"the download of {root} was cut: {_one_line(str(error))}; nothing was written") from None

    try:
        if as_car:
            blocks = save_car(chunks(), root, written, progress.block)
            return {"kind": "car", "bytes": progress.received, "blocks": blocks}
        unpacked = unpack(chunks(), root, written, progress.block)
    except NotUnixfs as error:
        raise CliError(f"{error}: `get --car` writes its verified CAR instead") from None
    except ValueError as error:  # every check: a block, the root, a block missing, UnixFS malformed or unsafe
        raise IntegrityFailure(f"{root}: {error}; nothing was written") from None
    except OSError as error:
        raise CliError(f"cannot write {written.target}: {error.strerror or error}") from None
    kind = unpacked.kind.name.lower() if unpacked.kind is not None else "file"
    return {
        "kind": "file" if kind == "raw" else kind,
        "bytes": unpacked.bytes_written,
        "blocks": progress.blocks,
        "files": unpacked.files,
        "directories": unpacked.directories,
    }


def _deliver(written: DiskOutput, summary: dict[str, Any]) -> None:
    """Moves the verified content to its place, or copies a file to stdout."""
    try:
        if summary["path"] != "-":
            written.commit()
            return
        if summary["kind"] not in ("file", "car"):
            raise CliError(f"a {summary['kind']} cannot go to stdout: give -o PATH")
        with written.open_result() as result:
            shutil.copyfileobj(result, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except OSError as error:
        raise CliError(f"cannot write {summary['path']}: {error.strerror or error}") from None


def _blocks(count: int) -> str:
    return f"{count} block" + ("" if count == 1 else "s")


def _described(summary: dict[str, Any]) -> str:
    kind = summary["kind"]
    blocks = f", {_blocks(summary['blocks'])} verified"
    if kind == "directory":
        return f"a directory of {summary['files']} files, {format_bytes(summary['bytes'])}{blocks}"
    if kind == "car":
        return f"a CAR of {format_bytes(summary['bytes'])}{blocks}"
    return f"a {kind} of {format_bytes(summary['bytes'])}{blocks}"


def main() -> None:
    cli(prog_name="python -m cli.pins")


if __name__ == "__main__":
    main()
