"""Kubo-shaped DAGs for the tests: a UnixFS file as Kubo's `add` builds it
(fixed-size chunks as raw leaves, one dag-pb root listing them), encoded here
by hand so no library under test builds its own input."""

from __future__ import annotations

import hashlib

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
