"""A client of one Kubo node's RPC API (`/api/v0`), for the pin workers.

Every command is a POST with repeated `arg=` query parameters and flags as
further parameters. Kubo's errors become the typed exceptions of
`chalicelib.kubo.errors`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import requests
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.car import MAX_BLOCK_BYTES, CarError, CarReader, OversizedBlock
from chalicelib.cold.cids import BlockMismatch, Cid, cid_from_text, verify_block
from chalicelib.kubo.dag_links import DagCompleteness, MalformedBlock
from chalicelib.kubo.errors import (
    KuboAuthError,
    KuboError,
    KuboRequestError,
    KuboServerError,
    KuboUnavailable,
    PinCancelled,
    PinDeadline,
    PinInterrupted,
    PinStalled,
)

# Kubo answers 403 to a User-Agent starting with "Mozilla" that sends no Origin
# (its guard against browsers), so every request names this client instead.
USER_AGENT = "ipfs-pinning-service/kubo-client"

# Kubo's error Code for a bad request (cmds.ErrClient).
_CLIENT_ERROR_CODE = 1
_GATEWAY_STATUSES = (502, 503, 504)
_NOT_PINNED = ("not pinned or pinned indirectly", "is not pinned")

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class NodeIdentity:
    peer_id: str
    # Each ends in /p2p/<peer_id>; empty while the node is offline.
    addresses: tuple[str, ...]
    agent_version: str


@dataclass(frozen=True)
class RepoStat:
    repo_size: int
    storage_max: int

    @property
    def free_bytes(self) -> int:
        # StorageMax is a GC watermark, not a quota: a repo can grow past it.
        return max(0, self.storage_max - self.repo_size)


class KuboClient:
    def __init__(
        self,
        base_url: str,
        auth_header: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url
        self._api_url = base_url.rstrip("/") + "/api/v0/"
        # One session per client keeps connections to the node open between calls;
        # headers go with each request so a shared session carries no node's secret.
        self._session = session or requests.Session()
        self._headers = {"User-Agent": USER_AGENT}
        if auth_header is not None:
            self._headers["Authorization"] = auth_header
        self._timeout = timeout

    # -- pins ----------------------------------------------------------------

    def pin_add(
        self,
        cid: str,
        *,
        stall_seconds: float,
        deadline: float | None = None,
        on_progress: ProgressCallback | None = None,
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        """Pin `cid` recursively, cancelling (which makes Kubo abandon the pin)
        once the block count has not grown for `stall_seconds` (PinStalled),
        at `deadline`, a time.monotonic() value (PinDeadline), or once
        `wanted()`, asked at each of the stream's reports, says False
        (PinCancelled).

        `on_progress(blocks, bytes)` is called whenever either count changes.
        Both come from pin/add's own stream, so following them costs no
        request: Kubo sends `Progress` (blocks) every 500 ms and, since v0.40
        (ipfs/kubo#11074), `Bytes` with it. Older nodes send no bytes (0 here);
        no other RPC of theirs counts a pin's bytes without walking its DAG."""
        watch = _PinWatch(stall_seconds, deadline)
        seconds_left, limit = watch.time_left()
        if seconds_left <= 0:
            raise watch.interrupted(limit)
        try:
            response = self._post(
                "pin/add", [cid], {"recursive": True, "progress": True}, stream=True, read_timeout=seconds_left
            )
        except _ReadTimedOut as error:
            raise watch.interrupted(limit) from error
        with response:  # leaving early closes the connection, which cancels the pin in Kubo
            pins_reported = _follow_pin_add(response, watch, on_progress, wanted)
        if not pins_reported:
            raise KuboServerError("pin/add ended without reporting the pin", response.status_code)
        # Errors that happen once the stream has begun travel in a trailer requests
        # cannot read, so only the pin set itself proves the pin.
        if not self.is_pinned(cid):
            raise KuboServerError("pin not recorded")

    def is_pinned(self, cid: str) -> bool:
        """Whether the node holds a recursive pin of `cid` (an indirect pin does not count)."""
        try:
            reply = self._call("pin/ls", [cid], {"type": "recursive"})
        except KuboServerError as error:
            if "is not pinned" in error.message:
                return False
            raise
        # Kubo may spell the key in another CID version or base than asked.
        return bool(reply.get("Keys"))

    def recursive_pins(self) -> Generator[str, None, None]:
        """Every recursively pinned CID, as Kubo spells it, read as Kubo
        streams them (one line each, in its own order), so a node with
        millions of pins costs the caller one at a time. Closing the
        iterator early hangs up, which ends Kubo's listing."""
        response = self._post("pin/ls", [], {"type": "recursive", "stream": True}, stream=True)
        with response:
            lines = _lines(response)
            while True:
                try:
                    line = next(lines, None)
                except (ProtocolError, OSError) as error:
                    raise KuboUnavailable(f"pin/ls stream broke: {error}") from error
                if line is None:
                    return
                cid = _stream_output(line, "pin/ls").get("Cid")
                if not isinstance(cid, str):
                    raise KuboServerError(f"pin/ls sent a line without a CID: {line[:200]!r}")
                yield cid

    def pin_rm(self, cid: str) -> None:
        """Remove the recursive pin of `cid`; a CID that is not pinned is already done."""
        try:
            self._call("pin/rm", [cid])
        except KuboServerError as error:
            if not any(text in error.message for text in _NOT_PINNED):
                raise

    def pin_update(self, from_cid: str, to_cid: str, *, seconds: float) -> None:
        """Pin `to_cid` fetching only what `from_cid` lacks, keeping `from_cid` pinned.

        It reports no progress, so Kubo is told to give up after `seconds`
        (KuboServerError); the blocks fetched by then stay for a pin_add."""
        self._call(
            "pin/update",
            [from_cid, to_cid],
            {"unpin": False, "timeout": f"{max(seconds, 1):g}s"},
            read_timeout=seconds + self._timeout,
        )

    # -- peers and node state ------------------------------------------------

    def swarm_connect(self, multiaddr: str, *, dial_seconds: float = 5.0) -> bool:
        """Dial a peer; False when the dial fails, which never fails a pin.

        Kubo gives up the dial after `dial_seconds`, so a slow dial is an answer
        rather than a timeout that would make the node look unreachable."""
        try:
            self._call(
                "swarm/connect",
                [multiaddr],
                {"timeout": f"{dial_seconds:g}s"},
                read_timeout=dial_seconds + self._timeout,
            )
        except (KuboRequestError, KuboServerError):
            return False
        return True

    def id(self) -> NodeIdentity:
        reply = self._call("id")
        return NodeIdentity(
            peer_id=reply["ID"],
            addresses=tuple(reply.get("Addresses") or ()),
            agent_version=reply.get("AgentVersion") or "",
        )

    def repo_stat(self) -> RepoStat:
        reply = self._call("repo/stat", flags={"size-only": True})
        return RepoStat(repo_size=int(reply["RepoSize"]), storage_max=int(reply["StorageMax"]))

    def dag_size(self, cid: str) -> int:
        """Total bytes of the DAG under `cid`, from blocks already on the node."""
        reply = self._call("dag/stat", [cid], {"progress": False, "offline": True})
        # Kubo before 0.22 answered {"Size", "NumBlocks"}.
        size = reply.get("TotalSize", reply.get("Size"))
        if size is None:
            raise KuboServerError(f"dag/stat answered without a size: {reply}")
        return int(size)

    # -- single blocks -----------------------------------------------------------

    def block_get(self, cid: str, *, seconds: float, offline: bool = True) -> bytes:
        """The bytes of the block `cid`, verified against it, within `seconds`.

        Kubo's `block/get` (core/commands/block.go) reads the whole block
        before it answers, so a block it lacks is a plain error
        (KuboServerError); `offline` (the default) keeps it from looking on
        the network. The answer is read up to MAX_BLOCK_BYTES + 1 bytes: a
        longer one raises OversizedBlock, one that does not hash to `cid`
        BlockMismatch, a hash function that cannot be checked here
        UnsupportedHash (ValueErrors all). A CID that is not valid raises
        CidError before any request."""
        wanted = cid_from_text(cid)
        flags = {"offline": offline, "timeout": _go_duration(seconds)}
        response = self._post("block/get", [cid], flags, stream=True, read_timeout=seconds)
        with response:
            try:
                data = response.raw.read(MAX_BLOCK_BYTES + 1, decode_content=True)
            except (ProtocolError, ReadTimeoutError, OSError) as error:
                raise KuboUnavailable(f"block/get of {cid} broke: {error}") from error
        if len(data) > MAX_BLOCK_BYTES:
            raise OversizedBlock(f"block {cid} is over {MAX_BLOCK_BYTES} bytes")
        verify_block(wanted, data)
        return bytes(data)

    # -- whole DAGs as CARs ----------------------------------------------------

    def dag_export(self, cid: str, *, seconds: float, offline: bool = True, chunk_bytes: int = 1 << 20) -> DagExport:
        """The CARv1 of the DAG under `cid`, streamed, within `seconds` in all.

            with client.dag_export(cid, seconds=600) as export:
                for chunk in export:  # the CAR's bytes as they arrive
                    upload(chunk)
            export.index  # offset and length of every block, once the loop ended

        Kubo's `dag/export` (core/commands/dag/export.go) checks the root block
        before it answers, so a CID it lacks fails here (KuboServerError);
        it then streams blocks in DAG-traversal, first-seen order, each once.
        `offline` (the default) keeps the node from fetching what it lacks:
        an archive is exported from a node that pins the DAG. Any later
        error (a missing block, Kubo's own `timeout`) only ends the stream
        early with an `X-Stream-Error` trailer that requests cannot read, so
        `DagExport` checks the CAR as it passes (see there): the loop ends
        without an exception only for the whole DAG, every block verified.
        A CID that is not valid raises CidError (a ValueError) before any request."""
        root = cid_from_text(cid)
        deadline = time.monotonic() + seconds
        flags = {"offline": offline, "timeout": _go_duration(seconds)}
        response = self._post("dag/export", [cid], flags, stream=True, read_timeout=seconds)
        return DagExport(response, root, deadline, chunk_bytes)

    def dag_import(self, chunks: Iterable[bytes], *, seconds: float, pin_roots: bool = True) -> ImportedCar:
        """Give the node the CAR whose bytes `chunks` yields (`dag/import`),
        uploaded as they come, within `seconds` in all; with `pin_roots`,
        Kubo pins every root of the CAR's header.

        The body is multipart/form-data with one file part, sent with chunked
        transfer encoding, as Kubo's `FileArg` takes it. Kubo
        (core/commands/dag/import.go) checks every block against its CID,
        stores them, then pins each root offline and answers NDJSON: one
        `{"Root": {"Cid": {"/": cid}, "PinErrorMsg": ""}}` a root and, with
        `stats=true`, `{"Stats": {"BlockCount", "BlockBytesCount"}}` (as in
        its sharness test t0054-dag-car-import-export.sh). A malformed or
        corrupt CAR fails before any output (KuboServerError); a root that
        could not be pinned (its DAG not whole on the node) raises
        KuboServerError naming it. Running out of time raises KuboUnavailable:
        what was stored stays unpinned, a retry sends it again."""
        deadline = time.monotonic() + seconds
        boundary = secrets.token_hex(16)
        flags = {"pin-roots": pin_roots, "stats": True, "timeout": _go_duration(seconds)}
        try:
            response = self._post(
                "dag/import",
                [],
                flags,
                stream=True,
                read_timeout=seconds,
                body=_multipart_file(chunks, boundary, deadline),
                content_type=f"multipart/form-data; boundary={boundary}",
            )
        except _UploadTimedOut as error:
            raise KuboUnavailable(f"dag/import: the CAR was not sent within {seconds:g} s") from error
        with response:
            imported = _read_import(response)
        if pin_roots and not imported.roots:
            raise KuboServerError("dag/import pinned no root: the CAR's header names none")
        return imported

    # -- transport -----------------------------------------------------------

    def _call(
        self,
        path: str,
        args: Sequence[str] = (),
        flags: Mapping[str, Any] | None = None,
        *,
        read_timeout: float | None = None,
    ) -> dict[str, Any]:
        response = self._post(path, args, flags or {}, read_timeout=read_timeout)
        try:
            reply = response.json()
        except ValueError as error:
            raise KuboServerError(f"{path} answered with something other than JSON: {response.text[:200]!r}") from error
        if not isinstance(reply, dict):
            raise KuboServerError(f"{path} answered with unexpected JSON: {reply!r}")
        return reply

    def _post(
        self,
        path: str,
        args: Sequence[str],
        flags: Mapping[str, Any],
        *,
        stream: bool = False,
        read_timeout: float | None = None,
        body: Iterable[bytes] | None = None,
        content_type: str | None = None,
    ) -> requests.Response:
        params: list[tuple[str, str]] = [("arg", arg) for arg in args]
        params += [(name, _flag(value)) for name, value in flags.items()]
        headers = self._headers if content_type is None else {**self._headers, "Content-Type": content_type}
        try:
            response = self._session.post(
                self._api_url + path,
                params=params,
                headers=headers,
                data=body,  # an iterator goes out as it comes, in chunked transfer encoding
                stream=stream,
                timeout=(self._timeout, self._timeout if read_timeout is None else read_timeout),
            )
        except requests.ReadTimeout as error:
            raise _ReadTimedOut(f"{path}: {error}") from error
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
            raise KuboUnavailable(f"{path}: {error}") from error
        if response.status_code != 200:
            with response:
                raise _error_from(path, response)
        return response


@dataclass(frozen=True)
class ImportedCar:
    roots: tuple[str, ...]  # pinned, as Kubo spells them; empty without pin_roots
    blocks: int  # stored from the CAR (0 when the node sends no stats)
    bytes: int


class BadExport(KuboServerError):
    """A dag/export whose CAR is not the whole DAG under the root asked for:
    cut short (Kubo's error went in the trailer), a block that does not hash
    to its CID, a linked block missing, another root. Retryable, on another
    node if it persists."""


class DagExport:
    """A `dag/export` answer: iterate for the CAR's bytes, as they arrive.

    Every chunk is checked before it is handed over: `CarReader` verifies
    each block against its CID, `DagCompleteness` follows the links of each
    block. The iteration ends normally only when the stream ended on a
    section's end, the header's root is the one asked for, and every block
    linked to from the root down was in the CAR: the whole DAG. Otherwise
    it raises BadExport, for a cut stream after its last chunk (the one
    sign a client can read of an error Kubo put in the trailer): a caller
    must not keep what it wrote (commit a multipart upload) until the loop
    ended. A stream that stops coming or breaks raises KuboUnavailable.
    `UnsupportedHash` and `UnsupportedCodec` (ValueErrors) say that the
    DAG cannot be verified here, wherever it comes from.

    `index` then holds every block's offset and length in the CAR,
    `car_bytes` its size: the archive's block index needs no second pass."""

    def __init__(self, response: requests.Response, root: Cid, deadline: float, chunk_bytes: int) -> None:
        self.root = root
        self.index = BlockIndex()
        self.complete = False
        self._response = response
        self._deadline = deadline
        self._chunk_bytes = chunk_bytes
        self._reader = CarReader()
        self._dag: DagCompleteness | None = None

    @property
    def car_bytes(self) -> int:
        return self._reader.bytes_read

    def __enter__(self) -> DagExport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Hang up (Kubo then stops the export)."""
        self._response.close()

    def __iter__(self) -> Iterator[bytes]:
        with self._response:
            for chunk in self._chunks():
                self._check(chunk)
                yield chunk
        self._finish()

    def _chunks(self) -> Iterator[bytes]:
        chunks = self._response.raw.stream(self._chunk_bytes, decode_content=True)
        while True:
            seconds_left = self._deadline - time.monotonic()
            if seconds_left <= 0:
                raise KuboUnavailable(f"dag/export of {self.root} ran out of time after {self.car_bytes} bytes")
            _limit_next_read(self._response, seconds_left)
            try:
                chunk = next(chunks, None)
            except ReadTimeoutError as error:
                raise KuboUnavailable(
                    f"dag/export of {self.root} ran out of time after {self.car_bytes} bytes"
                ) from error
            except (ProtocolError, OSError) as error:
                raise KuboUnavailable(f"dag/export stream broke after {self.car_bytes} bytes: {error}") from error
            if chunk is None:
                return
            if chunk:
                yield chunk

    def _check(self, chunk: bytes) -> None:
        try:
            blocks = self._reader.feed(chunk)
            if self._dag is None and self._reader.header is not None:
                self._dag = self._follow(self._reader.header.roots)
            for block in blocks:
                assert self._dag is not None  # the header comes before any block
                self._dag.add(block.cid, block.offset, block.data)
        except (CarError, BlockMismatch, MalformedBlock) as error:
            raise BadExport(f"dag/export of {self.root}: {error}") from error

    def _follow(self, roots: Sequence[Cid]) -> DagCompleteness:
        if [root.key for root in roots] != [self.root.key]:
            raise BadExport(f"dag/export of {self.root} answered a CAR of roots {[str(root) for root in roots]}")
        return DagCompleteness(roots, self.index)

    def _finish(self) -> None:
        try:
            self._reader.close()
        except CarError as error:
            raise BadExport(f"dag/export of {self.root} was cut: {error}") from error
        missing = self._dag.missing if self._dag is not None else [self.root]
        if missing:
            raise BadExport(
                f"dag/export of {self.root} ended without {len(missing)} block(s) the DAG links to"
                f" (first {missing[0]}), after {self.car_bytes} bytes: the node's error is in a trailer"
            )
        self.complete = True


class _UploadTimedOut(Exception):
    """The request body was still being sent at the deadline."""


def _multipart_file(chunks: Iterable[bytes], boundary: str, deadline: float) -> Iterator[bytes]:
    """A multipart/form-data body of one file part holding `chunks`."""
    yield (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="dag.car"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    for chunk in chunks:
        if time.monotonic() >= deadline:
            raise _UploadTimedOut()
        if chunk:
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def _read_import(response: requests.Response) -> ImportedCar:
    roots: list[str] = []
    failed: list[str] = []
    blocks = size = 0
    try:
        for line in _lines(response):
            output = _stream_output(line, "dag/import")
            root, stats = output.get("Root"), output.get("Stats")
            if isinstance(root, dict):
                cid = str((root.get("Cid") or {}).get("/", ""))
                if root.get("PinErrorMsg"):
                    failed.append(f"{cid}: {root['PinErrorMsg']}")
                else:
                    roots.append(cid)
            elif isinstance(stats, dict):
                blocks, size = int(stats.get("BlockCount") or 0), int(stats.get("BlockBytesCount") or 0)
    except (ProtocolError, OSError) as error:
        raise KuboUnavailable(f"dag/import stream broke: {error}") from error
    if failed:
        raise KuboServerError(f"dag/import could not pin {len(failed)} root(s): {'; '.join(failed)}", 200)
    return ImportedCar(tuple(roots), blocks, size)


class _ReadTimedOut(KuboUnavailable):
    """No answer within the read timeout; pin_add tells a stall from this."""


class _PinWatch:
    """The limits on a pin/add: `stall_seconds` after the block count last grew,
    and the caller's deadline."""

    def __init__(self, stall_seconds: float, deadline: float | None) -> None:
        self._stall_seconds = stall_seconds
        self._deadline = deadline
        self._grew_at = time.monotonic()
        self.blocks = 0
        self.bytes = 0

    def update(self, blocks: int, bytes: int) -> bool:
        """Record a progress report; True when it says something new."""
        if blocks > self.blocks:
            # Kubo repeats the last count every 500 ms while it waits, so only
            # a growing count is progress.
            self._grew_at = time.monotonic()
        changed = (blocks, bytes) != (self.blocks, self.bytes)
        self.blocks, self.bytes = blocks, bytes
        return changed

    def time_left(self) -> tuple[float, type[PinInterrupted]]:
        """Seconds until the nearer limit, and the error for reaching it."""
        now = time.monotonic()
        stall_left = self._grew_at + self._stall_seconds - now
        if self._deadline is not None and self._deadline - now <= stall_left:
            return self._deadline - now, PinDeadline
        return stall_left, PinStalled

    def interrupted(self, limit: type[PinInterrupted]) -> PinInterrupted:
        return limit(self.blocks, self.bytes)


def _follow_pin_add(
    response: requests.Response,
    watch: _PinWatch,
    on_progress: ProgressCallback | None,
    wanted: Callable[[], bool] | None,
) -> bool:
    """Read pin/add's stream to its end, within the watch's limits; whether it reported the pin."""
    pins_reported = False
    lines = _lines(response)
    while True:
        seconds_left, limit = watch.time_left()
        if seconds_left <= 0:
            raise watch.interrupted(limit)
        _limit_next_read(response, seconds_left)
        try:
            line = next(lines, None)
        except ReadTimeoutError as error:
            raise watch.interrupted(limit) from error
        except (ProtocolError, OSError) as error:
            raise KuboUnavailable(f"pin/add stream broke: {error}") from error
        if line is None:
            return pins_reported
        output = _stream_output(line)
        if "Pins" in output:
            pins_reported = True
        elif watch.update(output.get("Progress") or 0, output.get("Bytes") or 0) and on_progress:
            on_progress(watch.blocks, watch.bytes)
        # Asked at every report, as Kubo repeats one every 500 ms even while nothing comes.
        if wanted is not None and not pins_reported and not wanted():
            raise PinCancelled(watch.blocks, watch.bytes)


def _limit_next_read(response: requests.Response, seconds: float) -> None:
    # requests fixes one read timeout when the request is sent; narrowing the
    # socket's before each read keeps a silent node from outliving the limits.
    # (Without a socket, as after a Connection: close answer, that first timeout,
    # itself no later than both limits, still bounds every read.)
    connection = response.raw.connection
    if connection is not None and connection.sock is not None:
        connection.sock.settimeout(seconds)


def _lines(response: requests.Response) -> Iterator[bytes]:
    """NDJSON lines as they arrive (Kubo sends each in its own HTTP chunk)."""
    pending = b""
    for chunk in response.raw.stream(decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


def _stream_output(line: bytes, command: str = "pin/add") -> dict[str, Any]:
    try:
        output = json.loads(line)
    except ValueError as error:
        raise KuboServerError(f"{command} sent a line that is not JSON: {line[:200]!r}") from error
    if not isinstance(output, dict):
        raise KuboServerError(f"{command} sent unexpected JSON: {output!r}")
    if output.get("Type") == "error":
        raise KuboServerError(str(output.get("Message") or f"{command} failed"), 200)
    return output


def _go_duration(seconds: float) -> str:
    """Kubo's `timeout` flag: a Go duration."""
    return f"{max(seconds, 0.001):.3f}s"


def _flag(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_from(path: str, response: requests.Response) -> KuboError:
    status = response.status_code
    message, code = _kubo_message(response)
    message = message or f"{path}: HTTP {status}"
    if status in (401, 403):
        return KuboAuthError(message, status)
    if status in _GATEWAY_STATUSES:
        return KuboUnavailable(message, status)
    if status == 400 or code == _CLIENT_ERROR_CODE:
        return KuboRequestError(message, status)
    if status >= 500:
        return KuboServerError(message, status)
    # 404 and 405: a command this node does not serve, or not this way.
    return KuboRequestError(message, status)


def _kubo_message(response: requests.Response) -> tuple[str, int | None]:
    """Kubo's {"Message", "Code", "Type": "error"}, or the plain text some of
    its answers (403, 404, 405) carry instead."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200], None
    if isinstance(body, dict) and isinstance(body.get("Message"), str):
        code = body.get("Code")
        return body["Message"], code if isinstance(code, int) else None
    return response.text.strip()[:200], None
