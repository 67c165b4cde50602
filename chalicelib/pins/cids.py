"""Content identifiers: validation and the canonical form pins are keyed by.

A CID may arrive as CIDv0 or as CIDv1 in any multibase; all name the same
content, so pins are stored under one canonical key. The hash functions
accepted are those Kubo/boxo `verifcid` accepts, since a pin the node would
refuse is better refused at the API.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_CID_CHARS = 512

_IDENTITY = 0x00
_MAX_IDENTITY_DIGEST = 128
_MIN_DIGEST = 20
_MAX_DIGEST = 128

# Digest size in bytes of each fixed-size hash function verifcid allows.
_FIXED_DIGEST_BYTES = {
    0x11: 20,  # sha1
    0x12: 32,  # sha2-256
    0x13: 64,  # sha2-512
    0x14: 64,  # sha3-512
    0x15: 48,  # sha3-384
    0x16: 32,  # sha3-256
    0x17: 28,  # sha3-224
    0x1A: 28,  # keccak-224
    0x1B: 32,  # keccak-256
    0x1C: 48,  # keccak-384
    0x1D: 64,  # keccak-512
    0x56: 32,  # dbl-sha2-256
}
_VARIABLE_DIGEST = frozenset({0x19, 0x1E})  # shake-256, blake3

# The multicodec table numbers blake2b-N as 0xb200 + N/8 (N = 8..512) and
# blake2s-N as 0xb240 + N/8 (N = 8..256); verifcid allows N >= 160.
_BLAKE2B_BASE, _BLAKE2B_MAX_BYTES = 0xB200, 64
_BLAKE2S_BASE, _BLAKE2S_MAX_BYTES = 0xB240, 32


class InvalidCid(ValueError):
    pass


@dataclass(frozen=True)
class ContentId:
    # Exactly as the client gave it: the API echoes it back unchanged.
    text: str
    # CIDv1, base32: equal for every encoding of the same CID.
    key: str


def parse_cid(text: str) -> ContentId:
    """Validate a client's CID and derive its canonical key."""
    if not isinstance(text, str) or not text:
        raise InvalidCid("CID must be a non-empty string")
    if len(text) > MAX_CID_CHARS:
        raise InvalidCid(f"CID is longer than {MAX_CID_CHARS} characters")
    # Imported here: it takes ~50 ms, paid only by requests that carry a CID.
    from multiformats import CID

    try:
        cid = CID.decode(text)
    # The library raises ValueError, KeyError, IndexError and its base
    # codecs' own error types for malformed input.
    except Exception as error:
        raise InvalidCid("not a valid CID: it decodes neither as CIDv0 nor as multibase CIDv1") from error
    _check_multihash(cid.hashfun.code, cid.hashfun.name, len(cid.raw_digest))
    return ContentId(text=text, key=str(cid.set(version=1, base="base32")))


def _check_multihash(code: int, name: str, digest_bytes: int) -> None:
    allowed = _allowed_digest_bytes(code)
    if allowed is None:
        raise InvalidCid(f"hash function {name} is not allowed: it is considered insecure")
    low, high = allowed
    if not low <= digest_bytes <= high:
        expected = f"{low}" if low == high else f"{low} to {high}"
        raise InvalidCid(f"{name} digest must be {expected} bytes, not {digest_bytes}")


def _allowed_digest_bytes(code: int) -> tuple[int, int] | None:
    """Inclusive digest size range for an allowed hash function, else None."""
    if code == _IDENTITY:
        return 0, _MAX_IDENTITY_DIGEST
    if code in _FIXED_DIGEST_BYTES:
        size = _FIXED_DIGEST_BYTES[code]
        return size, size
    if code in _VARIABLE_DIGEST:
        return _MIN_DIGEST, _MAX_DIGEST
    for base, max_bytes in ((_BLAKE2B_BASE, _BLAKE2B_MAX_BYTES), (_BLAKE2S_BASE, _BLAKE2S_MAX_BYTES)):
        if _MIN_DIGEST <= code - base <= max_bytes:
            return code - base, code - base
    return None
