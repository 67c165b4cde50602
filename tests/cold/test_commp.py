"""CommP: published vectors, an independent whole-buffer computation, and both piece CID forms."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from chalicelib.cold.commp import (
    ZERO_ROOTS,
    CommP,
    PieceCidError,
    PieceCommitment,
    commp,
    decode_piece_cid_v1,
    decode_piece_cid_v2,
    piece_cid_v1,
    piece_cid_v1_to_v2,
    piece_cid_v2,
    piece_cid_v2_to_v1,
)

DATA = Path(__file__).parent / "data"

# FRC-0069's test cases (github.com/filecoin-project/FIPs FRCs/frc-0069.md, CC0).
QUADS = b"".join(bytes([i]) * 127 for i in range(4))  # 127 zeros, 127 ones, 127 twos, 127 threes
FRC_0069_V2 = [
    (QUADS, "bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"),
    (b"", "bafkzcibcp4bdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy"),
    (bytes(127), "bafkzcibcaabdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy"),
    (bytes(128), "bafkzcibcpybwiktap34inmaex4wbs6cghlq5i2j2yd2bb2zndn5ep7ralzphkdy"),
    (QUADS + bytes(127 * 4), "bafkzcibcaac542av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa"),
    (QUADS + bytes(4), "bafkzcibd7abqlxticxolgseegik2stpfgkkuwyf6kufex3doorkvmzpjuxwe4dz4"),
    (QUADS + bytes(5), "bafkzcibd64bqlxticxolgseegik2stpfgkkuwyf6kufex3doorkvmzpjuxwe4dz4"),
]
QUADS_V1 = "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"
EIGHT_QUADS_V1 = "baga6ea4seaqn42av3szurbbscwuu3zjssvfwbpsvbjf6y3tukvlgl2nf5rha6pa"
# Empty 32 GiB and 64 GiB pieces: v1 and v2 (padding 0), from the same FRC.
EMPTY_PIECES = [
    (
        30,
        "baga6ea4seaqao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq",
        "bafkzcibcaapao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq",
    ),
    (
        31,
        "baga6ea4seaqomqafu276g53zko4k23xzh4h4uecjwicbmvhsuqi7o4bhthhm4aq",
        "bafkzcibcaap6mqafu276g53zko4k23xzh4h4uecjwicbmvhsuqi7o4bhthhm4aq",
    ),
]
# go-data-segment testdata/sample_aggregate/index.data.commp (see data/README.md).
INDEX_DATA_V1 = "baga6ea4seaqhcxljs2dth37blnnevcbzvf2bkveytmtpdiq6lwseenadxzzoyei"


# -- an independent computation: whole buffer, bit strings, recursion ------------


def naive_commp(data: bytes) -> tuple[bytes, int]:
    """(root, padded size): Fr32 as text of bits (two '0's after every 254
    data bits), the tree by recursion over halves of the padded buffer."""
    bits = "".join(format(byte, "08b")[::-1] for byte in data)  # least significant bit first
    words = -(-len(bits) // 254) or 1
    words = -(-words // 4) * 4  # whole 127-byte quads
    bits = bits.ljust(words * 254, "0")
    padded_bits = "".join(bits[i : i + 254] + "00" for i in range(0, len(bits), 254))
    leaves = 4
    while leaves < words:
        leaves *= 2
    padded_bits = padded_bits.ljust(leaves * 256, "0")
    padded = int(padded_bits[::-1], 2).to_bytes(leaves * 32, "little")

    def root(span: bytes) -> bytes:
        if len(span) == 32:
            return span
        half = len(span) // 2
        digest = bytearray(hashlib.sha256(root(span[:half]) + root(span[half:])).digest())
        digest[31] &= 0b0011_1111
        return bytes(digest)

    return root(padded), len(padded)


def _fed(data: bytes, chunk: int) -> PieceCommitment:
    hasher = CommP()
    for start in range(0, len(data), chunk):
        hasher.update(data[start : start + chunk])
    return hasher.digest()


SIZES = [0, 1, 126, 127, 128, 254, 255, 508, 65 * 1024, 127 * 1024, 127 * 1024 + 1, 300_001]


@pytest.mark.parametrize("size", SIZES)
def test_streaming_commp_agrees_with_an_independent_computation(size: int) -> None:
    # given: seeded random bytes (sizes on both sides of quad, power-of-two and batch boundaries)
    data = random.Random(size).randbytes(size)
    expected_root, expected_padded = naive_commp(data)

    # when: hashed in one piece and in chunks of 1 byte, 7 bytes and 64 KiB
    results = [commp(data)] + [_fed(data, chunk) for chunk in (7, 64 * 1024)]
    if size <= 65 * 1024:
        results.append(_fed(data, 1))

    # then: every way gives the independent root and padded size
    for result in results:
        assert (result.root, result.padded_size, result.raw_size) == (expected_root, expected_padded, size)


def test_frc_0069_vectors() -> None:
    # given / when: FRC-0069's payloads
    # then: their v2 piece CIDs, and the v1 CIDs where the FRC gives them
    for data, v2 in FRC_0069_V2:
        assert commp(data).cid_v2 == v2
    assert commp(QUADS).cid_v1 == QUADS_V1
    assert commp(QUADS + bytes(127 * 4)).cid_v1 == EIGHT_QUADS_V1
    assert commp(QUADS + bytes(5)).cid_v1 == EIGHT_QUADS_V1  # zeros and padding: same tree, other size


def test_go_data_segment_published_commp() -> None:
    # given: go-data-segment's index.data (508 bytes) and its published CommP
    data = (DATA / "go-data-segment-index.data").read_bytes()

    # when
    piece = commp(data)

    # then: the published CID and a 512-byte piece
    assert (piece.cid_v1, piece.padded_size) == (INDEX_DATA_V1, 512)


def test_zero_subtrees_match_the_published_empty_pieces() -> None:
    # given: the FRC's empty 32 GiB and 64 GiB pieces
    for height, v1, v2 in EMPTY_PIECES:
        # then: the precomputed zero roots are theirs, and v1 with the whole piece of data is the v2
        assert piece_cid_v1(ZERO_ROOTS[height]) == v1
        assert piece_cid_v1_to_v2(v1, (32 << height) * 127 // 128) == v2


@pytest.mark.parametrize("size", [0, 1, 127, 128, 254, 256, 65 * 1024, 1 << 20])
def test_v2_round_trips_height_padding_and_v1(size: int) -> None:
    # given: a piece
    piece = commp(bytes(size))

    # when: its v2 CID is decoded
    decoded = decode_piece_cid_v2(piece.cid_v2)

    # then: root, padded size and raw size come back, and v1 <-> v2 convert both ways
    assert decoded == piece
    assert piece.cid_v2.startswith("bafkzcib") and piece.cid_v1.startswith("baga6ea4sea")
    assert decode_piece_cid_v1(piece.cid_v1) == piece.root
    assert piece_cid_v2_to_v1(piece.cid_v2) == (piece.cid_v1, piece.padded_size)
    assert piece_cid_v1_to_v2(piece.cid_v1, size) == piece.cid_v2


def test_padding_and_height_of_small_and_exact_pieces() -> None:
    # then: as FRC-0069 spells them out
    assert (commp(b"").padding, commp(b"").height) == (127, 2)
    assert (commp(bytes(127)).padding, commp(bytes(127)).height) == (0, 2)
    assert (commp(bytes(128)).padding, commp(bytes(128)).height) == (126, 3)
    assert commp(bytes(256)).padding == 252
    assert commp(bytes(254)).padding == 0


def test_malformed_piece_cids_are_refused() -> None:
    root = bytes(range(32))
    # then: a v1 where a v2 is expected and the reverse, a tree too big for its padding, a bad base
    with pytest.raises(PieceCidError, match="codec"):
        decode_piece_cid_v2(piece_cid_v1(root))
    with pytest.raises(PieceCidError, match="codec"):
        decode_piece_cid_v1(piece_cid_v2(root, 5, 0))
    with pytest.raises(PieceCidError, match="does not fit"):
        piece_cid_v2(root, 5, 600)  # 1016-byte tree with 416 bytes of data: height 4 would do
    with pytest.raises(PieceCidError, match="height"):
        piece_cid_v2(root, 1, 0)
    with pytest.raises(PieceCidError, match="base32"):
        decode_piece_cid_v1("zQm" + "1" * 40)
    with pytest.raises(PieceCidError):
        decode_piece_cid_v1(QUADS_V1[:-4])


def test_digest_ends_the_hasher() -> None:
    # given: a digested hasher
    hasher = CommP()
    hasher.update(b"abc")
    first = hasher.digest()
    # then: digest again gives the same answer, and more data is refused
    assert hasher.digest() == first
    with pytest.raises(ValueError):
        hasher.update(b"d")
