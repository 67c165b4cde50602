"""CARv1 streaming: published CARs read block by block at the published
offsets, every way a stream can be wrong refused, and the writer read back."""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.car import (
    MAX_BLOCK_BYTES,
    Block,
    CarReader,
    MalformedCar,
    OversizedBlock,
    TruncatedCar,
    encode_header,
    encode_section,
    write_car,
)
from chalicelib.cold.cids import BlockMismatch, UnsupportedHash, cid_from_bytes, cid_from_text
from chalicelib.cold.varints import encode_varint
from tests.cold.dags import RAW, cid_v1, unixfs_file

DATA = Path(__file__).parent / "data"
GO_CAR = (DATA / "go.car").read_bytes()
GO_CARV2 = (DATA / "go.carv2").read_bytes()

# js-car's test/common.js: go.car's roots, and each block's CID, offset and length.
GO_CAR_ROOTS = [
    "bafyreihyrpefhacm6kkp4ql6j6udakdit7g3dmkzfriqfykhjw6cad5lrm",
    "bafyreidj5idub6mapiupjwjsyyxhyhedxycv4vihfsicm2vt46o7morwlm",
]
GO_CAR_BLOCKS = [
    ("bafyreihyrpefhacm6kkp4ql6j6udakdit7g3dmkzfriqfykhjw6cad5lrm", 137, 55),
    ("QmNX6Tffavsya4xgBi2VJQnSuqy9GsxongxZZ9uZBqp16d", 228, 97),
    ("bafkreifw7plhl6mofk6sfvhnfh64qmkq73oeqwl6sloru6rehaoujituke", 362, 4),
    ("QmWXZxVQ9yZfhQxLD35eDR8LiMRsYtHxYqTFCBbJoiJVys", 402, 94),
    ("bafkreiebzrnroamgos2adnbpgw5apo3z4iishhbdx77gldnbk57d4zdio4", 533, 4),
    ("QmdwjhxpxzcMsR3qUuj7vUL8pbA7MgR3GAxWi2GLHjsKCT", 572, 47),
    ("bafkreidbxzk2ryxwwtqxem4l3xyyjvw35yu4tcct4cqeqxwo47zhxgxqwq", 656, 4),
    ("bafyreidj5idub6mapiupjwjsyyxhyhedxycv4vihfsicm2vt46o7morwlm", 697, 18),
]
GO_CAR_SECTION_ENDS = {100, 192, 325, 366, 496, 537, 619, 660, 715}  # where a shorter CAR may end
# go.carv2's payload: a UnixFS file (dag-pb CIDv0 nodes, raw leaves); offsets in the CARv2 file.
GO_CARV2_ROOT = "QmfEoLyB5NndqeKieExd1rtJzTduQUPEV8TwAYcUiy3H5Z"
GO_CARV2_BLOCKS = [
    ("QmfEoLyB5NndqeKieExd1rtJzTduQUPEV8TwAYcUiy3H5Z", 143, 47),
    ("QmczfirA7VEH7YVvKPTPoU69XM3qY4DC39nnTsWd4K3SkM", 226, 99),
    ("Qmcpz2FHJD7VAhg1fxFXdYJKePtkx1BsHuCrAgWVnaHMTE", 360, 54),
    ("bafkreifuosuzujyf4i6psbneqtwg2fhplc2wxptc5euspa2gn3bwhnihfu", 451, 4),
    ("bafkreifc4hca3inognou377hfhvu2xfchn2ltzi7yu27jkaeujqqqdbjju", 492, 7),
]


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def read_all(
    data: bytes, chunk: int = 1 << 16, *, verify: bool = True, max_block_bytes: int = MAX_BLOCK_BYTES
) -> tuple[CarReader, list[Block]]:
    reader = CarReader(verify=verify, max_block_bytes=max_block_bytes)
    return reader, list(reader.blocks(chunks(data, chunk)))


def carv1_payload(carv2: bytes) -> tuple[bytes, int]:
    """(CARv1 payload, its offset) of a CARv2: an 11-byte pragma, then a
    40-byte header of 16 bytes of characteristics and little-endian u64
    data offset, data size and index offset."""
    offset, size = struct.unpack_from("<QQ", carv2, 11 + 16)
    return carv2[offset : offset + size], offset


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
def test_go_car_blocks_at_their_published_offsets(chunk: int) -> None:
    # given: go-car's sample CAR, fed in chunks of 1 byte, 7 bytes, or whole
    # when
    reader, blocks = read_all(GO_CAR, chunk)

    # then: the header's roots, and every block with its CID, offset and length
    assert reader.header is not None and reader.header.version == 1
    assert [str(root) for root in reader.header.roots] == GO_CAR_ROOTS
    assert [(str(b.cid), b.offset, b.length) for b in blocks] == GO_CAR_BLOCKS
    # and: each offset and length reads back exactly the block's bytes
    assert all(GO_CAR[b.offset : b.offset + b.length] == b.data for b in blocks)
    assert reader.bytes_read == len(GO_CAR) and reader.bytes_held == 0


def test_kubo_shaped_unixfs_payload_of_a_carv2() -> None:
    # given: a CARv2, whose CARv1 payload is a UnixFS file
    payload, offset = carv1_payload(GO_CARV2)

    # when / then: the CARv2 itself is refused with a clear reason
    with pytest.raises(MalformedCar, match="only CARv1"):
        read_all(GO_CARV2)
    # and: its payload reads at the published offsets, less the payload's own
    reader, blocks = read_all(payload, 13)
    assert reader.header is not None and [str(root) for root in reader.header.roots] == [GO_CARV2_ROOT]
    assert [(str(b.cid), b.offset + offset, b.length) for b in blocks] == GO_CARV2_BLOCKS


def test_every_truncation_is_refused_except_at_a_section_end() -> None:
    # given: go.car cut at every byte
    for cut in range(len(GO_CAR)):
        reader = CarReader()
        blocks = reader.feed(GO_CAR[:cut])
        if cut in GO_CAR_SECTION_ENDS:
            # then: a CAR of fewer blocks where it ends between sections
            reader.close()
            assert len(blocks) == sum(1 for _, offset, _ in GO_CAR_BLOCKS if offset < cut)
        else:
            # then: a truncated stream anywhere else
            with pytest.raises(TruncatedCar):
                reader.close()


def test_a_corrupted_block_is_refused() -> None:
    # given: go.car with one byte of a raw leaf changed
    corrupt = bytearray(GO_CAR)
    corrupt[362] ^= 0x01
    # then
    with pytest.raises(BlockMismatch, match="bafkreifw7plhl6mofk6sfvhnfh64qmkq73oeqwl6sloru6rehaoujituke"):
        read_all(bytes(corrupt))
    # and: unverified reading still yields it (verification can be left to a later step)
    _, blocks = read_all(bytes(corrupt), verify=False)
    assert len(blocks) == len(GO_CAR_BLOCKS)


def test_a_block_under_another_blocks_cid_is_refused() -> None:
    # given: a CAR whose one section pairs the CID of b"one" with the bytes b"two"
    car = b"".join(write_car([cid_v1(RAW, b"one")], [(cid_v1(RAW, b"one"), b"two")]))
    # then
    with pytest.raises(BlockMismatch):
        read_all(car)


def test_oversized_blocks_are_refused_before_they_are_buffered() -> None:
    # given: a header, then a section announcing 5 MiB
    head = encode_header([cid_v1(RAW, b"x")]) + encode_varint(5 << 20)
    # when / then: refused on the length alone
    with pytest.raises(OversizedBlock):
        CarReader().feed(head)
    # and: a whole block one byte over the limit is refused
    big = bytes(MAX_BLOCK_BYTES + 1)
    with pytest.raises(OversizedBlock):
        read_all(b"".join(write_car([cid_v1(RAW, big)], [(cid_v1(RAW, big), big)])), chunk=1 << 20)
    # and: a lower limit applies to go.car's 97-byte block
    with pytest.raises(OversizedBlock, match="97 bytes"):
        read_all(GO_CAR, max_block_bytes=64)


def test_hash_functions_verified_and_unknown_ones_refused() -> None:
    data = b"a block"
    # given: the same block under sha2-512, blake2b-256, sha3-256 and an identity CID
    cids = [
        cid_v1(RAW, data, 0x13, hashlib.sha512(data).digest()),
        cid_v1(RAW, data, 0xB220, hashlib.blake2b(data, digest_size=32).digest()),
        cid_v1(RAW, data, 0x16, hashlib.sha3_256(data).digest()),
        cid_v1(RAW, data, 0x00, data),
    ]
    # when / then: each verifies
    _, blocks = read_all(b"".join(write_car(cids[:1], [(cid, data) for cid in cids])))
    assert [b.cid for b in blocks] == cids
    # and: blake3 (no hashlib implementation) is refused by name, not passed unverified
    blake3 = cid_v1(RAW, data, 0x1E, bytes(32))
    with pytest.raises(UnsupportedHash, match="0x1e"):
        read_all(b"".join(write_car([blake3], [(blake3, data)])))
    # and: an identity CID whose inline data differs from the block
    with pytest.raises(BlockMismatch):
        read_all(b"".join(write_car([cids[3]], [(cids[3], b"other")])))


@pytest.mark.parametrize(
    "car, reason",
    [
        (b"\x00", "header length"),
        (encode_varint(3) + b"\x82\x01\x02", "not a map"),  # [1, 2]
        (encode_varint(10) + b"\xa1\x67version\x01", "roots"),  # {version: 1}
        (encode_varint(1) + b"\xff", "not DAG-CBOR"),
        (encode_header([]) + encode_varint(3) + b"\x02\x55\x00", "CID version 2"),
        (encode_header([]) + b"\x00", "section at offset"),  # a zero-length section
        (encode_header([]) + b"\xff" * 10, "varint"),
    ],
)
def test_malformed_streams_are_refused(car: bytes, reason: str) -> None:
    with pytest.raises(MalformedCar, match=reason):
        read_all(car)


def test_kubo_shaped_file_round_trips_through_writer_reader_and_index() -> None:
    # given: a 1.1 MiB UnixFS file as Kubo adds it (256 KiB raw leaves, a dag-pb root), written as a CAR
    content = random.Random(7).randbytes(1_100_000)
    root, blocks = unixfs_file(content)
    car = b"".join(write_car([root], blocks))

    # when: read back in 64 KiB chunks, indexed, and the index serialised and parsed
    reader, read = read_all(car)
    index = BlockIndex.from_bytes(BlockIndex.from_blocks(read).to_bytes())

    # then: same roots and blocks, and the reader never held more than one section
    assert reader.header is not None and reader.header.roots == (root,)
    assert [(b.cid, b.data) for b in read] == blocks
    assert b"".join(b.data for b in read[1:]) == content
    # and: the index finds every block's bytes in the CAR
    for cid, data in blocks:
        entry = index.lookup(cid)
        assert entry is not None and car[entry.offset : entry.offset + entry.length] == data


def test_reader_holds_at_most_one_section_between_feeds() -> None:
    # given: a CAR of 1 MiB blocks fed in 64 KiB chunks
    root, blocks = unixfs_file(random.Random(3).randbytes(3 << 20), chunk=1 << 20)
    reader = CarReader()
    held = []
    for chunk in write_car([root], blocks):
        for piece in chunks(chunk, 1 << 16):
            reader.feed(piece)
            held.append(reader.bytes_held)
    reader.close()
    # then: never a whole block and more
    assert max(held) < (1 << 20) + 64


def test_cidv0_and_v1_of_one_block_share_an_index_entry() -> None:
    # given: go.car indexed
    _, blocks = read_all(GO_CAR)
    index = BlockIndex.from_blocks(blocks)
    # when: a dag-pb block is looked up by its CIDv0 and by its CIDv1
    v0 = cid_from_text("QmNX6Tffavsya4xgBi2VJQnSuqy9GsxongxZZ9uZBqp16d")
    v1 = cid_from_bytes(v0.key)
    assert str(v1).startswith("bafybei")
    # then: both find it
    assert index.lookup(v0) == index.lookup(v1) is not None
    assert index.lookup(cid_v1(RAW, b"absent")) is None


def test_encoded_section_layout() -> None:
    # given: a raw block
    cid = cid_v1(RAW, b"hello")
    # then: varint(len(cid) + len(block)) | cid | block
    assert encode_section(cid, b"hello") == bytes([36 + 5]) + cid.binary + b"hello"
