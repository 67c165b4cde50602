"""A DynamoDB failure as plain values, for tools that report it (the CLI):
nothing outside storage/ needs to know PynamoDB's exceptions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pynamodb.exceptions import PynamoDBException

MISSING_TABLE = "ResourceNotFoundException"


@dataclass(frozen=True)
class StorageFailure:
    code: str | None  # DynamoDB's error code; None when it never answered
    message: str
    table: str | None = None  # the table a missing-table error names


def storage_failure(error: BaseException) -> StorageFailure | None:
    """What went wrong talking to DynamoDB, or None for any other error."""
    if not isinstance(error, PynamoDBException):
        return None
    code = error.cause_response_code
    if code is None:
        return StorageFailure(None, " ".join(str(error.msg).split()))
    named = re.search(r"on table \(([^)]+)\)", str(error))
    return StorageFailure(code, error.cause_response_message or "", named.group(1) if named else None)
