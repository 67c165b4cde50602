"""The protobuf wire format, read field by field: what dag-pb nodes (PBNode,
PBLink) and UnixFS's Data message are made of. Hand-written like `varints`:
a dag-pb node is a few fields, and no schema compiler is needed to walk them."""

from __future__ import annotations

from collections.abc import Iterator

from chalicelib.cold.varints import VarintError, decode_varint


class ProtobufError(ValueError):
    """Bytes that are not a protobuf message of the kinds dag-pb uses."""


def protobuf_fields(data: bytes | memoryview) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of a protobuf message; bytes for length-delimited fields."""
    view = memoryview(data)
    at = 0
    try:
        while at < len(view):
            tag, at = decode_varint(view, at)
            number, wire = tag >> 3, tag & 7
            value: bytes | int
            if wire == 0:
                value, at = decode_varint(view, at)
            elif wire == 2:
                length, at = decode_varint(view, at)
                if at + length > len(view):
                    raise ProtobufError("a protobuf field runs past the message's end")
                value, at = bytes(view[at : at + length]), at + length
            elif wire in (1, 5):
                at += 8 if wire == 1 else 4
                value = 0
            else:
                raise ProtobufError(f"protobuf wire type {wire} is not used by dag-pb")
            yield number, wire, value
    except VarintError as error:
        raise ProtobufError(f"malformed protobuf: {error}") from error
