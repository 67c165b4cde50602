"""How many pins one list request may read to apply a filter no index answers.

`name` with match=partial|ipartial is compared pin by pin, so without `cid`,
an exact `name` or `meta` (indexed: they read only their matches) a request
reads every pin of its statuses in its time range, to page and to count
exactly. Storage knows that number from its counts before reading a pin, so
a range holding more than the limit is refused at once and the client
narrows it (`before`/`after`, fewer statuses, an indexed filter).

`meta` is indexed by key/value pair, up to MAX_INDEXED_META_PAIRS pairs a
pin; a pin with more is read by every `meta` query of its time range. A
`meta` query reads the pins of its rarest pair (and those), or, when each of
its pairs matches more than the limit, every pin of its statuses in the
range; it is refused when both are over the limit.

Every repository applies these rules, so none answers what another refuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.pins.model import PinQuery

# A pin's index entries are written in its transaction, at most 100 items;
# a replace writes the new pin's and deletes the old one's: 2 x (pin, 4
# copies, 32 meta entries, count change's 2 items, meta item) + the outbox
# message = 81.
MAX_INDEXED_META_PAIRS = 32

# Chosen from bench.residual_filters (docs/benchmarks-history.md section 8,
# measured on the sharded table): a Kubo-shaped pin read by a scan costs
# 0.29 RCU and ~0.21 ms of the function's work on the bench machine, ~9.0 s
# for 10,000 pins on a 512 MB function (estimated), well inside API
# Gateway's 29 s and the function's 30 s; a meta candidate ~11.9 s per
# 10,000. Pins with 16 KB of meta (~30 s per 10,000) are stopped by the
# store's 20 s deadline instead, scans and meta candidates alike.
DEFAULT_MAX_SCANNED_PINS = 10_000


class QueryTooBroad(Exception):
    """The request would read more pins than one request may; `details` says
    how to narrow it."""

    reason = "QUERY_TOO_BROAD"

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


def _by_cid_or_name(query: PinQuery) -> bool:
    return bool(query.cid_keys) or (query.name is not None and query.match in ("exact", "iexact"))


def scans_time_range(query: PinQuery) -> bool:
    """Whether answering reads every pin of the query's statuses in its time
    range: a partial name match with no indexed filter (cid, exact name,
    meta) to read only its candidates instead."""
    partial = query.name is not None and query.match in ("partial", "ipartial")
    return partial and not query.meta and not _by_cid_or_name(query)


def reads_meta_index(query: PinQuery) -> bool:
    """Whether answering reads the candidates of the `meta` filter's pairs
    (no CID or exact name, whose entries are read instead)."""
    return bool(query.meta) and not _by_cid_or_name(query)


def indexed_pairs(meta: Mapping[str, str]) -> list[tuple[str, str]] | None:
    """The meta pairs a pin is found by, or None when it has more than are
    indexed (every `meta` query of its time range then reads it)."""
    return None if len(meta) > MAX_INDEXED_META_PAIRS else sorted(meta.items())


_NARROW = (
    "narrow the range with `before`/`after` or ask for fewer statuses, or use an indexed filter "
    "(`cid`, `name` with match=exact|iexact, or a rarer `meta` pair)"
)


def check_scan(query: PinQuery, pins_in_range: int, max_scanned_pins: int) -> None:
    """Raises QueryTooBroad when `query` would read `pins_in_range` pins (of
    its statuses in its time range) and that is over the limit."""
    if scans_time_range(query) and pins_in_range > max_scanned_pins:
        raise QueryTooBroad(
            f"a partial `name` match reads every pin of the requested statuses in the "
            f"time range: it holds {pins_in_range} pins, at most {max_scanned_pins} are read per request; {_NARROW}"
        )


def check_meta_scan(query: PinQuery, rarest_pair_pins: int | None, pins_in_range: int, max_scanned_pins: int) -> None:
    """Raises QueryTooBroad when a `meta` query would read more than the limit
    both ways: the pins of its rarest pair with the pins of too many pairs
    (None when over the limit), or every pin of its statuses in the range."""
    over = rarest_pair_pins is None or rarest_pair_pins > max_scanned_pins
    if reads_meta_index(query) and over and pins_in_range > max_scanned_pins:
        raise QueryTooBroad(
            f"a `meta` filter reads the pins of its rarest key/value pair or every pin of the requested statuses "
            f"in the time range: each pair matches more than {max_scanned_pins} pins and the range holds "
            f"{pins_in_range} pins, at most {max_scanned_pins} are read per request; {_NARROW}"
        )


def scan_too_slow(read: int, seconds: float) -> QueryTooBroad:
    """The refusal of a scan stopped at its deadline (pins much larger than usual)."""
    return QueryTooBroad(
        f"a partial `name` match or a `meta` filter had read only {read} pins of the time range after "
        f"{seconds:g} s (large pins); {_NARROW}"
    )
