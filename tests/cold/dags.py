"""Kubo-shaped DAGs for the tests: a UnixFS file as Kubo's `add` builds it
(fixed-size chunks as raw leaves, one dag-pb root listing them), encoded here
by hand so no library under test builds its own input."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chalicelib.cold.car import write_car
from chalicelib.cold.cids import Cid, cid_from_bytes
from chalicelib.cold.varints import encode_varint

DAG_PB, RAW, SHA2_256 = 0x70, 0x55, 0x12


def cid_v1(codec: int, data: bytes, hash_code: int = SHA2_256, digest: bytes | None = None) -> Cid:
    digest = hashlib.sha256(data).digest() if digest is None else digest
    return cid_from_bytes(
        encode_varint(1) + encode_varint(codec) + encode_varint(hash_code) + encode_varint(len(digest)) + digest
    )


def cid_v0(data: bytes) -> Cid:
    return cid_from_bytes(b"\x12\x20" + hashlib.sha256(data).digest())


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return encode_varint(number << 3) + encode_varint(value)
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


def unixfs_file(data: bytes, chunk: int = 256 * 1024, v0_root: bool = False) -> tuple[Cid, list[tuple[Cid, bytes]]]:
    """(root, blocks root first) of `data` as a chunked UnixFS file with raw leaves."""
    leaves = [(cid_v1(RAW, data[i : i + chunk]), data[i : i + chunk]) for i in range(0, len(data), chunk)]
    unixfs = _field(1, 2) + _field(3, len(data)) + b"".join(_field(4, len(leaf)) for _, leaf in leaves)
    links = b"".join(_field(2, _field(1, cid.binary) + _field(2, b"") + _field(3, len(leaf))) for cid, leaf in leaves)
    root_block = links + _field(1, unixfs)
    root = cid_v0(root_block) if v0_root else cid_v1(DAG_PB, root_block)
    return root, [(root, root_block), *leaves]


# -- UnixFS DAGs of any shape -------------------------------------------------------

DIRECTORY, FILE, SYMLINK, HAMT_SHARD = 1, 2, 4, 5


@dataclass(frozen=True)
class Dag:
    cid: Cid
    blocks: list[tuple[Cid, bytes]]  # depth first, each block once (as Kubo's dag/export)
    size: int = 0  # a file's bytes

    def car(self) -> bytes:
        return b"".join(write_car([self.cid], self.blocks))


def _unique(blocks: Iterable[tuple[Cid, bytes]]) -> list[tuple[Cid, bytes]]:
    seen: dict[bytes, tuple[Cid, bytes]] = {}
    for cid, data in blocks:
        seen.setdefault(cid.key, (cid, data))
    return list(seen.values())


def unixfs_data(
    kind: int,
    data: bytes = b"",
    filesize: int | None = None,
    blocksizes: Sequence[int] = (),
    fanout: int | None = None,
    packed: bool = False,
) -> bytes:
    encoded = _field(1, kind) + (_field(2, data) if data else b"")
    if filesize is not None:
        encoded += _field(3, filesize)
    if packed and blocksizes:
        encoded += _field(4, b"".join(encode_varint(size) for size in blocksizes))
    else:
        encoded += b"".join(_field(4, size) for size in blocksizes)
    return encoded + (_field(6, fanout) if fanout is not None else b"")


def pb_node(links: Sequence[tuple[str, Dag]], data: bytes | None) -> bytes:
    """A PBNode: its links (hash, name, cumulative size) then its data, as dag-pb orders them."""
    encoded = b"".join(
        _field(2, _field(1, dag.cid.binary) + _field(2, name.encode()) + _field(3, sum(len(b) for _, b in dag.blocks)))
        for name, dag in links
    )
    return encoded + (_field(1, data) if data is not None else b"")


def _pb_dag(block: bytes, children: Iterable[Dag], v0: bool, size: int = 0) -> Dag:
    cid = cid_v0(block) if v0 else cid_v1(DAG_PB, block)
    return Dag(cid, _unique([(cid, block), *(b for child in children for b in child.blocks)]), size)


def leaf(data: bytes, raw: bool = True, v0: bool = False) -> Dag:
    """A chunk: a raw block, or a dag-pb File node holding the bytes (Kubo's CIDv0 default)."""
    if raw:
        cid = cid_v1(RAW, data)
        return Dag(cid, [(cid, data)], len(data))
    return _pb_dag(pb_node([], unixfs_data(FILE, data, filesize=len(data))), [], v0, len(data))


def identity_leaf(data: bytes) -> Dag:
    """A raw chunk inlined in its CID: no block in the CAR."""
    return Dag(cid_v1(RAW, data, hash_code=0, digest=data), [], len(data))


def file_node(children: Sequence[Dag], data: bytes = b"", v0: bool = False, packed: bool = False) -> Dag:
    """A dag-pb File node: its own bytes, then its children's."""
    sizes = [child.size for child in children]
    unixfs = unixfs_data(FILE, data, filesize=len(data) + sum(sizes), blocksizes=sizes, packed=packed)
    return _pb_dag(pb_node([("", child) for child in children], unixfs), children, v0, len(data) + sum(sizes))


def balanced_file(data: bytes, chunk: int, width: int, raw: bool = True, v0: bool = False) -> Dag:
    """Kubo's balanced layout: chunks as leaves, grouped `width` at a time, level by level."""
    level = [leaf(data[i : i + chunk], raw, v0) for i in range(0, len(data), chunk)] or [leaf(b"", raw, v0)]
    while len(level) > 1:
        level = [file_node(level[i : i + width], v0=v0) for i in range(0, len(level), width)]
    return level[0]


def trickle_file(data: bytes, chunk: int, width: int, repeat: int, raw: bool = True) -> Dag:
    """Kubo's trickle layout: a node holds `width` leaves, then `repeat` subtrees
    of each depth 1, 2, ... (the root without bound, a subtree of depth d up to d - 1)."""
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]

    def node(depth: int | None) -> Dag:
        children = [leaf(chunks.pop(0), raw) for _ in range(min(width, len(chunks)))]
        sub = 1
        while chunks and (depth is None or sub < depth):
            for _ in range(repeat):
                if chunks:
                    children.append(node(sub))
            sub += 1
        return file_node(children)

    return node(None)


def directory(entries: Sequence[tuple[str, Dag]], v0: bool = False) -> Dag:
    return _pb_dag(pb_node(entries, unixfs_data(DIRECTORY)), [dag for _, dag in entries], v0)


def hamt_shard(links: Sequence[tuple[str, Dag]], fanout: int = 256) -> Dag:
    """A HAMT directory node; each link's name is its slot in hex (2 digits at
    256), then the entry's name, or the slot alone for a sub-shard."""
    return _pb_dag(pb_node(links, unixfs_data(HAMT_SHARD, fanout=fanout)), [dag for _, dag in links], False)


def symlink(target: str) -> Dag:
    return _pb_dag(pb_node([], unixfs_data(SYMLINK, target.encode())), [], False)
