"""moto's DynamoDB Streams for a stack that runs for hours.

Every GetRecords call leaves a new shard iterator in moto's memory for good
(in the backend's table of iterators and in the list moto keeps of every
model instance, ~1.8 KB), and the stack's stream poller
(devstack.stream_poller) reads twice a second: ~13 MB an hour, idle or not.
So the iterator a call used is forgotten once it answered. On AWS an
iterator stays usable for 15 minutes, but nothing in the stack reads one
twice. Dev only.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator

_lock = threading.Lock()
_installed = False


def install() -> None:
    """Idempotent; patches moto's streams backend class for this process."""
    global _installed
    with _lock:
        if _installed:
            return
        original = DynamoDBStreamsBackend.get_records

        def get_records(self: DynamoDBStreamsBackend, iterator_arn: str, limit: int) -> dict[str, Any]:
            answer = original(self, iterator_arn, limit)
            used = self.shard_iterators.pop(iterator_arn)
            with contextlib.suppress(ValueError):  # moto's reset emptied the list meanwhile
                ShardIterator.instances_tracked.remove(used)  # type: ignore[attr-defined]
            return answer

        DynamoDBStreamsBackend.get_records = get_records  # type: ignore[method-assign]
        _installed = True
