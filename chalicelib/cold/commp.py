"""Streaming piece commitment (CommP) of a byte stream, and its piece CIDs.

The Filecoin commitment of a piece: Fr32-pad the bytes (each 127 bytes become
128: every 254 bits are stored in a 32-byte little-endian word whose top two
bits are zero), zero-pad to a power of two (128 bytes at least), and build a
binary merkle tree over the 32-byte words where each node is
SHA-256(left | right) with the top two bits of its last byte cleared
(sha2-256-trunc254-padded).

`CommP` is fed chunks of any size and keeps O(log n) memory: one pending
batch of input and a stack of complete subtree roots; the zero padding on the
right is folded in from precomputed roots of all-zero subtrees.

Piece CIDs, both forms:
- v1: CIDv1, codec fil-commitment-unsealed (0xf101), multihash
  sha2-256-trunc254-padded (0x1012) of the 32-byte root; the piece size
  travels beside it (`baga6ea4sea...`);
- v2 (FRC-0069): CIDv1, codec raw (0x55), multihash
  fr32-sha256-trunc254-padbintree (0x1011) whose digest is
  `uvarint padding | uint8 height | root`, padding being the bytes of zeros
  appended to the data to fill the tree, height the tree's levels above its
  32-byte leaves (`bafkzcib...`).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from chalicelib.cold.varints import decode_varint, encode_varint

NODE_BYTES = 32
_QUAD_IN, _QUAD_OUT = 127, 128  # Fr32: 4 x 254 bits in, 4 x 256 bits out
_MIN_HEIGHT = 2  # 128 padded bytes: the smallest piece
_MAX_HEIGHT = 63  # a padded size beyond 2^68 bytes is no piece this service makes
# Input consumed per batch: 1024 quads, so each batch is a full subtree of
# 4096 leaves (height 12) hashed level by level in C-sized steps.
_BATCH_QUADS = 1024
_BATCH_HEIGHT = 12
_BATCH_IN = _QUAD_IN * _BATCH_QUADS

_FIL_COMMITMENT_UNSEALED = 0xF101
_SHA2_256_TRUNC254_PADDED = 0x1012
_RAW = 0x55
_FR32_SHA256_TRUNC254_PADBINTREE = 0x1011
_CID_V1 = 0x01

_MASK_254 = (1 << 254) - 1
# Clears the top two bits of a byte: applied to every 32nd byte of a level.
_TRUNC254 = bytes(b & 0x3F for b in range(256))


class PieceCidError(ValueError):
    """A piece CID that is not of the form asked for."""


def _word_masks(quads: int) -> tuple[int, int, int, int]:
    """Per 128-byte record, the bits of its k-th 254-bit input word (k = 0..3), `quads` records long."""
    m0, m1, m2, m3 = (
        int.from_bytes((_MASK_254 << 254 * k).to_bytes(_QUAD_OUT, "little") * quads, "little") for k in range(4)
    )
    return m0, m1, m2, m3


_WORD_MASKS = _word_masks(_BATCH_QUADS)


def _fr32_quads(view: memoryview) -> bytes:
    """Fr32 of up to a batch of quads in a few big-integer operations (a loop
    over each quad's integer cost twice as much): each quad spaced out to 128
    bytes by a zero byte, its words 1, 2 and 3 then move up 2, 4 and 6 bits
    within its record, the same shifts for every record."""
    spaced = b"\0".join([view[i : i + _QUAD_IN] for i in range(0, len(view), _QUAD_IN)]) + b"\0"
    x = int.from_bytes(spaced, "little")
    m0, m1, m2, m3 = _WORD_MASKS
    return ((x & m0) | (x & m1) << 2 | (x & m2) << 4 | (x & m3) << 6).to_bytes(len(spaced), "little")


def fr32_pad(data: bytes | bytearray | memoryview) -> bytes:
    """Fr32 padding of whole quads (len(data) a multiple of 127)."""
    view = memoryview(data)
    return b"".join([_fr32_quads(view[i : i + _BATCH_IN]) for i in range(0, len(view), _BATCH_IN)])


def _next_level(level: bytes | bytearray) -> bytearray:
    """The parents of a run of sibling nodes (an even count of them)."""
    view = memoryview(level)
    sha256 = hashlib.sha256
    parents = bytearray(b"".join([sha256(view[i : i + 64]).digest() for i in range(0, len(view), 64)]))
    parents[NODE_BYTES - 1 :: NODE_BYTES] = parents[NODE_BYTES - 1 :: NODE_BYTES].translate(_TRUNC254)
    return parents


def node_hash(left: bytes, right: bytes) -> bytes:
    """One sha2-256-trunc254-padded node."""
    digest = hashlib.sha256(left + right).digest()
    return digest[:-1] + bytes([digest[-1] & 0x3F])


def subtree_root(leaves: bytes | bytearray) -> bytes:
    """Root of a full subtree over a power-of-two count of 32-byte leaves."""
    level: bytes | bytearray = leaves
    while len(level) > NODE_BYTES:
        level = _next_level(level)
    return bytes(level)


def _zero_roots(levels: int) -> tuple[bytes, ...]:
    roots = [bytes(NODE_BYTES)]
    for _ in range(levels):
        roots.append(node_hash(roots[-1], roots[-1]))
    return tuple(roots)


# ZERO_ROOTS[h]: root of a subtree of 2^h zero leaves (zeros Fr32-pad to zeros).
ZERO_ROOTS = _zero_roots(_MAX_HEIGHT)


def padded_size_for(raw_size: int) -> int:
    """The piece size (a power of two, >= 128) that holds `raw_size` bytes once Fr32-padded."""
    quads = max(1, -(-raw_size // _QUAD_IN))
    return 1 << max(_MIN_HEIGHT + 5, (quads * _QUAD_OUT - 1).bit_length())


@dataclass(frozen=True)
class PieceCommitment:
    raw_size: int  # bytes fed
    padded_size: int  # the piece: a power of two, >= 128
    root: bytes  # 32 bytes

    @property
    def height(self) -> int:
        """Levels of the tree above its 32-byte leaves."""
        return (self.padded_size // NODE_BYTES).bit_length() - 1

    @property
    def padding(self) -> int:
        """Zero bytes appended to the data to fill the tree (FRC-0069)."""
        return self.padded_size // _QUAD_OUT * _QUAD_IN - self.raw_size

    @property
    def cid_v1(self) -> str:
        return piece_cid_v1(self.root)

    @property
    def cid_v2(self) -> str:
        return piece_cid_v2(self.root, self.height, self.padding)


class CommP:
    """Streaming CommP: `update` with chunks of any size, then `digest`."""

    def __init__(self) -> None:
        self._pending = bytearray()  # less than one batch, between updates
        self._size = 0
        self._stack: list[tuple[int, bytes]] = []  # (height, root) of full subtrees, left to right
        self._done = False

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._done:
            raise ValueError("CommP.update after digest")
        self._size += len(chunk)
        pending = self._pending
        if not pending and len(chunk) >= _BATCH_IN:
            # Whole batches straight from the caller's buffer: no copy.
            whole = len(chunk) - len(chunk) % _BATCH_IN
            self._batches(memoryview(chunk)[:whole])
            pending += memoryview(chunk)[whole:]
            return
        pending += chunk
        if len(pending) >= _BATCH_IN:
            whole = len(pending) - len(pending) % _BATCH_IN
            with memoryview(pending) as view:
                self._batches(view[:whole])
            del pending[:whole]

    def _batches(self, data: memoryview) -> None:
        for start in range(0, len(data), _BATCH_IN):
            self._push(_BATCH_HEIGHT, subtree_root(fr32_pad(data[start : start + _BATCH_IN])))

    def _push(self, height: int, root: bytes) -> None:
        stack = self._stack
        while stack and stack[-1][0] == height:
            root = node_hash(stack.pop()[1], root)
            height += 1
        stack.append((height, root))

    def digest(self) -> PieceCommitment:
        """The commitment of everything fed; the hasher is spent afterwards."""
        if not self._done:
            self._done = True
            self._tail()
        padded_size = padded_size_for(self._size)
        return PieceCommitment(self._size, padded_size, self._fold((padded_size // NODE_BYTES).bit_length() - 1))

    def _tail(self) -> None:
        """The last partial batch, zero-filled to whole quads: pushed as
        subtrees of decreasing sizes (its leaf count's binary digits), each
        smaller than any batch already on the stack."""
        rest = len(self._pending)
        if not rest:
            return
        self._pending += bytes(-rest % _QUAD_IN)
        leaves = fr32_pad(self._pending)
        self._pending = bytearray()
        count = len(leaves) // NODE_BYTES
        start = 0
        for height in range(count.bit_length() - 1, -1, -1):
            if count >> height & 1:
                end = start + (NODE_BYTES << height)
                self._stack.append((height, subtree_root(leaves[start:end])))
                start = end

    def _fold(self, height: int) -> bytes:
        """Joins the stack's subtrees right to left, zero subtrees filling every gap, up to `height`."""
        stack = list(self._stack)
        if not stack:
            return ZERO_ROOTS[height]
        level, node = stack.pop()
        while level < height:
            if stack and stack[-1][0] == level:
                node = node_hash(stack.pop()[1], node)
            else:
                node = node_hash(node, ZERO_ROOTS[level])
            level += 1
        return node


def commp(data: bytes | bytearray | memoryview) -> PieceCommitment:
    """CommP of bytes in memory (the streaming hasher, fed once)."""
    hasher = CommP()
    hasher.update(data)
    return hasher.digest()


# -- piece CIDs -------------------------------------------------------------


def _base32_cid(binary: bytes) -> str:
    return "b" + base64.b32encode(binary).decode().lower().rstrip("=")


def _cid_binary(text: str) -> bytes:
    """The binary CIDv1 of a base32 CID string (the only base piece CIDs are written in here)."""
    if not isinstance(text, str) or not text.startswith("b"):
        raise PieceCidError("a piece CID must be a base32 CIDv1 (starting with 'b')")
    body = text[1:].upper()
    try:
        return base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as error:
        raise PieceCidError(f"not base32: {text!r}") from error


def _cid_fields(text: str, codec: int, hash_code: int) -> bytes:
    """The multihash digest of a CIDv1 of this codec and hash function."""
    binary = _cid_binary(text)
    try:
        version, at = decode_varint(binary, 0)
        found_codec, at = decode_varint(binary, at)
        found_hash, at = decode_varint(binary, at)
        length, at = decode_varint(binary, at)
    except ValueError as error:
        raise PieceCidError(f"malformed CID {text!r}: {error}") from error
    if (version, found_codec, found_hash) != (_CID_V1, codec, hash_code):
        raise PieceCidError(
            f"{text!r} is not a CIDv1 of codec {codec:#x} and multihash {hash_code:#x}"
            f" (found version {version}, codec {found_codec:#x}, multihash {found_hash:#x})"
        )
    if len(binary) - at != length:
        raise PieceCidError(f"{text!r}: digest length {length} but {len(binary) - at} bytes follow")
    return binary[at:]


def piece_cid_v1(root: bytes) -> str:
    """`baga6ea4sea...`: the root alone (the piece size is carried separately)."""
    if len(root) != NODE_BYTES:
        raise PieceCidError(f"a piece root is {NODE_BYTES} bytes, not {len(root)}")
    prefix = (
        encode_varint(_CID_V1)
        + encode_varint(_FIL_COMMITMENT_UNSEALED)
        + encode_varint(_SHA2_256_TRUNC254_PADDED)
        + encode_varint(NODE_BYTES)
    )
    return _base32_cid(prefix + root)


def piece_cid_v2(root: bytes, height: int, padding: int) -> str:
    """`bafkzcib...` (FRC-0069): root, tree height and zero padding in one CID."""
    if len(root) != NODE_BYTES:
        raise PieceCidError(f"a piece root is {NODE_BYTES} bytes, not {len(root)}")
    _check_height_and_padding(height, padding)
    digest = encode_varint(padding) + bytes([height]) + root
    prefix = encode_varint(_CID_V1) + encode_varint(_RAW) + encode_varint(_FR32_SHA256_TRUNC254_PADBINTREE)
    return _base32_cid(prefix + encode_varint(len(digest)) + digest)


def _check_height_and_padding(height: int, padding: int) -> None:
    if not _MIN_HEIGHT <= height <= _MAX_HEIGHT:
        raise PieceCidError(f"piece tree height must be {_MIN_HEIGHT} to {_MAX_HEIGHT}, not {height}")
    capacity = (NODE_BYTES << height) // _QUAD_OUT * _QUAD_IN
    # Data fills more than half the tree, or the tree would be smaller;
    # below 127 bytes the tree is the smallest one whatever the padding.
    least_data = 0 if height == _MIN_HEIGHT else capacity // 2 + 1
    if not 0 <= padding <= capacity - least_data:
        raise PieceCidError(f"padding {padding} does not fit a piece of height {height} (capacity {capacity} bytes)")


def decode_piece_cid_v1(text: str) -> bytes:
    """The 32-byte root of a v1 piece CID."""
    root = _cid_fields(text, _FIL_COMMITMENT_UNSEALED, _SHA2_256_TRUNC254_PADDED)
    if len(root) != NODE_BYTES:
        raise PieceCidError(f"{text!r}: a piece root is {NODE_BYTES} bytes, not {len(root)}")
    return root


def decode_piece_cid_v2(text: str) -> PieceCommitment:
    """Root, padded size and raw size of a v2 piece CID."""
    digest = _cid_fields(text, _RAW, _FR32_SHA256_TRUNC254_PADBINTREE)
    try:
        padding, at = decode_varint(digest, 0)
    except ValueError as error:
        raise PieceCidError(f"{text!r}: malformed padding: {error}") from error
    if len(digest) - at != 1 + NODE_BYTES:
        raise PieceCidError(f"{text!r}: expected a height byte and a {NODE_BYTES}-byte root after the padding")
    height, root = digest[at], digest[at + 1 :]
    _check_height_and_padding(height, padding)
    padded_size = NODE_BYTES << height
    return PieceCommitment(padded_size // _QUAD_OUT * _QUAD_IN - padding, padded_size, root)


def piece_cid_v1_to_v2(v1: str, raw_size: int) -> str:
    """v1 plus the data's size -> v2 (the padded size follows from the raw size)."""
    root = decode_piece_cid_v1(v1)
    return PieceCommitment(raw_size, padded_size_for(raw_size), root).cid_v2


def piece_cid_v2_to_v1(v2: str) -> tuple[str, int]:
    """v2 -> (v1, padded piece size)."""
    piece = decode_piece_cid_v2(v2)
    return piece.cid_v1, piece.padded_size
