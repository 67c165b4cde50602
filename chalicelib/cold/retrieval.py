"""Retrieval of a tenant's pinned content: a CAR of its DAG or its root block,
from a hot node that holds it, otherwise from its archive.

Knows neither HTTP nor DynamoDB (chalicelib.api.retrieval speaks the IPFS
Trustless Gateway's HTTP; the repositories are handed in). A tenant reads
only CIDs it has a `pinned` request for: any other CID is NotPinned, whether
another tenant pinned it or nobody did.

Nothing unverified leaves: every answer is whole in memory, each block
checked against its CID, before it is returned. A hot node's CAR comes from
`dag/export` (DagExport verifies every block and that the DAG is whole), a
block from `block/get` (verified by the client); an archive's CAR is read
with CarReader (every block verified), its header root, length and SHA-256
checked against what the archiver recorded; an archived block is a ranged
read by the block index, verified. Answers are bounded by
`RetrievalLimits.max_bytes` (a synchronous response's limit): a larger
DAG's CAR is a Redirect to a short-lived URL of its archive, which the
client verifies block by block itself as the trustless protocol expects.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from chalicelib.cold.archive_repository import ARCHIVED, ARCHIVING, ArchivedCar, ArchiveState
from chalicelib.cold.car import CarError, CarReader, write_car
from chalicelib.cold.cids import BlockMismatch, Cid, UnsupportedHash, cid_from_text
from chalicelib.cold.protobuf import protobuf_fields
from chalicelib.fleet.node import Node
from chalicelib.kubo.dag_links import UnsupportedCodec
from chalicelib.kubo.errors import KuboError
from chalicelib.pins.model import PinQuery
from chalicelib.pins.pin import Pin

if TYPE_CHECKING:  # annotations only: requests and botocore load with the first retrieval's objects
    from chalicelib.cold.archive_objects import ArchiveObjects
    from chalicelib.kubo.client import DagExport

_IDENTITY = 0x00
_RAW = 0x55
_DAG_PB = 0x70
# UnixFS Data.Type values whose entity is the whole DAG under them: a file's
# (Raw, File) is all its chunks; a HAMT directory's listing spans its shards
# (the whole DAG is a superset of them, which the spec's clients accept).
_WHOLE_ENTITY_TYPES = frozenset({0, 2, 5})
_PINNED = frozenset({"pinned"})


class Format(Enum):
    CAR = "car"
    RAW = "raw"


class Scope(Enum):
    """The Trustless Gateway's `dag-scope`."""

    ALL = "all"
    ENTITY = "entity"
    BLOCK = "block"


@dataclass(frozen=True)
class Retrieval:
    tenant_id: str
    cid_key: str  # the canonical CIDv1 (chalicelib.pins.cids)
    format: Format
    scope: Scope = Scope.ALL


@dataclass(frozen=True)
class Content:
    """The answer's bytes: a CARv1 (blocks in depth-first order, each once) or a raw block."""

    data: bytes
    source: str  # "node <id>" or "archive"


@dataclass(frozen=True)
class Redirect:
    """The whole DAG's CAR is too large to answer: read it at `url` (no credentials) for `seconds`."""

    url: str
    seconds: int


@dataclass(frozen=True)
class Retrieved:
    """A retrieval that succeeded, as reported to `Retriever.on_retrieved`."""

    tenant_id: str
    request_id: str  # the tenant's pinned request that authorised it
    cid_key: str
    source: str  # "node <id>", "archive" or "archive url"
    bytes: int


@dataclass(frozen=True)
class RetrievalLimits:
    # The largest answer: a Lambda response is at most 6 MB and binary
    # bodies travel base64-encoded (4/3): 4 MiB leaves ~0.6 MB for headers.
    max_bytes: int = 4 << 20
    # All the hot nodes' reads of one retrieval (API Gateway gives up at 29 s).
    node_seconds: float = 20.0
    # How long a redirect's URL reads the archive.
    url_seconds: int = 300
    # What a client is told to wait for an archive under way.
    archiving_retry_seconds: int = 60
    # What a client is told to wait when no copy answered.
    unavailable_retry_seconds: int = 30


class NotPinned(LookupError):
    """The tenant has no pinned request for the CID (unknown, another tenant's, not pinned yet)."""


class RetrievalUnavailable(Exception):
    """No copy could be read now; retry after `retry_after_seconds`."""

    def __init__(self, details: str, retry_after_seconds: int) -> None:
        super().__init__(details)
        self.details = details
        self.retry_after_seconds = retry_after_seconds


class TooLarge(Exception):
    """The whole DAG is over the answer's limit and no archive will hold it
    (the archive failed, or the service keeps none): only smaller scopes can be read."""


class IntegrityFailure(Exception):
    """Every copy read gave bytes that do not verify: the service's fault, not the client's."""


class Unverifiable(Exception):
    """The content uses a hash function or codec this service cannot check, so it is never served."""


class PinFinder(Protocol):
    def list(self, tenant_id: str, query: PinQuery) -> tuple[list[Pin], int]: ...


class HotNode(Protocol):
    """The Kubo calls retrieval makes (chalicelib.kubo.client.KuboClient)."""

    def block_get(self, cid: str, *, seconds: float, offline: bool = True) -> bytes: ...
    def dag_export(
        self, cid: str, *, seconds: float, offline: bool = True, chunk_bytes: int = 1 << 20
    ) -> DagExport: ...


class ArchiveStates(Protocol):
    def state(self, cid: str) -> ArchiveState | None: ...


class _OverLimit(Exception):
    pass


def _nothing(retrieved: Retrieved) -> None:
    return None


class Retriever:
    def __init__(
        self,
        pins: PinFinder,
        nodes: Callable[[], Sequence[Node]],
        kubo: Callable[[Node], HotNode],
        archives: ArchiveStates | None,
        objects: ArchiveObjects | None,
        limits: RetrievalLimits = RetrievalLimits(),
        on_retrieved: Callable[[Retrieved], None] = _nothing,
    ) -> None:
        self._pins = pins
        self._nodes = nodes
        self._kubo = kubo
        self._archives = archives
        self._objects = objects
        self.limits = limits
        # The one place a successful retrieval is reported (the cold tier's
        # "last retrieved" touch plugs in here); nothing by default.
        self.on_retrieved = on_retrieved

    def pinned(self, tenant_id: str, cid_key: str) -> Pin:
        """The tenant's pinned request for the CID (NotPinned otherwise): one query per shard."""
        query = PinQuery(statuses=_PINNED, cid_keys=(cid_key,), limit=1)
        found, _ = self._pins.list(tenant_id, query)
        if not found:
            raise NotPinned(cid_key)
        return found[0]

    def retrieve(self, request: Retrieval) -> Content | Redirect:
        """The answer to `request`. Raises NotPinned, RetrievalUnavailable (or
        ArchiveThawing, its archive's restore under way), TooLarge,
        IntegrityFailure, Unverifiable."""
        root = cid_from_text(request.cid_key)
        if root.hash_code == _IDENTITY and root.codec == _RAW:
            # The data is the CID's (the spec's probe, bafkqaaa): nothing stored, nothing to guard.
            return Content(root.digest if request.format is Format.RAW else _car(root, []), "identity")
        pin = self.pinned(request.tenant_id, request.cid_key)
        sources = _Sources(self._nodes, self._kubo, self._archives, self._objects, self.limits)
        answer = _Read(sources, pin, root).answer(request)
        self.on_retrieved(Retrieved(request.tenant_id, pin.request_id, request.cid_key, answer.source, answer.bytes))
        return answer.result


@dataclass(frozen=True)
class _Served:
    result: Content | Redirect
    source: str
    bytes: int


@dataclass(frozen=True)
class _Sources:
    nodes: Callable[[], Sequence[Node]]
    kubo: Callable[[Node], HotNode]
    archives: ArchiveStates | None
    objects: ArchiveObjects | None
    limits: RetrievalLimits


class _Read:
    """One retrieval's reads: the pin's nodes first, then the archive."""

    def __init__(self, sources: _Sources, pin: Pin, root: Cid) -> None:
        self._r = sources
        self._pin = pin
        self._root = root
        self._deadline = time.monotonic() + sources.limits.node_seconds
        self._failures: list[str] = []
        self._corrupt = False
        self._state: ArchiveState | None = None
        self._state_read = False

    def answer(self, request: Retrieval) -> _Served:
        if request.format is Format.RAW:
            block, source = self._root_block()
            return _Served(Content(block, source), source, len(block))
        if request.scope is not Scope.ALL:
            block, source = self._root_block()
            if request.scope is Scope.BLOCK or not _whole_entity(self._root, block):
                car = _car(self._root, [(self._root, block)])
                return _Served(Content(car, source), source, len(car))
        return self._whole_dag()

    # -- the root block ------------------------------------------------------

    def _root_block(self) -> tuple[bytes, str]:
        for node in self._hot_nodes():
            try:
                return self._r.kubo(node).block_get(self._pin.cid_key, seconds=self._seconds_left()), _source(node)
            except Exception as error:
                self._failed(node, error)
        car = self._archived()
        if car is not None:
            objects = self._objects()
            try:
                entry = objects.index(car).lookup(self._root)
                if entry is None:
                    raise IntegrityFailure(f"the archive of {self._root} has no block {self._root} in its index")
                return objects.block(car, self._root, entry), "archive"
            except BlockMismatch as error:
                raise IntegrityFailure(f"the archive of {self._root}: {error}") from error
            except UnsupportedHash as error:
                raise Unverifiable(f"{self._root}: {error}") from error
        raise self._unavailable()

    # -- the whole DAG -------------------------------------------------------

    def _whole_dag(self) -> _Served:
        limits = self._r.limits
        car = self._archived()
        if car is not None and car.car_bytes > limits.max_bytes:
            return self._redirect(car)
        for node in self._hot_nodes():
            try:
                data = self._export(node)
            except _OverLimit:
                return self._too_large()
            except Exception as error:
                self._failed(node, error)
                continue
            return _Served(Content(data, _source(node)), _source(node), len(data))
        if car is not None:
            data = self._archived_car(car)
            return _Served(Content(data, "archive"), "archive", len(data))
        raise self._unavailable()

    def _export(self, node: Node) -> bytes:
        chunks: list[bytes] = []
        size = 0
        with self._r.kubo(node).dag_export(self._pin.cid_key, seconds=self._seconds_left()) as export:
            for chunk in export:  # each checked by DagExport; the loop ends only on the whole DAG
                size += len(chunk)
                if size > self._r.limits.max_bytes:
                    raise _OverLimit()  # leaving the block hangs up: Kubo stops
                chunks.append(chunk)
        return b"".join(chunks)

    def _archived_car(self, car: ArchivedCar) -> bytes:
        """The archive's CAR, every block verified as it is read, then its root,
        length and SHA-256 checked against the archiver's record."""
        reader = CarReader()
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        try:
            for chunk in self._objects().car_chunks(car):
                reader.feed(chunk)
                digest.update(chunk)
                chunks.append(chunk)
            reader.close()
        except (CarError, BlockMismatch) as error:
            raise IntegrityFailure(f"the archive of {self._root}: {error}") from error
        except UnsupportedHash as error:
            raise Unverifiable(f"{self._root}: {error}") from error
        roots = [root.key for root in reader.header.roots] if reader.header else []
        if roots != [self._root.key] or reader.bytes_read != car.car_bytes or digest.hexdigest() != car.car_sha256:
            raise IntegrityFailure(f"the archive of {self._root} is not the CAR its record describes")
        return b"".join(chunks)

    def _redirect(self, car: ArchivedCar) -> _Served:
        seconds = self._r.limits.url_seconds
        url = self._objects().presigned_url(car, seconds, filename=f"{self._root}.car")
        return _Served(Redirect(url, seconds), "archive url", car.car_bytes)

    def _too_large(self) -> _Served:
        state = self._archive_state()
        limit = self._r.limits.max_bytes
        # Pinned, archives kept, none for this request yet: its archive message is on the queue.
        coming = state is None and self._r.objects is not None and "cold" not in self._pin.info
        if coming or (state is not None and state.state == ARCHIVING):
            raise RetrievalUnavailable(
                f"the DAG is over the {limit} bytes one answer holds and its archive, which a redirect"
                " would point to, is still being made",
                self._r.limits.archiving_retry_seconds,
            )
        raise TooLarge(
            f"the DAG is over the {limit} bytes one answer holds and has no archive to redirect to"
            f" (archive: {state.state if state else 'none'}); dag-scope=block reads its root block"
        )

    # -- sources ---------------------------------------------------------------

    def _hot_nodes(self) -> Iterator[Node]:
        """The registered nodes of the pin, healthy first, while time is left."""
        registered = {node.node_id: node for node in self._r.nodes()}
        nodes = [registered[node_id] for node_id in self._pin.node_ids if node_id in registered]
        for node in sorted(nodes, key=lambda node: not node.healthy):
            if self._seconds_left() <= 0:
                self._failures.append("no time left for the nodes")
                return
            yield node

    def _seconds_left(self) -> float:
        return self._deadline - time.monotonic()

    def _failed(self, node: Node, error: Exception) -> None:
        """A node that could not give verified bytes: the next source is tried,
        unless the content itself cannot be verified anywhere."""
        if isinstance(error, (UnsupportedHash, UnsupportedCodec)):
            raise Unverifiable(f"{self._root}: {error}") from error
        if isinstance(error, BlockMismatch) or isinstance(error.__cause__, BlockMismatch):
            self._corrupt = True
        elif not isinstance(error, (KuboError, ValueError)):
            raise error  # not the node's: a bug, never another source's cue
        self._failures.append(f"{_source(node)}: {error}")

    def _archive_state(self) -> ArchiveState | None:
        if not self._state_read:
            archives = self._r.archives
            self._state = archives.state(self._pin.cid_key) if archives is not None else None
            self._state_read = True
        return self._state

    def _archived(self) -> ArchivedCar | None:
        state = self._archive_state()
        if self._r.objects is None or state is None or state.state != ARCHIVED:
            return None
        return state.car

    def _objects(self) -> ArchiveObjects:
        assert self._r.objects is not None  # _archived() returned an archive only with them
        return self._r.objects

    def _unavailable(self) -> Exception:
        tried = "; ".join(self._failures) or "no registered node holds it"
        if self._corrupt:
            return IntegrityFailure(f"no verified copy of {self._root}: {tried}")
        return RetrievalUnavailable(
            f"no copy of {self._root} could be read now ({tried}), and it has no archive yet",
            self._r.limits.unavailable_retry_seconds,
        )


def _source(node: Node) -> str:
    return f"node {node.node_id}"


def _car(root: Cid, blocks: Sequence[tuple[Cid, bytes]]) -> bytes:
    return b"".join(write_car([root], blocks))


def _whole_entity(root: Cid, block: bytes) -> bool:
    """Whether `dag-scope=entity` of this root is its whole DAG: a UnixFS
    file (or HAMT directory); any other UnixFS node, and non-UnixFS data,
    is its root block alone, as the spec says."""
    if root.codec != _DAG_PB:
        return False
    try:
        data = next((value for number, wire, value in protobuf_fields(block) if number == 1 and wire == 2), None)
        if not isinstance(data, bytes):
            return False
        kind = next((value for number, wire, value in protobuf_fields(data) if number == 1 and wire == 0), None)
    except ValueError:  # ProtobufError
        return False  # verified against its CID, yet not UnixFS: the block is the entity
    return kind in _WHOLE_ENTITY_TYPES
