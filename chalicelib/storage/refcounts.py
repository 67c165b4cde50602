"""Holder items with a count beside them (a fleet node's pin, a CID's
archive): letting one holder go is one transaction whose outcome says what
the caller does next."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from chalicelib.storage.cancellations import conflicted, failed_condition
from chalicelib.storage.connection import DynamoConnection


class Release(Enum):
    DONE = "done"
    # The holder item was gone already: nothing changed.
    NOT_HELD = "not held"
    # The count is no longer the one read (or another transaction was writing
    # it): read it again.
    RECOUNT = "recount"


def release_holder(
    dynamo: DynamoConnection,
    holder: Model,
    holder_exists: Condition,
    count: Model,
    actions: Sequence[Action],
    count_read: Condition,
) -> Release:
    """Delete `holder` and apply `actions` to `count` in one transaction, on
    condition that the holder exists and the count is the one read."""
    try:
        with dynamo.transaction() as tx:
            tx.delete(holder, condition=holder_exists)
            tx.update(count, actions=list(actions), condition=count_read)
    except TransactWriteError as error:
        failed = failed_condition(error)
        if failed == 0:
            return Release.NOT_HELD
        if failed == 1 or conflicted(error):
            return Release.RECOUNT
        raise
    return Release.DONE
