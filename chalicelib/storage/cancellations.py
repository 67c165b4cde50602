"""Why DynamoDB refused a write: a condition that did not hold, item by item."""

from __future__ import annotations

from pynamodb.exceptions import PynamoDBException, TransactWriteError

CONDITION_FAILED = "ConditionalCheckFailed"


def cancellation_codes(error: TransactWriteError) -> list[str | None]:
    """One code per transaction item, in DynamoDB's order (condition checks,
    deletes, puts, updates); None for items that were not the cause."""
    return [reason.code if reason else None for reason in (error.cancellation_reasons or [])]


def failed_condition(error: TransactWriteError) -> int | None:
    """The position of the first transaction item whose condition did not hold."""
    codes = cancellation_codes(error)
    return codes.index(CONDITION_FAILED) if CONDITION_FAILED in codes else None


def condition_failed(error: PynamoDBException) -> bool:
    """A single-item write (put, update, delete) refused by its condition."""
    return error.cause_response_code == f"{CONDITION_FAILED}Exception"


def conflicted(error: TransactWriteError) -> bool:
    """Refused because another transaction was writing one of its items."""
    return "TransactionConflict" in cancellation_codes(error)
