"""Byte counts as people read them: in a pin's progress and in the users' CLI."""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(count: int) -> str:
    """`812 bytes`, `45.6 MiB`: binary units with one decimal above 1 KiB."""
    value = float(count)
    unit = ""
    for larger in _UNITS:
        if value < 1024:
            break
        value /= 1024
        unit = larger
    return f"{value:.1f} {unit}" if unit else f"{count:,} bytes"
