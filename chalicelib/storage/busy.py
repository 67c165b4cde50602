"""When DynamoDB is too busy to answer: the domain's StorageBusy, not a fault."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pynamodb.exceptions import PynamoDBException, TransactWriteError

from chalicelib.busy import StorageBusy
from chalicelib.storage.cancellations import cancellation_codes

# botocore retries throttling itself, and the store retries conflicts: seeing
# one of these here means those retries ran out.
_BUSY_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
_BUSY_CANCELLATIONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


def is_busy(error: PynamoDBException) -> bool:
    """True when a request failed only because the tables were throttled or
    contended, so the client should retry later."""
    if isinstance(error, TransactWriteError) and _BUSY_CANCELLATIONS.intersection(cancellation_codes(error)):
        return True
    return error.cause_response_code in _BUSY_CODES


@contextmanager
def busy_as_storage_busy() -> Iterator[None]:
    """Raises StorageBusy for a busy table's error inside the block; any
    other error goes through unchanged."""
    try:
        yield
    except PynamoDBException as error:
        if is_busy(error):
            raise StorageBusy(str(error)) from error
        raise
