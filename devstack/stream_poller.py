"""The count folder fed by the pins table's stream, locally: what Lambda's
event source mapping does on AWS (infra/render.py), on moto's DynamoDB Streams.

Every POLL_SECONDS it reads what the stream added since, keeps the records the
mapping's filter lets through (chalicelib.storage.change_stream.is_change) and
hands them to the app's `fold_counts` in Lambda-shaped events of up to
FOLD_BATCH_SIZE records. As on AWS, a batch with failed records is delivered
again from the first of them (an exception fails them all), up to FOLD_RETRIES
times, then skipped with a line on the console: its changes stay in their
shards, counted by every read, until a later fold takes them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from chalicelib.storage.change_stream import is_change
from devstack.console import say
from devstack.worker_poller import LambdaContext
from infra.render import FOLD_BATCH_SIZE, FOLD_RETRIES

POLL_SECONDS = 0.5
# Records a GetRecords call returns at most (DynamoDB Streams' limit).
RECORDS_PER_READ = 1000

Record = dict[str, Any]
HandlerType = Callable[[dict[str, Any], Any], Any]


def streams_client(endpoint_url: str | None = None) -> Any:
    """A DynamoDB Streams client. moto answers only at the regional host, not
    at the account's one botocore picks for calls naming a stream ARN (an
    explicit endpoint_url wins either way)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodbstreams", endpoint_url=endpoint_url, config=Config(account_id_endpoint_mode="disabled")
    )


class StreamPoller:
    def __init__(
        self,
        streams: Any,
        table: str,
        handler: HandlerType,
        timeout_seconds: float,
        interval: float = POLL_SECONDS,
        keep: Callable[[Record], bool] = is_change,
        name: str = "fold-counts",
    ) -> None:
        self._streams = streams
        self._table = table
        self._handler = handler
        self._timeout = timeout_seconds
        self._interval = interval
        self._stream_arn = ""
        self._iterators: dict[str, str] = {}  # shard id: where the next read starts
        self._pending: list[Record] = []  # change records read, not yet folded, oldest first
        self._retries = 0  # of the first pending record
        self._stopping = threading.Event()
        # The records its event source mapping's filter lets through (the folds' by default).
        self._keep = keep
        self._name = name
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.poll_once()
            except Exception as error:  # the emulator stopping, a handler bug: the next poll tries again
                say(f"{self._name} poll failed: {type(error).__name__}: {error}")

    def poll_once(self) -> int:
        """Reads the stream and delivers the changes pending; returns how many were folded."""
        self._pending += self._read()
        folded = 0
        while self._pending:
            batch = self._pending[:FOLD_BATCH_SIZE]
            first_failed = self._deliver(batch)
            if first_failed is None:
                folded += len(batch)
                self._pending = self._pending[len(batch) :]
                self._retries = 0
                continue
            folded += first_failed
            self._retries = self._retries + 1 if first_failed == 0 else 1
            if self._retries <= FOLD_RETRIES:
                # From the first failed record on, at the next poll (AWS retries at once).
                self._pending = self._pending[first_failed:]
            else:
                say(
                    f"{self._name} gave up on {len(batch) - first_failed} stream record(s) after {FOLD_RETRIES} retries"
                )
                self._pending = self._pending[len(batch) :]
                self._retries = 0
            break
        return folded

    def _deliver(self, batch: list[Record]) -> int | None:
        """The position of the batch's first failed record; None when none failed."""
        try:
            result = self._handler({"Records": batch}, LambdaContext(self._timeout)) or {}
        except Exception as error:
            say(f"{self._name} failed: {type(error).__name__}: {error}")
            return 0
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        return next((n for n, record in enumerate(batch) if record["dynamodb"]["SequenceNumber"] in failed), None)

    def _read(self) -> list[Record]:
        if not self._iterators:
            self._open()
        changes = []
        for shard, iterator in self._iterators.items():
            while not self._stopping.is_set():
                page = self._streams.get_records(ShardIterator=iterator, Limit=RECORDS_PER_READ)
                iterator = page["NextShardIterator"]
                changes += [{**r, "eventSourceARN": self._stream_arn} for r in page["Records"] if self._keep(r)]
                if len(page["Records"]) < RECORDS_PER_READ:
                    break
            self._iterators[shard] = iterator
        return changes

    def _open(self) -> None:
        """From the oldest record of each of the stream's shards (TRIM_HORIZON, as the mapping)."""
        (stream,) = self._streams.list_streams(TableName=self._table)["Streams"]
        self._stream_arn = stream["StreamArn"]
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                StreamArn=self._stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
