"""Binary CIDs as they appear in a CAR, and block verification against them.

A CAR section holds a binary CID followed by the block, with one length for
both, so the CID's own length comes from parsing its fields. This is done by
hand (a few varints) rather than with `multiformats.CID`, which validates
types at run time and takes ~0.3 ms a CID: a DAG of 100,000 small blocks
would spend 30 s there. multiformats is still used off the hot path (text
CIDs in other bases than base32).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.cold.varints import VarintError, decode_varint, encode_varint

_CIDV0_PREFIX = b"\x12\x20"  # a bare sha2-256 multihash: CIDv0, always dag-pb
_CIDV0_BYTES = 34
_DAG_PB = 0x70
_IDENTITY = 0x00
# Longest CID accepted: version, codec, hash code and length varints and a digest.
MAX_CID_BYTES = 4 * 9 + 128


class CidError(ValueError):
    """Not a well-formed binary CID."""


class UnsupportedHash(ValueError):
    """A CID whose hash function this service cannot verify."""


class BlockMismatch(ValueError):
    """A block whose bytes do not hash to its CID."""


@dataclass(frozen=True)
class Cid:
    binary: bytes  # exactly as written (CIDv0: the multihash alone)
    codec: int
    hash_code: int
    digest: bytes

    @property
    def key(self) -> bytes:
        """The binary CIDv1 of the same block: one key for v0 and v1 alike."""
        if self.binary[:1] == b"\x01":
            return self.binary
        return encode_varint(1) + encode_varint(_DAG_PB) + self.binary

    def __str__(self) -> str:
        if self.binary[:1] != b"\x01":
            from multiformats import multibase  # CIDv0 text is base58btc, rare here: loaded on demand

            return str(multibase.encode(self.binary, "base58btc"))[1:]
        return "b" + base64.b32encode(self.binary).decode().lower().rstrip("=")


def parse_cid(buffer: bytes | bytearray | memoryview, at: int = 0) -> tuple[Cid, int]:
    """The CID at `at` and the position after it; CidError if malformed or cut short."""
    if bytes(buffer[at : at + 2]) == _CIDV0_PREFIX:
        end = at + _CIDV0_BYTES
        if end > len(buffer):
            raise CidError("the data ends inside a CID")
        binary = bytes(buffer[at:end])
        return Cid(binary, _DAG_PB, 0x12, binary[2:]), end
    try:
        version, pos = decode_varint(buffer, at)
        if version != 1:
            raise CidError(f"CID version {version} is not 1 (and the bytes are not a CIDv0)")
        codec, pos = decode_varint(buffer, pos)
        hash_code, pos = decode_varint(buffer, pos)
        length, pos = decode_varint(buffer, pos)
    except VarintError as error:
        raise CidError(f"malformed CID: {error}") from error
    end = pos + length
    if end - at > MAX_CID_BYTES:
        raise CidError(f"CID longer than {MAX_CID_BYTES} bytes")
    if end > len(buffer):
        raise CidError("the data ends inside a CID")
    return Cid(bytes(buffer[at:end]), codec, hash_code, bytes(buffer[pos:end])), end


def cid_from_bytes(binary: bytes) -> Cid:
    cid, end = parse_cid(binary)
    if end != len(binary):
        raise CidError(f"{len(binary) - end} bytes after the CID")
    return cid


def cid_from_text(text: str) -> Cid:
    """A CID string in any multibase (or CIDv0)."""
    from multiformats import CID  # ~50 ms to import: only callers with a text CID pay it

    try:
        return cid_from_bytes(bytes(CID.decode(text)))
    # The library raises assorted exception types for malformed input.
    except Exception as error:
        raise CidError(f"not a valid CID: {text!r}") from error


# -- verification --------------------------------------------------------------

_FIXED: dict[int, tuple[str, int]] = {
    0x11: ("sha1", 20),
    0x12: ("sha256", 32),
    0x13: ("sha512", 64),
    0x14: ("sha3_512", 64),
    0x15: ("sha3_384", 48),
    0x16: ("sha3_256", 32),
    0x17: ("sha3_224", 28),
}
_DBL_SHA2_256 = 0x56
_SHAKE_256 = 0x19
# The multicodec table numbers blake2b-N as 0xb200 + N/8 and blake2s-N as 0xb240 + N/8.
_BLAKE2B, _BLAKE2S = 0xB200, 0xB240


def _hasher(hash_code: int, length: int) -> Callable[[bytes | memoryview], bytes] | None:
    """A function from block bytes to the digest the CID holds, or None for an unknown function."""
    if hash_code in _FIXED:
        name, size = _FIXED[hash_code]
        return (lambda data: hashlib.new(name, data).digest()) if length == size else None
    if hash_code == _DBL_SHA2_256 and length == 32:
        return lambda data: hashlib.sha256(hashlib.sha256(data).digest()).digest()
    if hash_code == _SHAKE_256 and length:
        return lambda data: hashlib.shake_256(data).digest(length)
    if 0 < hash_code - _BLAKE2B == length <= 64:
        return lambda data: hashlib.blake2b(data, digest_size=length).digest()
    if 0 < hash_code - _BLAKE2S == length <= 32:
        return lambda data: hashlib.blake2s(data, digest_size=length).digest()
    return None


def verify_block(cid: Cid, data: bytes | memoryview) -> None:
    """Raises BlockMismatch unless `data` hashes to the CID's digest (identity
    CIDs: the digest is the data), UnsupportedHash for a hash function that
    cannot be checked here (keccak, blake3, truncated digests...)."""
    if cid.hash_code == _IDENTITY:
        if bytes(data) != cid.digest:
            raise BlockMismatch(f"block {cid} differs from its identity CID's inline data")
        return
    if cid.hash_code == 0x12 and len(cid.digest) == 32:  # nearly every block: no lookup
        digest = hashlib.sha256(data).digest()
    else:
        hasher = _hasher(cid.hash_code, len(cid.digest))
        if hasher is None:
            raise UnsupportedHash(
                f"block {cid}: hash function {cid.hash_code:#x} with a {len(cid.digest)}-byte digest"
                " cannot be verified here"
            )
        digest = hasher(data)
    if digest != cid.digest:
        raise BlockMismatch(f"block {cid}: its bytes do not hash to its CID")
