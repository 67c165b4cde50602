"""How many pins one list request may read to apply a filter no index answers.

`name` with match=partial|ipartial and `meta` are compared pin by pin, so
without `cid` or an exact `name` (indexed: they read only their matches) a
request reads every pin of its statuses in its time range, to page and to
count exactly. Storage knows that number from its counts before reading a
pin, so a range holding more than the limit is refused at once and the
client narrows it (`before`/`after`, fewer statuses, an indexed filter).
Every repository applies this one rule, so none answers what another refuses.
"""

from __future__ import annotations

from chalicelib.pins.model import PinQuery

# Chosen from bench.residual_filters (docs/benchmarks-history.md): a
# Kubo-shaped pin (0.36 RCU) costs the API function ~0.23 ms of client work
# on the bench machine (parse, records, compare), ~0.80 ms at 512 MB (0.29
# vCPU, 3.46x slower), plus ~0.14 ms of its 1 MB Query page at ~0.1 s a page
# (sequential; the partition's 3,000 RCU/s allow ~12 pages/s): ~0.94 ms a
# pin, so 10,000 pins take ~9.4 s, well inside API Gateway's 29 s and the
# function's 30 s; memory holds one page per status read. Pins with 16 KB
# of meta (~2.7 ms each) are stopped by the store's scan deadline instead.
DEFAULT_MAX_SCANNED_PINS = 10_000


class QueryTooBroad(Exception):
    """The request would read more pins than one request may; `details` says
    how to narrow it."""

    reason = "QUERY_TOO_BROAD"

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


def scans_time_range(query: PinQuery) -> bool:
    """Whether answering reads every pin of the query's statuses in its time
    range: a residual filter (partial name, meta) with no indexed one (cid,
    exact name) to read only its matches instead."""
    indexed = bool(query.cid_keys) or (query.name is not None and query.match in ("exact", "iexact"))
    return query.has_residual_filter and not indexed


_NARROW = (
    "narrow the range with `before`/`after` or ask for fewer statuses, or use an indexed filter "
    "(`cid`, or `name` with match=exact|iexact)"
)


def check_scan(query: PinQuery, pins_in_range: int, max_scanned_pins: int) -> None:
    """Raises QueryTooBroad when `query` would read `pins_in_range` pins (of
    its statuses in its time range) and that is over the limit."""
    if scans_time_range(query) and pins_in_range > max_scanned_pins:
        raise QueryTooBroad(
            f"a partial `name` match or a `meta` filter reads every pin of the requested statuses in the "
            f"time range: it holds {pins_in_range} pins, at most {max_scanned_pins} are read per request; {_NARROW}"
        )


def scan_too_slow(read: int, seconds: float) -> QueryTooBroad:
    """The refusal of a scan stopped at its deadline (pins much larger than usual)."""
    return QueryTooBroad(
        f"a partial `name` match or a `meta` filter had read only {read} pins of the time range after "
        f"{seconds:g} s (large pins); {_NARROW}"
    )
