"""Unsigned varints (multiformats' LEB128): the CAR format's length prefixes
and every field of a binary CID.

Hand-written rather than `multiformats.varint`: the CAR reader decodes five
of them per block, and these are plain int loops over a buffer, with no
runtime type validation (multiformats checks the types of every call).
"""

from __future__ import annotations

# The multiformats spec caps a varint at 9 bytes (63 bits).
MAX_VARINT_BYTES = 9


class VarintError(ValueError):
    pass


class IncompleteVarint(VarintError):
    """The buffer ends inside the varint: more bytes may complete it."""


def encode_varint(value: int) -> bytes:
    if value < 0 or value.bit_length() > 7 * MAX_VARINT_BYTES:
        raise VarintError(f"{value} is not representable as an unsigned varint")
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buffer: bytes | bytearray | memoryview, at: int) -> tuple[int, int]:
    """(value, position after it) of the varint at `at`; IncompleteVarint if
    the buffer ends first, VarintError if it is too long or not minimal."""
    value = shift = 0
    for index in range(at, min(len(buffer), at + MAX_VARINT_BYTES)):
        byte = buffer[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and index > at:
                raise VarintError("varint is not minimally encoded")
            return value, index + 1
        shift += 7
    if len(buffer) - at < MAX_VARINT_BYTES:
        raise IncompleteVarint("the data ends inside a varint")
    raise VarintError(f"varint longer than {MAX_VARINT_BYTES} bytes")
