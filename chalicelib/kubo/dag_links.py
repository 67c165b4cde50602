"""Is a CAR the whole DAG under its root? Links read from each block, checked against the blocks seen.

Kubo reports an error that happens once `dag/export` has begun streaming
only in the `X-Stream-Error` trailer, which `requests` cannot read: to the
client, a cut export looks like a shorter CAR that ends cleanly between two
sections. What proves the CAR whole is the DAG itself: every CID a block
links to must be a block of the CAR (identity CIDs excepted: their data is
the CID). `DagCompleteness` follows this as blocks stream past, in any
order, holding only the CIDs still wanted (the blocks seen are the block
index's).

Links are decoded for `dag-pb` (UnixFS: the PBLink hashes), `raw` (a leaf)
and `dag-cbor` (tag-42 CIDs anywhere in the value). A block of any other
codec raises `UnsupportedCodec`: its links cannot be read here, so the DAG
cannot be proven whole (as `cids.UnsupportedHash` refuses a hash it cannot
check rather than pass the block unverified).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.cids import Cid, CidError, cid_from_bytes
from chalicelib.cold.protobuf import ProtobufError, protobuf_fields

DAG_PB = 0x70
RAW = 0x55
DAG_CBOR = 0x71
IDENTITY = 0x00


class DagError(ValueError):
    """A block whose links cannot be read."""


class UnsupportedCodec(DagError):
    pass


class MalformedBlock(DagError):
    pass


def dag_pb_links(block: bytes | memoryview) -> list[Cid]:
    """The CIDs a dag-pb node links to, in order (PBNode field 2, PBLink field 1)."""
    links = []
    try:
        for number, wire, value in protobuf_fields(block):
            if number == 2 and wire == 2 and isinstance(value, bytes):
                links += [
                    cid_from_bytes(hash_)
                    for link_number, link_wire, hash_ in protobuf_fields(value)
                    if link_number == 1 and link_wire == 2 and isinstance(hash_, bytes)
                ]
    except (ProtobufError, CidError) as error:
        raise MalformedBlock(f"not a dag-pb node: {error}") from error
    return links


def _cbor_links(value: object) -> Iterator[Cid]:
    from multiformats import CID  # what dag_cbor decodes tag 42 to

    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, CID):
            yield cid_from_bytes(bytes(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def links_of(cid: Cid, block: bytes | memoryview) -> list[Cid]:
    if cid.codec == RAW:
        return []
    if cid.codec == DAG_PB:
        return dag_pb_links(block)
    if cid.codec == DAG_CBOR:
        import dag_cbor  # rare in this service: loaded on demand

        try:
            return list(_cbor_links(dag_cbor.decode(bytes(block))))
        # The library raises assorted exception types for malformed input.
        except Exception as error:
            raise MalformedBlock(f"block {cid} is not DAG-CBOR: {str(error).splitlines()[0]}") from error
    raise UnsupportedCodec(f"block {cid}: the links of codec {cid.codec:#x} cannot be read here")


class DagCompleteness:
    """Follows a CAR's blocks (verified ones: see `CarReader`) into `index`
    and tells which linked blocks are still missing."""

    def __init__(self, roots: Iterable[Cid], index: BlockIndex) -> None:
        self.index = index
        # key -> CID of the blocks linked to (or the roots) not seen yet
        self._wanted: dict[bytes, Cid] = {}
        self._want(roots)

    def _want(self, cids: Iterable[Cid]) -> None:
        for cid in cids:
            if cid.hash_code != IDENTITY and self.index.lookup(cid) is None:
                self._wanted.setdefault(cid.key, cid)

    def add(self, cid: Cid, offset: int, block: bytes | memoryview) -> None:
        if self.index.lookup(cid) is not None:
            return  # a repeated block: its links were followed the first time
        self.index.add(cid, offset, len(block))
        self._wanted.pop(cid.key, None)
        self._want(links_of(cid, block))

    @property
    def missing(self) -> list[Cid]:
        """Blocks linked to (or roots) that the CAR has not had so far."""
        return list(self._wanted.values())
