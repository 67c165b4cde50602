"""What the stack prints on stdout for people, and the line scripts wait for."""

from __future__ import annotations

# Printed, followed by the API's URL, once every part of the stack runs
# (stack.json then exists); tests, benchmarks and scripts wait for it.
READY_LINE = "Pinning service ready at "


def say(message: str) -> None:
    """One line (or block) of progress on stdout, flushed: stdout may be a pipe."""
    print(message, flush=True)
