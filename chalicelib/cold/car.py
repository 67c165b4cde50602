"""CARv1, streamed: a reader fed chunks of any size, and a writer.

A CARv1 is a varint-prefixed DAG-CBOR header `{roots: [CID], version: 1}`
followed by sections, each a varint length then a binary CID and the block's
bytes. The reader yields every block with its CID and the offset of its bytes
in the stream (so an index can serve ranged reads later), verifies each block
against its CID, and holds at most one section beyond the chunk it was fed:
never the whole CAR. The header is decoded by the `dag-cbor` library, which
also enforces DAG-CBOR's canonical form.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from chalicelib.cold.cids import MAX_CID_BYTES, Cid, CidError, cid_from_bytes, parse_cid, verify_block
from chalicelib.cold.varints import IncompleteVarint, VarintError, decode_varint, encode_varint

# Kubo's blocks are at most 2 MiB (its chunkers make 256 KiB-1 MiB ones);
# twice that leaves room for other producers and still bounds the memory.
MAX_BLOCK_BYTES = 4 << 20
MAX_HEADER_BYTES = 1 << 20


class CarError(ValueError):
    """The stream is not a CARv1 this service accepts."""


class MalformedCar(CarError):
    pass


class TruncatedCar(CarError):
    pass


class OversizedBlock(CarError):
    pass


@dataclass(frozen=True)
class CarHeader:
    version: int
    roots: tuple[Cid, ...]


@dataclass(frozen=True)
class Block:
    cid: Cid
    offset: int  # of the block's bytes (after the section's varint and CID) in the CAR
    data: bytes

    @property
    def length(self) -> int:
        return len(self.data)


class CarReader:
    """Feed it the CAR's chunks in order, then `close()`.

    `feed` returns the blocks the chunk completed; `blocks` does the same
    over an iterable of chunks. Both raise CarError (malformed, truncated,
    oversized), BlockMismatch or UnsupportedHash (from `cids`): all ValueError.
    """

    def __init__(self, *, verify: bool = True, max_block_bytes: int = MAX_BLOCK_BYTES) -> None:
        self.header: CarHeader | None = None
        self._verify = verify
        self._max_section = max_block_bytes + MAX_CID_BYTES
        self._max_block = max_block_bytes
        self._buffer = bytearray()
        self._base = 0  # stream offset of _buffer[0]

    @property
    def bytes_read(self) -> int:
        return self._base + len(self._buffer)

    @property
    def bytes_held(self) -> int:
        """Bytes kept between feeds: less than one header or section."""
        return len(self._buffer)

    def blocks(self, chunks: Iterable[bytes]) -> Iterator[Block]:
        for chunk in chunks:
            yield from self.feed(chunk)
        self.close()

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Block]:
        self._buffer += chunk
        found: list[Block] = []
        at = 0
        while True:
            parsed = self._next(at, found)
            if parsed is None:
                break
            at = parsed
        del self._buffer[:at]
        self._base += at
        return found

    def close(self) -> None:
        """Raises TruncatedCar unless the stream ended after a whole header and section."""
        if self.header is None:
            raise TruncatedCar(f"the CAR ends inside its header ({self.bytes_read} bytes)")
        if self._buffer:
            raise TruncatedCar(
                f"the CAR ends inside a section: {len(self._buffer)} bytes at offset {self._base} left over"
            )

    def _next(self, at: int, found: list[Block]) -> int | None:
        """Parses the header or one section at `at` if all of it is buffered:
        the position after it, or None when more bytes are needed."""
        try:
            length, start = decode_varint(self._buffer, at)
        except IncompleteVarint:
            return None
        except VarintError as error:
            raise MalformedCar(f"at offset {self._base + at}: {error}") from error
        end = start + length
        if self.header is None:
            if not 0 < length <= MAX_HEADER_BYTES:
                raise MalformedCar(f"header length {length} is not 1 to {MAX_HEADER_BYTES} bytes")
            if end > len(self._buffer):
                return None
            self.header = decode_header(bytes(self._buffer[start:end]))
            return end
        if length > self._max_section:
            raise OversizedBlock(
                f"section of {length} bytes at offset {self._base + at}: blocks are at most {self._max_block} bytes"
            )
        if end > len(self._buffer):
            return None
        found.append(self._section(start, end))
        return end

    def _section(self, start: int, end: int) -> Block:
        with memoryview(self._buffer) as whole, whole[start:end] as section:
            try:
                cid, data_start = parse_cid(section)
            except CidError as error:
                raise MalformedCar(f"section at offset {self._base + start}: {error}") from error
            if len(section) - data_start > self._max_block:
                raise OversizedBlock(
                    f"block {cid} of {len(section) - data_start} bytes: blocks are at most {self._max_block} bytes"
                )
            data = bytes(section[data_start:])
        if self._verify:
            verify_block(cid, data)
        return Block(cid, self._base + start + data_start, data)


def decode_header(encoded: bytes) -> CarHeader:
    import dag_cbor  # with multiformats ~85 ms to import: paid by CAR readers only
    from multiformats import CID

    try:
        header = dag_cbor.decode(encoded)
    # Like multiformats, the library raises assorted exception types for malformed input.
    except Exception as error:
        # The library's message runs to several lines of byte-level detail: its first says what.
        raise MalformedCar(f"the header is not DAG-CBOR: {str(error).splitlines()[0]}") from error
    if not isinstance(header, dict) or "version" not in header:
        raise MalformedCar("the header is not a map with a version")
    version = header["version"]
    if version != 1 or isinstance(version, bool):
        raise MalformedCar(f"CAR version {version!r} is not supported: only CARv1")
    roots = header.get("roots")
    if set(header) != {"roots", "version"} or not isinstance(roots, list):
        raise MalformedCar("a CARv1 header is {roots: [CID], version: 1} and nothing else")
    if not all(isinstance(root, CID) for root in roots):
        raise MalformedCar("a root is not a CID")
    try:
        return CarHeader(1, tuple(cid_from_bytes(bytes(root)) for root in roots if isinstance(root, CID)))
    except CidError as error:
        raise MalformedCar(f"a root is not a CID this service reads: {error}") from error


# -- writing ----------------------------------------------------------------


def encode_header(roots: Sequence[Cid]) -> bytes:
    import dag_cbor
    from multiformats import CID

    encoded = dag_cbor.encode({"roots": [CID.decode(root.binary) for root in roots], "version": 1})
    return encode_varint(len(encoded)) + encoded


def encode_section(cid: Cid, data: bytes) -> bytes:
    return encode_varint(len(cid.binary) + len(data)) + cid.binary + data


def write_car(roots: Sequence[Cid], blocks: Iterable[tuple[Cid, bytes]]) -> Iterator[bytes]:
    """The CAR's bytes, a header then one chunk per block, as the blocks come."""
    yield encode_header(roots)
    for cid, data in blocks:
        yield encode_section(cid, data)
