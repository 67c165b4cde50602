"""DNS answers from a table, for chalicelib.worker.origins: no network at all."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from chalicelib.worker.origins import LookupFailed


class FakeDns:
    """Names map to A, AAAA and TXT records; `failing` names fail their
    lookups; `on_query` runs before each answer (to move a test clock)."""

    def __init__(
        self,
        a: Mapping[str, Sequence[str]] | None = None,
        aaaa: Mapping[str, Sequence[str]] | None = None,
        txt: Mapping[str, Sequence[str]] | None = None,
        failing: Iterable[str] = (),
        on_query: Callable[[], None] | None = None,
    ) -> None:
        self.records = {"A": dict(a or {}), "AAAA": dict(aaaa or {}), "TXT": dict(txt or {})}
        self.failing = set(failing)
        self.on_query = on_query
        # (name, record type) in the order asked.
        self.queries: list[tuple[str, str]] = []

    def addresses(self, name: str, version: int, seconds: float) -> list[str]:
        return self._answer(name, "A" if version == 4 else "AAAA")

    def txt(self, name: str, seconds: float) -> list[str]:
        return self._answer(name, "TXT")

    def _answer(self, name: str, rdtype: str) -> list[str]:
        self.queries.append((name, rdtype))
        if self.on_query is not None:
            self.on_query()
        if name in self.failing:
            raise LookupFailed("SERVFAIL")
        return list(self.records[rdtype].get(name, ()))
