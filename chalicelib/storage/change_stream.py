"""Folding count changes as the pins table's stream reports them.

Every pin write records its count change as two items of their own
(chalicelib.storage.pin_keys.change_sort_keys), one of them always atop a
status stream (`s#<status>#~`); the table's stream (KEYS_ONLY) reports its
insertion, and the function fed by the stream folds the change's
shard (chalicelib.storage.count_folder). On AWS the event source mapping lets
only those insertions through (CHANGE_FILTER, rendered by infra/render.py);
the local stack's poller applies the same rule (is_change). A record that gets
through anyway, another item's or a malformed one, is ignored: it asks for no
fold, so it cannot fail one.

A fold moves every change its shard holds, so a batch folds each shard once
however many of its changes the batch names. A fold that gives up
(StorageBusy: other folders or throttling kept it out) fails the records of
its shard only; the stream delivers them again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.busy import StorageBusy
from chalicelib.storage.pin_keys import CHANGES, STATUS_CODES, status_prefix, tenant_of_shard

logger = logging.getLogger("pinning.counts")

# Every change has one item under one of these (a move has two): one record a change is enough.
CHANGE_PREFIXES = tuple(status_prefix(status) + CHANGES for status in STATUS_CODES)
# Lambda's event filter syntax: inserted items whose sort key is a change's.
CHANGE_FILTER: Mapping[str, Any] = {
    "eventName": ["INSERT"],
    "dynamodb": {"Keys": {"sk": {"S": [{"prefix": prefix} for prefix in CHANGE_PREFIXES]}}},
}


class Folder(Protocol):
    def fold(self, shard: str) -> int: ...


@dataclass(frozen=True)
class ChangeRecord:
    """A stream record of an inserted count change."""

    shard: str  # the change's partition key
    sequence_number: str


def _at(value: Any, *path: str) -> Any:
    """value[path[0]][path[1]]..., or None where a step is missing or not a mapping."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def change_record(record: Any) -> ChangeRecord | None:
    """The count change a stream record inserts; None for any other record."""
    if _at(record, "eventName") != "INSERT":
        return None
    shard = _at(record, "dynamodb", "Keys", "pk", "S")
    sort_key = _at(record, "dynamodb", "Keys", "sk", "S")
    sequence_number = _at(record, "dynamodb", "SequenceNumber")
    if not (isinstance(sort_key, str) and sort_key.startswith(CHANGE_PREFIXES)):
        return None
    if not (isinstance(shard, str) and shard and isinstance(sequence_number, str)):
        return None
    return ChangeRecord(shard, sequence_number)


def is_change(record: Any) -> bool:
    return change_record(record) is not None


def writing_tenants(records: Iterable[Any]) -> list[str]:
    """The tenants whose pins the change records are of, each once."""
    shards = {change.shard for change in map(change_record, records) if change is not None}
    return sorted({tenant_of_shard(shard) for shard in shards})


def fold_changes(records: Iterable[Any], folder: Folder) -> list[str]:
    """Folds each shard the records name, once; returns the sequence numbers
    of the records whose shard's fold gave up, for the stream to deliver again."""
    by_shard: dict[str, list[str]] = defaultdict(list)
    for record in records:
        change = change_record(record)
        if change is not None:
            by_shard[change.shard].append(change.sequence_number)
    failed: list[str] = []
    for shard, sequence_numbers in by_shard.items():
        try:
            folder.fold(shard)
        except StorageBusy as error:
            # Nothing is lost: the changes stay in the shard, counted by readers, until a fold takes them.
            logger.warning("fold gave up; its records come back", extra={"shard": shard, "reason": str(error)})
            failed.extend(sequence_numbers)
    return failed
