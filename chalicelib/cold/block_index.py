"""The block index of an archived CAR: where each block's bytes are, for ranged reads.

Serialised compactly as `b"cidx\\x01"` then, per block in CAR order,
`uvarint len(cid) | cid | uvarint gap | uvarint length`: the CID in its
binary CIDv1 form (a CIDv0 becomes the dag-pb CIDv1 of the same block, so
either finds it), `gap` the bytes since the previous block's end (the
section's varint and CID: one byte for CIDs under 128 bytes), `length` the
block's. A sha2-256 CID of a 256 KiB block takes 41 bytes; 10,000 blocks
(2.5 GiB of 256 KiB chunks) ~400 KB.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from chalicelib.cold.car import Block
from chalicelib.cold.cids import Cid
from chalicelib.cold.varints import VarintError, decode_varint, encode_varint

MAGIC = b"cidx\x01"


class MalformedIndex(ValueError):
    """Bytes that are not a block index."""


@dataclass(frozen=True)
class IndexEntry:
    key: bytes  # binary CIDv1
    offset: int  # of the block's bytes in the CAR
    length: int


class BlockIndex:
    """Blocks by CID, in CAR order; the first of duplicate CIDs wins."""

    def __init__(self, entries: Iterable[IndexEntry] = ()) -> None:
        self._entries: list[IndexEntry] = []
        self._by_key: dict[bytes, IndexEntry] = {}
        for entry in entries:
            self._add(entry)

    @classmethod
    def from_blocks(cls, blocks: Iterable[Block]) -> BlockIndex:
        return cls(IndexEntry(block.cid.key, block.offset, block.length) for block in blocks)

    def add(self, cid: Cid, offset: int, length: int) -> None:
        self._add(IndexEntry(cid.key, offset, length))

    def _add(self, entry: IndexEntry) -> None:
        if entry.key not in self._by_key:
            self._by_key[entry.key] = entry
            self._entries.append(entry)

    def lookup(self, cid: Cid) -> IndexEntry | None:
        return self._by_key.get(cid.key)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[IndexEntry]:
        return iter(self._entries)

    def to_bytes(self) -> bytes:
        parts = [MAGIC]
        end = 0
        for entry in self._entries:
            gap = entry.offset - end
            if gap < 0:
                raise ValueError("index entries must be in CAR order, without overlaps")
            parts += (encode_varint(len(entry.key)), entry.key, encode_varint(gap), encode_varint(entry.length))
            end = entry.offset + entry.length
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockIndex:
        if not data.startswith(MAGIC):
            raise MalformedIndex("not a block index (no cidx v1 magic)")
        entries = []
        at, end = len(MAGIC), 0
        try:
            while at < len(data):
                size, at = decode_varint(data, at)
                key, at = data[at : at + size], at + size
                gap, at = decode_varint(data, at)
                length, at = decode_varint(data, at)
                if len(key) != size:
                    raise MalformedIndex("block index cut short")
                entries.append(IndexEntry(key, end + gap, length))
                end += gap + length
        except VarintError as error:
            raise MalformedIndex(f"malformed block index at byte {at}: {error}") from error
        return cls(entries)
