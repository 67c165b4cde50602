"""The container's one DynamoDB connection, shared by every table and thread.

PynamoDB builds a connection per model class and its botocore client lazily
on first use, with a botocore session per thread and no lock: a fresh
container whose first batch runs in ten threads builds up to ten sessions and
clients at once, each waiting seconds inside `create_client`. Here the client
is built once, eagerly and under a lock, and every model's table connection
is pointed at it. Only storage/ may touch PynamoDB; this is where its private
per-model cache is set, once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pynamodb.connection import Connection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.config import Settings

_build_lock = threading.Lock()


class DynamoConnection:
    """One botocore client for a stage's tables; build it once per container (wiring)."""

    def __init__(
        self, settings: Settings, models: tuple[type[Model], ...], table_names: dict[type[Model], str]
    ) -> None:
        with _build_lock:
            self._connection = Connection(region=settings.region, host=settings.aws_endpoint_url)
            # Built here, not by the first request of each thread.
            self._connection.client  # noqa: B018
            for model in models:
                model.Meta.table_name = table_names[model]
                model.Meta.region = settings.region
                model.Meta.host = settings.aws_endpoint_url
                model._connection = None  # drop a connection bound to another stage or endpoint
                table = model._get_connection()
                self._connection.add_meta_table(table.get_meta_table())
                table.connection = self._connection

    @property
    def connection(self) -> Connection:
        """PynamoDB's low-level connection (batch reads the models do not offer)."""
        return self._connection

    @contextmanager
    def transaction(self) -> Iterator[TransactWrite]:
        """A write transaction on the shared client; committed when the block ends."""
        with TransactWrite(connection=self._connection) as transaction:
            yield transaction
