"""The retrieval domain on its own: a pin finder and nodes in memory (no
HTTP, no tables), for what the API tests do not reach: the report of a
successful retrieval, what `dag-scope=entity` is for other kinds of roots,
and content that cannot be verified."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pytest

from chalicelib.cold.car import CarReader, write_car
from chalicelib.cold.cids import Cid, UnsupportedHash, cid_from_bytes
from chalicelib.cold.retrieval import (
    Content,
    Format,
    NotPinned,
    Retrieval,
    Retrieved,
    Retriever,
    Scope,
    Unverifiable,
)
from chalicelib.cold.varints import encode_varint
from chalicelib.fleet.node import Node
from chalicelib.pins.model import PinQuery
from chalicelib.pins.pin import Pin
from tests.cold.dags import DAG_PB, cid_v1, unixfs_file

NODE = Node("node-a", "http://127.0.0.1:1", "peer")


@dataclass
class Pins:
    """One tenant's pinned requests by CID key."""

    pinned: dict[str, Pin] = field(default_factory=dict)

    def list(self, tenant_id: str, query: PinQuery) -> tuple[list[Pin], int]:
        found = [pin for key, pin in self.pinned.items() if key in query.cid_keys and pin.tenant_id == tenant_id]
        assert query.statuses == frozenset({"pinned"})
        return found, len(found)


class Export:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __enter__(self) -> Export:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)


@dataclass
class MemoryNode:
    """A node's blocks by CID text; `fault` raised by every call when set."""

    blocks: dict[str, bytes] = field(default_factory=dict)
    car: bytes = b""
    fault: Exception | None = None
    calls: list[str] = field(default_factory=list)

    def block_get(self, cid: str, *, seconds: float, offline: bool = True) -> bytes:
        self.calls.append("block/get")
        if self.fault is not None:
            raise self.fault
        return self.blocks[cid]

    def dag_export(self, cid: str, *, seconds: float, offline: bool = True, chunk_bytes: int = 1 << 20) -> Any:
        self.calls.append("dag/export")
        if self.fault is not None:
            raise self.fault
        return Export([self.car])


def pin_of(cid: Cid, tenant_id: str = "alice") -> Pin:
    return Pin(tenant_id, 1, "req-1", "pinned", str(cid), str(cid), node_ids=("node-a",))


def retriever(node: MemoryNode, *pins: Pin, reports: list[Retrieved] | None = None) -> Retriever:
    found = Pins({pin.cid_key: pin for pin in pins})
    report = reports.append if reports is not None else (lambda retrieved: None)
    return Retriever(found, lambda: [NODE], lambda _: node, None, None, on_retrieved=report)


def dag_pb(unixfs: bytes, links: list[Cid]) -> tuple[Cid, bytes]:
    """A dag-pb node with UnixFS `Data` (field 1) and links (field 2)."""
    body = b"".join(
        b"\x12" + encode_varint(len(link.binary) + 2) + b"\x0a" + encode_varint(len(link.binary)) + link.binary
        for link in links
    )
    block = body + b"\x0a" + encode_varint(len(unixfs)) + unixfs
    return cid_v1(DAG_PB, block), block


def test_a_successful_retrieval_is_reported_once_and_a_refused_one_never():
    # given a pinned file a node holds, and a retriever reporting into a list
    root, blocks = unixfs_file(b"x" * 1000, chunk=300)
    reports: list[Retrieved] = []
    node = MemoryNode(blocks={str(cid): data for cid, data in blocks})
    found = retriever(node, pin_of(root), reports=reports)

    # when its root block is retrieved, and then a CID the tenant has not pinned
    answer = found.retrieve(Retrieval("alice", str(root), Format.RAW))
    with pytest.raises(NotPinned):
        found.retrieve(Retrieval("alice", str(blocks[1][0]), Format.RAW))

    # then the one success was reported, with the request that authorised it
    assert isinstance(answer, Content)
    assert reports == [Retrieved("alice", "req-1", str(root), "node node-a", len(blocks[0][1]))]


@pytest.mark.parametrize(
    ("unixfs", "whole"),
    [
        pytest.param(b"\x08\x01", False, id="directory"),
        pytest.param(b"\x08\x04", False, id="symlink"),
        pytest.param(b"\x08\x05", True, id="hamt-shard"),
        pytest.param(b"\x08\x02", True, id="file"),
    ],
)
def test_entity_is_the_whole_dag_for_files_and_hamt_shards_and_the_root_block_otherwise(unixfs: bytes, whole: bool):
    # given a pinned dag-pb root of the given UnixFS type linking to one raw leaf
    leaf = b"leaf bytes"
    leaf_cid = cid_from_bytes(b"\x01\x55\x12\x20" + hashlib.sha256(leaf).digest())
    root, block = dag_pb(unixfs, [leaf_cid])
    node = MemoryNode(blocks={str(root): block}, car=b"".join(write_car([root], [(root, block), (leaf_cid, leaf)])))

    # when dag-scope=entity is asked for
    answer = retriever(node, pin_of(root)).retrieve(Retrieval("alice", str(root), Format.CAR, Scope.ENTITY))

    # then a file or shard is its whole DAG, anything else its root block alone
    assert isinstance(answer, Content)
    got = [block.cid for block in CarReader().blocks([answer.data])]
    assert got == ([root, leaf_cid] if whole else [root])


def test_a_non_unixfs_root_is_its_own_entity():
    # given a pinned dag-cbor root (an empty map)
    block = b"\xa0"
    root = cid_v1(0x71, block)
    node = MemoryNode(blocks={str(root): block})

    # when dag-scope=entity is asked for
    answer = retriever(node, pin_of(root)).retrieve(Retrieval("alice", str(root), Format.CAR, Scope.ENTITY))

    # then the CAR holds the root block alone, and no export was made
    assert isinstance(answer, Content)
    assert [b.cid for b in CarReader().blocks([answer.data])] == [root]
    assert node.calls == ["block/get"]


def test_content_that_cannot_be_verified_is_never_served_nor_looked_for_elsewhere():
    # given a pinned CID whose node says its hash function cannot be checked here
    root, _ = unixfs_file(b"y" * 100)
    node = MemoryNode(fault=UnsupportedHash("keccak-256 cannot be verified here"))

    # when it is retrieved
    # then it is refused as unverifiable
    with pytest.raises(Unverifiable):
        retriever(node, pin_of(root)).retrieve(Retrieval("alice", str(root), Format.RAW))
    assert node.calls == ["block/get"]
