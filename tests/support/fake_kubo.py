"""A fake Kubo node for tests: an HTTP server on 127.0.0.1 that speaks the
Kubo RPC wire format (POST only, repeated `arg=`, `{"Message","Code","Type"}`
errors, pin/add progress as NDJSON in chunked transfer encoding) and keeps a
pin set, the content it can fetch, and a record of every call.

Faults are switched on per CID or per path (see "faults" below). Content is
measured in blocks of BLOCK_BYTES; pin/add reports one more block every
`seconds_per_block` and repeats its last count every `tick` while waiting,
as Kubo does every 500 ms, with the bytes fetched (`Bytes`) from Kubo 0.40 on
(`version`). Blocks fetched stay fetched, so a later pin/add of the same CID
resumes where an interrupted one stopped.

Whole DAGs as CARs: `add_car(cid, car)` gives the node (or its providers)
a DAG's CARv1; `dag/export` streams the CAR of a CID the node holds and
`dag/import` (multipart, read with the service's own CAR reader, so every
block is verified) stores the CAR under each root it holds and pins those,
both in Kubo's wire format; `block/get` answers any block of a DAG the node
holds. `sample_car` builds a small UnixFS-like DAG. A request whose
chunked body ends without its last chunk (the client hung up mid-upload)
is recorded and not served, as Kubo fails it: a cut `dag/import` pins
nothing. `lose(cid)` takes a DAG off the node and out of reach.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chalicelib.cold.car import CarError, CarReader, write_car
from chalicelib.cold.cids import Cid, cid_from_bytes
from chalicelib.cold.varints import encode_varint

BLOCK_BYTES = 262_144
# The Kubo release the fake answers as, by default: the first whose pin/add reports bytes.
VERSION = "0.40.0"
_BYTES_SINCE = (0, 40)
DEFAULT_PEER_ID = "12D3KooWFakeKuboNodeForTestsXXXXXXXXXXXXXXXXXXXXXXXX"
NOT_PINNED = "not pinned or pinned indirectly"
_API = "/api/v0/"


@dataclass(frozen=True)
class Call:
    """One request as the node saw it."""

    method: str
    path: str  # without /api/v0/, e.g. "pin/add"
    args: tuple[str, ...]
    flags: dict[str, str]
    query: str  # exactly as sent
    headers: dict[str, str]  # names lower-cased
    client_port: int
    body: bytes = field(default=b"", repr=False)


@dataclass
class _Failure:
    path: str
    cid: str | None
    message: str
    code: int
    status: int
    remaining: int


@dataclass
class _Fetch:
    """One pin/add's fetch of `cid`: what it can get, how fast, the faults set on it, how far it got."""

    cid: str
    total: int | None
    already: int  # blocks already on the node: they come at once
    per_block: float
    drop_after: int | None
    stream_failure: _StreamFailure | None
    forget: bool
    blocks: int = 0
    last_block: float = 0.0

    def due(self) -> float:
        """When the next block comes."""
        return self.last_block + (0.0 if self.blocks < self.already else self.per_block)


@dataclass(frozen=True)
class _ExportFault:
    after_bytes: int
    error: str | None  # ends the stream with this in the trailer; None: stops sending


@dataclass(frozen=True)
class _StreamFailure:
    message: str
    after_lines: int
    as_line: bool


class _Closed(Exception):
    """The fake is going down: end the stream without blaming the client."""


class FakeKubo:
    def __init__(
        self,
        *,
        auth: str | None = None,
        peer_id: str = DEFAULT_PEER_ID,
        addresses: list[str] | None = None,
        storage_max: int = 10 * 1024**3,
        tick: float = 0.05,
        seconds_per_block: float = 0.002,
        stream_limit: float = 10.0,
        version: str = VERSION,
    ) -> None:
        # The Authorization value every request must carry; None: no auth.
        self.auth = auth
        self.peer_id = peer_id
        self.addresses = addresses if addresses is not None else [f"/ip4/127.0.0.1/tcp/4001/p2p/{peer_id}"]
        self.storage_max = storage_max
        self.tick = tick
        self.seconds_per_block = seconds_per_block
        # A pin/add stream hangs up after this long, so a client that never
        # gives up fails its test instead of hanging it.
        self.stream_limit = stream_limit
        self.version = version
        # Kubo before 0.22 answered dag/stat with a top-level Size.
        self.legacy_dag_stat = False

        self.pinned: set[str] = set()
        self.calls: list[Call] = []
        self.cancelled: set[str] = set()

        self._lock = threading.Condition()
        self._blocks: dict[str, int] = {}
        self._fetched: dict[str, int] = {}
        self._failures: list[_Failure] = []
        self._stall_after: dict[str, int] = {}
        self._drop_after: dict[str, int] = {}
        self._slow: dict[str, float] = {}
        self._stream_failures: dict[str, _StreamFailure] = {}
        self._forgotten: set[str] = set()
        self._refused_dials: dict[str, str] = {}
        self._key_spellings: dict[str, str] = {}
        self._delays: dict[str, float] = {}
        self._cars: dict[str, bytes] = {}
        self._export_faults: dict[str, _ExportFault] = {}
        # dag/export sends the CAR in HTTP chunks of this many bytes.
        self.export_chunk_bytes = 4096

        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FakeKubo:
        self.up()
        return self

    def stop(self) -> None:
        self.down()

    def __enter__(self) -> FakeKubo:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def up(self) -> None:
        """Listen (again) on the same port."""
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening and cut every open connection: the node is gone."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.closing.set()
        server.shutdown()
        server.server_close()
        server.cut_connections()
        thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- content -------------------------------------------------------------

    def add_content(self, cid: str, blocks: int = 3) -> None:
        """Make `cid` fetchable, as if some provider had it."""
        with self._lock:
            self._blocks[cid] = blocks

    def add_car(self, cid: str, car: bytes, *, held: bool = False) -> None:
        """Make the DAG whose CAR is `car` fetchable (a pin/add fetches its
        blocks), or already on the node (`held`): either way, once on the
        node, dag/export streams it."""
        blocks = len(list(CarReader(verify=False).blocks([car])))  # a test may serve a corrupt CAR
        with self._lock:
            self._cars[cid] = car
            self._blocks[cid] = blocks
            if held:
                self._fetched[cid] = blocks

    def lose(self, cid: str) -> None:
        """The node loses `cid` (unpinned and its blocks collected, or a wiped
        repo), and no provider has it to fetch any more: a pin/add stalls."""
        with self._lock:
            self.pinned.discard(cid)
            for held in (self._fetched, self._blocks, self._cars):
                held.pop(cid, None)

    def car_of(self, cid: str) -> bytes | None:
        with self._lock:
            return self._cars.get(cid)

    @property
    def repo_size(self) -> int:
        with self._lock:
            return sum(self._fetched.values()) * BLOCK_BYTES

    # -- faults --------------------------------------------------------------

    def fail(
        self,
        path: str,
        message: str,
        *,
        times: int = 1,
        cid: str | None = None,
        code: int = 0,
        status: int | None = None,
    ) -> None:
        """Answer the next `times` calls of `path` (with `cid` among the args,
        if given) with Kubo's error object: 400 when `code` is 1, else 500."""
        with self._lock:
            self._failures.append(_Failure(path, cid, message, code, status or (400 if code == 1 else 500), times))

    def stall_after(self, cid: str, blocks: int) -> None:
        """pin/add of `cid` stops fetching after `blocks` blocks, repeating that count
        until this is called again with more (a pin/add under way goes on then)."""
        with self._lock:
            self._stall_after[cid] = blocks

    def slow(self, cid: str, seconds_per_block: float) -> None:
        with self._lock:
            self._slow[cid] = seconds_per_block

    def drop_after(self, cid: str, lines: int) -> None:
        """pin/add of `cid` drops the connection after `lines` progress lines."""
        with self._lock:
            self._drop_after[cid] = lines

    def fail_stream(self, cid: str, message: str, *, after_lines: int = 1, as_line: bool = False) -> None:
        """pin/add of `cid` fails after `after_lines` lines: the error goes in the
        X-Stream-Error trailer as Kubo sends it, or as an error object line."""
        with self._lock:
            self._stream_failures[cid] = _StreamFailure(message, after_lines, as_line)

    def cut_export(self, cid: str, after_bytes: int, error: str = "context deadline exceeded") -> None:
        """dag/export of `cid` ends after `after_bytes` bytes of its CAR, the
        chunked answer closed properly with `error` in the X-Stream-Error
        trailer, as Kubo ends an export that fails once streaming."""
        with self._lock:
            self._export_faults[cid] = _ExportFault(after_bytes, error)

    def stall_export(self, cid: str, after_bytes: int) -> None:
        """dag/export of `cid` sends `after_bytes` bytes, then nothing more."""
        with self._lock:
            self._export_faults[cid] = _ExportFault(after_bytes, None)

    def forget_pin(self, cid: str) -> None:
        """pin/add of `cid` reports Pins but does not record the pin (the
        error is only in the trailer)."""
        with self._lock:
            self._forgotten.add(cid)

    def delay(self, path: str, seconds: float) -> None:
        """Hold every call of `path` for `seconds` before answering at all, as
        Kubo holds a pin/add while it waits for its GC lock."""
        with self._lock:
            self._delays[path] = seconds

    def refuse_dial(self, multiaddr: str, message: str = "failed to dial: all dials failed") -> None:
        with self._lock:
            self._refused_dials[multiaddr] = message

    def spell_key(self, cid: str, key: str) -> None:
        """pin/ls answers about `cid` with `key`, as Kubo may use another CID version or base."""
        with self._lock:
            self._key_spellings[cid] = key

    # -- observations --------------------------------------------------------

    def calls_to(self, path: str, cid: str | None = None) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.path == path and (cid is None or cid in call.args)]

    def wait_cancelled(self, cid: str, timeout: float = 2.0) -> bool:
        """Whether a client hung up on pin/add of `cid` (within `timeout`)."""
        with self._lock:
            return self._lock.wait_for(lambda: cid in self.cancelled, timeout)

    # -- serving -------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        call = self._record(handler)
        if handler.body_cut:
            # The client hung up mid-body: Kubo's request fails, nothing of it is kept or pinned.
            handler.close_connection = True
            return
        endpoint = self._admit(handler, call)
        if endpoint is None:
            return
        with self._lock:
            delay = self._delays.get(call.path, 0.0)
        if handler.server.closing.wait(delay):
            return
        failure = self._take_failure(call.path, call.args)
        if failure is not None:
            return handler.reply_error(failure.message, failure.code, failure.status)
        if endpoint.needs_args and len(call.args) < endpoint.needs_args:
            return handler.reply_error(f'argument "{endpoint.arg_name}" is required', 1)
        endpoint.serve(self, handler, call.args, call.flags)

    def _record(self, handler: _Handler) -> Call:
        parsed = urlsplit(handler.path)
        pairs = parse_qsl(parsed.query, keep_blank_values=True)
        call = Call(
            handler.command,
            parsed.path.removeprefix(_API),
            tuple(value for name, value in pairs if name == "arg"),
            {name: value for name, value in pairs if name != "arg"},
            parsed.query,
            {name.lower(): value for name, value in handler.headers.items()},
            handler.client_address[1],
            handler.body,
        )
        with self._lock:
            self.calls.append(call)
        return call

    def _admit(self, handler: _Handler, call: Call) -> _Endpoint | None:
        """The endpoint that serves `call`; None once refused as Kubo refuses it."""
        if call.method != "POST":
            handler.reply_text(405, "405 - Method Not Allowed")
            return None
        browser = handler.headers.get("User-Agent", "").startswith("Mozilla") and "Origin" not in handler.headers
        if browser or (self.auth is not None and handler.headers.get("Authorization") != self.auth):
            handler.reply_text(403, "403 - Forbidden")
            return None
        endpoint = _ENDPOINTS.get(call.path) if urlsplit(handler.path).path.startswith(_API) else None
        if endpoint is None:
            handler.reply_text(404, "404 page not found")
        return endpoint

    def _take_failure(self, path: str, args: tuple[str, ...]) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.remaining and failure.path == path and (failure.cid is None or failure.cid in args):
                    failure.remaining -= 1
                    return failure
        return None

    def _is_local(self, cid: str) -> bool:
        return cid in self._blocks and self._fetched.get(cid, 0) >= self._blocks[cid]

    def _pin_add(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        cid = args[0]
        with self._lock:
            fetch = _Fetch(
                cid,
                total=self._blocks.get(cid),  # None: no provider has it
                already=self._fetched.get(cid, 0),
                per_block=self._slow.get(cid, self.seconds_per_block),
                drop_after=self._drop_after.get(cid),
                stream_failure=self._stream_failures.get(cid),
                forget=cid in self._forgotten,
            )
        show_progress = flags.get("progress") == "true"
        stream = _Stream(handler)
        try:
            if self._fetch_all(handler, stream, fetch, show_progress):
                self._report_pinned(stream, fetch, show_progress)
        except _Closed:
            handler.close_connection = True
        except OSError:
            handler.close_connection = True
            if not handler.server.closing.is_set():
                with self._lock:
                    self.cancelled.add(cid)
                    self._lock.notify_all()

    def _fetch_all(self, handler: _Handler, stream: _Stream, fetch: _Fetch, show_progress: bool) -> bool:
        """Fetch block after block, reporting progress; False when a fault ended the stream first."""
        started = fetch.last_block = time.monotonic()
        while True:
            reachable = self._fetch_next(fetch)
            if fetch.blocks == fetch.total:
                return True
            if show_progress:
                stream.line(self._progress(fetch.blocks))
            if time.monotonic() - started > self.stream_limit or (
                fetch.drop_after is not None and stream.lines >= fetch.drop_after
            ):
                stream.drop()
                return False
            if fetch.stream_failure is not None and stream.lines >= fetch.stream_failure.after_lines:
                self._end_with(stream, fetch.stream_failure)
                return False
            wait = self.tick if fetch.blocks >= reachable else max(0.0, min(self.tick, fetch.due() - time.monotonic()))
            if handler.server.closing.wait(wait):
                raise _Closed()

    def _fetch_next(self, fetch: _Fetch) -> int:
        """Fetch the next block if it is due; how many blocks can be fetched now."""
        now = time.monotonic()
        with self._lock:  # read each time: a test may let stalled content flow again
            reachable = 0 if fetch.total is None else min(fetch.total, self._stall_after.get(fetch.cid, fetch.total))
            if fetch.blocks < reachable and now >= fetch.due():
                fetch.blocks, fetch.last_block = fetch.blocks + 1, now
                self._fetched[fetch.cid] = max(fetch.blocks, self._fetched.get(fetch.cid, 0))
        return reachable

    def _report_pinned(self, stream: _Stream, fetch: _Fetch, show_progress: bool) -> None:
        if show_progress:
            stream.line(self._progress(fetch.blocks))
        stream.line({"Pins": [fetch.cid]})
        if fetch.forget:
            return stream.end(error="pin: failed to write pin to the datastore")
        with self._lock:
            self.pinned.add(fetch.cid)
        stream.end()

    def _progress(self, blocks: int) -> dict[str, int]:
        # Kubo omits zero fields, so a pin that has fetched nothing reports {}.
        if not blocks:
            return {}
        with_bytes = tuple(int(part) for part in self.version.split(".")[:2]) >= _BYTES_SINCE
        return {"Progress": blocks, "Bytes": blocks * BLOCK_BYTES} if with_bytes else {"Progress": blocks}

    def _end_with(self, stream: _Stream, failure: _StreamFailure) -> None:
        if failure.as_line:
            stream.line({"Message": failure.message, "Code": 0, "Type": "error"})
            return stream.end()
        return stream.end(error=failure.message)

    def _pin_ls(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        with self._lock:
            # Every pin here is recursive; indirect and direct ones are not modelled.
            wanted = flags.get("type", "all") in ("recursive", "all")
            if not args:
                keys = sorted(self.pinned) if wanted else []
                if flags.get("stream") == "true":  # one line a pin, as Kubo streams them
                    body = b"".join(json.dumps({"Cid": cid, "Type": "recursive"}).encode() + b"\n" for cid in keys)
                    return handler._reply(200, "application/json", body)
                return handler.reply_json({"Keys": {cid: {"Type": "recursive"} for cid in keys}})
            for cid in args:
                if not (wanted and cid in self.pinned):
                    return handler.reply_error(f"path '{cid}' is not pinned", 0)
            keys = [self._key_spellings.get(cid, cid) for cid in args]
        handler.reply_json({"Keys": {key: {"Type": "recursive"} for key in keys}})

    def _pin_rm(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        with self._lock:
            if any(cid not in self.pinned for cid in args):
                return handler.reply_error(NOT_PINNED, 0)
            self.pinned.difference_update(args)
        handler.reply_json({"Pins": list(args)})

    def _pin_update(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        old, new = args[0], args[1]
        with self._lock:
            if old not in self.pinned:
                return handler.reply_error("'from' cid was not recursively pinned already", 0)
            if new not in self._blocks:
                # Kubo would keep looking for providers; the fake answers at once.
                return handler.reply_error(f"no provider found for {new}", 0)
            self._fetched[new] = self._blocks[new]
            self.pinned.add(new)
            if flags.get("unpin", "true") != "false":
                self.pinned.discard(old)
        handler.reply_json({"Pins": [old, new]})

    def _swarm_connect(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        address = args[0]
        if "/p2p/" not in address:
            return handler.reply_error(f"invalid peer address: no /p2p/ part in {address}", 1)
        peer = address.rsplit("/p2p/", 1)[1]
        with self._lock:
            refusal = self._refused_dials.get(address)
        if refusal is not None:
            return handler.reply_error(f"connect {peer} failure: {refusal}", 0)
        handler.reply_json({"Strings": [f"connect {peer} success"]})

    def _id(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        handler.reply_json(
            {
                "ID": self.peer_id,
                "PublicKey": "CAESIFakePublicKeyForTests",
                "Addresses": self.addresses or None,
                "AgentVersion": f"kubo/{self.version}/",
                "ProtocolVersion": "ipfs/0.1.0",
                "Protocols": ["/ipfs/bitswap/1.2.0", "/ipfs/id/1.0.0"],
            }
        )

    def _repo_stat(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        stat: dict[str, Any] = {"RepoSize": self.repo_size, "StorageMax": self.storage_max}
        if flags.get("size-only") != "true":
            stat.update(NumObjects=sum(self._fetched.values()), RepoPath="/data/ipfs", Version="fs-repo@14")
        handler.reply_json(stat)

    def _dag_stat(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        cid = args[0]
        with self._lock:
            found = self._is_local(cid) if flags.get("offline") == "true" else cid in self._blocks
            blocks = self._blocks.get(cid, 0)
        if not found:
            return handler.reply_error(f"block was not found locally (offline): ipld: could not find {cid}", 0)
        size = blocks * BLOCK_BYTES
        if self.legacy_dag_stat:
            return handler.reply_json({"Size": size, "NumBlocks": blocks})
        handler.reply_json(
            {
                "UniqueBlocks": blocks,
                "TotalSize": size,
                "SharedSize": 0,
                "Ratio": 1,
                "DagStats": [{"Cid": {"/": cid}, "Size": size, "NumBlocks": blocks}],
            }
        )

    def _dag_export(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        cid = args[0]
        with self._lock:
            car = self._cars.get(cid) if self._is_local(cid) else None
            fault = self._export_faults.get(cid)
        if car is None:
            # Kubo checks the root block before it answers.
            return handler.reply_error(f"block was not found locally (offline): ipld: could not find {cid}", 0)
        stream = _Stream(handler, "application/vnd.ipld.car", [("X-Stream-Output", "1")])
        sent_until = len(car) if fault is None else min(fault.after_bytes, len(car))
        try:
            for at in range(0, sent_until, self.export_chunk_bytes):
                stream.chunk(car[at : min(at + self.export_chunk_bytes, sent_until)])
            if fault is not None and fault.error is None:
                handler.server.closing.wait(self.stream_limit)
                return stream.drop()
            stream.end(error=fault.error if fault is not None else None)
        except OSError:
            handler.close_connection = True

    def _block_get(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        cid = args[0]
        with self._lock:
            data = self._held_block(_key(cid))
        if data is None:
            return handler.reply_error(f"block was not found locally (offline): ipld: could not find {cid}", 0)
        stream = _Stream(handler, "text/plain", [("X-Stream-Output", "1")])
        try:
            stream.chunk(data)
            stream.end()
        except OSError:
            handler.close_connection = True

    def _held_block(self, key: bytes) -> bytes | None:
        """A block of any DAG the node holds, as its CAR has it (a test may make it corrupt)."""
        for cid, car in self._cars.items():
            if self._is_local(cid):
                for block in CarReader(verify=False).blocks([car]):
                    if block.cid.key == key:
                        return block.data
        return None

    def _dag_import(self, handler: _Handler, args: tuple[str, ...], flags: dict[str, str]) -> None:
        try:
            cars = _multipart_files(handler.headers.get("Content-Type", ""), handler.body)
            imported = [(car, _read_car(car)) for car in cars]
        except (CarError, ValueError) as error:
            return handler.reply_error(f"import failed: {error}", 0)
        if not cars:
            return handler.reply_error("file argument 'path' is required", 1)
        pin_roots = flags.get("pin-roots", "true") == "true"
        lines: list[dict[str, Any]] = [
            {"Root": {"Cid": {"/": root}, "PinErrorMsg": self._store_imported(root, car, blocks, pin_roots)}}
            for car, (roots, blocks) in imported
            for root in roots
        ]
        if not pin_roots:
            lines = []
        if flags.get("stats") == "true":
            count = sum(len(blocks) for _, (_, blocks) in imported)
            size = sum(sum(blocks.values()) for _, (_, blocks) in imported)
            lines.append({"Stats": {"BlockCount": count, "BlockBytesCount": size}})
        stream = _Stream(handler)
        for line in lines:
            stream.line(line)
        stream.end()

    def _store_imported(self, root: str, car: bytes, blocks: dict[bytes, int], pin: bool) -> str:
        """Keep what a CAR holds of `root` and pin it: Kubo's PinErrorMsg, empty when pinned."""
        if _key(root) not in blocks:  # the fake takes a CAR holding its root for the whole DAG
            return f"block was not found locally (offline): ipld: could not find {root}"
        with self._lock:
            self._cars[root] = car
            self._blocks[root] = self._fetched[root] = len(blocks)
            if pin:
                self.pinned.add(root)
        return ""


def _key(text: str) -> bytes:
    from chalicelib.cold.cids import cid_from_text

    return cid_from_text(text).key


def _read_car(car: bytes) -> tuple[list[str], dict[bytes, int]]:
    """A CAR's roots and its blocks' sizes by key; every block verified."""
    reader = CarReader()
    blocks = {block.cid.key: block.length for block in reader.blocks([car])}
    assert reader.header is not None  # a CAR that ended cleanly has one
    return [str(root) for root in reader.header.roots], blocks


def _multipart_files(content_type: str, body: bytes) -> list[bytes]:
    """The contents of the file parts of a multipart/form-data body."""
    marker = "boundary="
    if not content_type.startswith("multipart/") or marker not in content_type:
        return []
    boundary = content_type.split(marker, 1)[1].split(";")[0].strip('"').encode()
    files = []
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        if b"filename=" in head:
            files.append(content.removesuffix(b"\r\n"))
    return files


def _pb_node(links: list[bytes], data: bytes) -> bytes:
    """A dag-pb node: a PBLink{Hash} per link, then Data."""
    out = b""
    for link in links:
        inner = b"\x0a" + encode_varint(len(link)) + link
        out += b"\x12" + encode_varint(len(inner)) + inner
    return out + b"\x0a" + encode_varint(len(data)) + data


def _cid(codec: int, data: bytes) -> Cid:
    return cid_from_bytes(b"\x01" + encode_varint(codec) + b"\x12\x20" + hashlib.sha256(data).digest())


def sample_car(leaves: int = 3, leaf_bytes: int = 1000, seed: str = "sample") -> tuple[str, bytes, list[Cid]]:
    """A small UnixFS-like DAG as a CARv1: a dag-pb root (CIDv1) linking to
    `leaves` raw leaves. The root's CID, the CAR, and every block's CID in
    the CAR's order (the root first, as Kubo writes it)."""
    data = [hashlib.sha256(f"{seed}-{n}".encode()).digest() * (leaf_bytes // 32 + 1) for n in range(leaves)]
    leaf_blocks = [(_cid(0x55, block[:leaf_bytes]), block[:leaf_bytes]) for block in data]
    root_block = _pb_node([cid.binary for cid, _ in leaf_blocks], b"\x08\x02")
    root = _cid(0x70, root_block)
    blocks = [(root, root_block), *leaf_blocks]
    return str(root), b"".join(write_car([root], blocks)), [cid for cid, _ in blocks]


@dataclass(frozen=True)
class _Endpoint:
    serve: Any
    needs_args: int = 0
    arg_name: str = "ipfs-path"


_ENDPOINTS: dict[str, _Endpoint] = {
    "pin/add": _Endpoint(FakeKubo._pin_add, 1),
    "pin/ls": _Endpoint(FakeKubo._pin_ls),
    "pin/rm": _Endpoint(FakeKubo._pin_rm, 1),
    "pin/update": _Endpoint(FakeKubo._pin_update, 2, "from-path"),
    "swarm/connect": _Endpoint(FakeKubo._swarm_connect, 1, "address"),
    "id": _Endpoint(FakeKubo._id),
    "repo/stat": _Endpoint(FakeKubo._repo_stat),
    "dag/stat": _Endpoint(FakeKubo._dag_stat, 1, "root"),
    "dag/export": _Endpoint(FakeKubo._dag_export, 1, "root"),
    "block/get": _Endpoint(FakeKubo._block_get, 1, "cid"),
    "dag/import": _Endpoint(FakeKubo._dag_import),
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeKubo

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def cut_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses, as Kubo
    # Go's sockets send at once; with Nagle, every kept-alive call waits ~40 ms.
    disable_nagle_algorithm = True
    server: _Server
    body: bytes = b""
    body_cut = False

    def setup(self) -> None:
        super().setup()
        self.server.opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the client, or the fake itself, already cut the connection
        self.server.closed(self.connection)

    def version_string(self) -> str:
        return f"kubo/{self.server.fake.version}"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle_any(self) -> None:
        self.body = self._read_body()
        try:
            self.server.fake._serve(self)
        except OSError:
            self.close_connection = True  # the client hung up before the answer

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _handle_any

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size_line := self.rfile.readline():
                if not (size := int(size_line.split(b";")[0].strip() or b"0", 16)):
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            else:
                self.body_cut = True  # the connection ended before the body's last chunk
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply_json(self, body: Any, status: int = 200) -> None:
        self._reply(status, "application/json", json.dumps(body).encode() + b"\n")

    def reply_error(self, message: str, code: int, status: int | None = None) -> None:
        error = {"Message": message, "Code": code, "Type": "error"}
        self.reply_json(error, status or (400 if code == 1 else 500))

    def reply_text(self, status: int, text: str) -> None:
        self._reply(status, "text/plain; charset=utf-8", text.encode() + b"\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Stream:
    """A chunked answer (NDJSON: one chunk per line), sent as soon as written."""

    def __init__(
        self,
        handler: _Handler,
        content_type: str = "application/json",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self._handler = handler
        self.lines = 0
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        for name, value in headers if headers is not None else [("X-Chunked-Output", "1")]:
            handler.send_header(name, value)
        handler.send_header("Trailer", "X-Stream-Error")
        handler.end_headers()

    def line(self, value: dict[str, Any]) -> None:
        self.chunk(json.dumps(value).encode() + b"\n")
        self.lines += 1

    def chunk(self, data: bytes) -> None:
        self._handler.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def end(self, error: str | None = None) -> None:
        trailer = f"X-Stream-Error: {error}\r\n".encode() if error else b""
        self._handler.wfile.write(b"0\r\n" + trailer + b"\r\n")

    def drop(self) -> None:
        """Hang up mid-stream, without the chunk that ends the answer."""
        self._handler.close_connection = True
        self._handler.connection.shutdown(socket.SHUT_RDWR)
