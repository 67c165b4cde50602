"""What handling one queue message can come to (besides raising)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Done:
    """The message's work is finished (or there is none left)."""


@dataclass(frozen=True)
class Later:
    """Come back after `delay_seconds` with the same message; not a failure."""

    delay_seconds: int
    why: str


Outcome = Union[Done, Later]
