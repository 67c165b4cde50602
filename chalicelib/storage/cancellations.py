"""Why DynamoDB cancelled a transaction, item by item."""

from __future__ import annotations

from pynamodb.exceptions import TransactWriteError


def cancellation_codes(error: TransactWriteError) -> list[str | None]:
    """One code per transaction item, in DynamoDB's order (condition checks,
    deletes, puts, updates); None for items that were not the cause."""
    return [reason.code if reason else None for reason in (error.cancellation_reasons or [])]
