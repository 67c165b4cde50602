"""Every order in which a few callers' repository operations can land.

Each caller runs in a thread of its own, but only one runs at a time: it runs
until its next step (the in-memory repositories call `step` before each of
their operations, which are atomic as DynamoDB's are), then waits for its
turn. Schedules are explored depth first, each from a fresh start, so every
interleaving of the callers' operations is run exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

Step = Callable[[str], None]
Caller = Callable[[], object]


class _Run:
    """One run of the callers: the choices of `prefix`, then always the
    lowest-numbered caller still running."""

    def __init__(self, callers_of: Callable[[Step], Sequence[Caller]], prefix: Sequence[int]) -> None:
        self._prefix = prefix
        self._turns = threading.Condition()
        self._turn: int | None = None
        self._callers: dict[int, int] = {}  # thread ident -> caller
        self._errors: list[BaseException] = []
        self.callers = callers_of(self.step)
        self.done = [False] * len(self.callers)
        # (the caller chosen, the callers that could have been) at each step
        self.trace: list[tuple[int, frozenset[int]]] = []

    def step(self, _operation: str) -> None:
        me = self._callers.get(threading.get_ident())
        if me is None:
            return  # the test's own reads and writes
        with self._turns:
            self._turn = None
            self._turns.notify_all()
            self._turns.wait_for(lambda: self._turn == me)

    def _body(self, index: int) -> None:
        with self._turns:
            self._turns.wait_for(lambda: self._turn == index)
        try:
            self.callers[index]()
        except BaseException as error:  # re-raised in the test's thread
            self._errors.append(error)
        finally:
            with self._turns:
                self.done[index] = True
                self._turn = None
                self._turns.notify_all()

    def _give_turn(self, index: int) -> None:
        with self._turns:
            self._turn = index
            self._turns.notify_all()
            self._turns.wait_for(lambda: self._turn is None)

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._body, args=(index,), daemon=True) for index in range(len(self.callers))
        ]
        for index, thread in enumerate(threads):
            thread.start()
            assert thread.ident is not None
            self._callers[thread.ident] = index
            # Up to its first operation: where a caller starts is no choice.
            self._give_turn(index)
        while not all(self.done):
            running = frozenset(index for index, done in enumerate(self.done) if not done)
            at = len(self.trace)
            chosen = self._prefix[at] if at < len(self._prefix) else min(running)
            self.trace.append((chosen, running))
            self._give_turn(chosen)
        for thread in threads:
            thread.join()
        if self._errors:
            raise self._errors[0]


def interleavings(callers_of: Callable[[Step], Sequence[Caller]]) -> Iterator[tuple[int, ...]]:
    """Runs every schedule of the callers `callers_of(step)` builds (fresh,
    over a repository that calls `step`), yielding each schedule - the
    caller that took each step - once it has run, for the test to check."""
    pending: list[tuple[int, ...]] = [()]
    while pending:
        prefix = pending.pop()
        run = _Run(callers_of, prefix)
        run.run()
        choices = tuple(chosen for chosen, _ in run.trace)
        # Every other choice at each step past the prefix is a schedule of its own.
        for at in range(len(prefix), len(run.trace)):
            chosen, running = run.trace[at]
            pending += [choices[:at] + (other,) for other in sorted(running - {chosen})]
        yield choices
