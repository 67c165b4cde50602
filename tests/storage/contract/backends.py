"""What the contract suites run against: in memory, or DynamoDB (moto)."""

from __future__ import annotations

import pytest

from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.tables import bind_models

BACKENDS = ["memory", "dynamo"]


def dynamo_connection(request: pytest.FixtureRequest) -> DynamoConnection:
    """The stage's tables on moto (the `settings` fixture), through one shared client."""
    return bind_models(request.getfixturevalue("settings"))
