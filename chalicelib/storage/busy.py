"""When DynamoDB is too busy to answer: a reason to retry, not a server fault."""

from __future__ import annotations

from pynamodb.exceptions import PynamoDBException, TransactWriteError

from chalicelib.storage.cancellations import cancellation_codes
from chalicelib.storage.pin_counter import CountsUnavailable

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


def storage_busy(error: BaseException) -> bool:
    """True when a request failed only because the tables were throttled or
    contended, so the client should retry later."""
    if isinstance(error, CountsUnavailable):
        return True
    if isinstance(error, TransactWriteError) and _BUSY_CANCELLATIONS.intersection(cancellation_codes(error)):
        return True
    return isinstance(error, PynamoDBException) and error.cause_response_code in _BUSY_CODES
