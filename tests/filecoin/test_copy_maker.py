"""The copy maker's faults: what a `filecoin_copy` message does when the
archive, the provider or the backend is not there, and when it is given up."""

from __future__ import annotations

import time

import pytest

from chalicelib.cold.archive_objects import ArchiveThawing
from chalicelib.filecoin.backend import BackendUnavailable, CopyState
from chalicelib.queue.messages import FilecoinCopyRequested
from chalicelib.worker.outcomes import Done, Later
from tests.filecoin.harness import CID, build


def pending() -> tuple:
    """A CID whose one wanted copy was begun: the harness and its message."""
    copies = build()
    copies.archived_request(meta={"filecoin.copies": "1"})
    copies.run()
    (message,) = copies.queue
    copies.queue.clear()
    return copies, message


def make(copies, message: FilecoinCopyRequested):
    return copies.maker.make(message, time.monotonic() + 60)


def test_an_unreachable_backend_is_delivered_again_with_the_copy_still_pending():
    copies, message = pending()
    copies.backend.down = True
    with pytest.raises(BackendUnavailable):
        make(copies, message)
    (record,) = copies.records()
    assert (record.receipt.state, record.attempt) == (CopyState.PENDING, 0)
    # When it is back, then the redelivery makes it
    copies.backend.down = False
    assert make(copies, message) == Done()
    assert copies.records()[0].receipt.state is CopyState.ADDING


def test_a_provider_no_longer_listed_or_an_archive_gone_fails_the_copy():
    copies, message = pending()
    copies.backend.listed = [p for p in copies.backend.listed if p.provider_id != message.provider_id]
    assert make(copies, message) == Done()
    assert copies.records()[0].receipt.detail == "the provider is no longer listed"
    copies, message = pending()
    copies.archives.states.pop(CID)
    assert make(copies, message) == Done()
    assert (copies.records()[0].receipt.state, copies.records()[0].receipt.detail) == (
        CopyState.FAILED,
        "the CID's archive is gone",
    )


def test_a_car_in_a_cold_storage_class_comes_back_once_s3_has_thawed_it():
    copies, message = pending()

    def thawing(*args, **kwargs):
        raise ArchiveThawing("archives/x.car", "DEEP_ARCHIVE", 12 * 3600)

    copies.backend.store = thawing
    outcome = make(copies, message)
    assert isinstance(outcome, Later) and outcome.delay_seconds == 900
    assert copies.records()[0].receipt.state is CopyState.PENDING


def test_a_copy_given_up_by_the_queue_fails_and_is_repaired_elsewhere():
    copies, message = pending()
    copies.maker.give_up(message)
    (record,) = copies.records()
    assert (record.receipt.state, record.receipt.detail) == (CopyState.FAILED, "gave up after repeated failures")
    copies.settle()
    (repaired,) = copies.in_state(CopyState.PROVING)
    assert repaired != message.provider_id
    # And giving up a copy that is no longer pending changes nothing
    copies.maker.give_up(FilecoinCopyRequested(CID, repaired, 0))
    assert copies.in_state(CopyState.PROVING) == [repaired]
