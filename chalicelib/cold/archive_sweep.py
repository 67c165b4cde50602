"""Deletes archives whose last request went more than a grace ago.

The last holder to leave an archive marks it orphaned (its time, in the
state item, which puts it in the orphans index). A scheduled run reads the
oldest orphans past the grace (one Query of that sparse index, never a
Scan), and for each one still without a holder: marks it DELETING (only if
no holder came and went since it was read: a new hold is then refused, and
retried by its message, until the archive is gone), deletes its S3 objects,
then forgets the state item. A run cut short leaves the archive DELETING and
orphaned: the next run finishes it. An archive with Filecoin copies has
them ended first (`end_copies`, chalicelib.filecoin.tracker): while that
fails (the backend unreachable) the archive stays, for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chalicelib.cold.archive_repository import DELETING, ArchiveRepository
from chalicelib.cold.archiver import ObjectStore, archive_keys
from chalicelib.pins.timestamps import now_ms

logger = logging.getLogger("pinning.archiver")


class ArchiveSweep:
    def __init__(
        self,
        archives: ArchiveRepository,
        s3: ObjectStore,
        bucket: str,
        prefix: str,
        grace_seconds: int,
        limit: int,
        clock: Callable[[], int] = now_ms,
        end_copies: Callable[[str], bool] = lambda cid: True,
    ) -> None:
        self._archives = archives
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix
        self._grace_ms = grace_seconds * 1000
        self._limit = limit
        self._clock = clock
        # Ends the CID's Filecoin copies (their piece is this archive); False: not yet.
        self._end_copies = end_copies

    def run(self) -> int:
        """Delete up to `limit` archives orphaned longer than the grace; returns how many."""
        before = self._clock() - self._grace_ms
        deleted = 0
        for orphan in self._archives.orphaned(before, self._limit):
            state = self._archives.state(orphan.cid)
            if state is None or state.holders or state.orphaned_ms is None or state.orphaned_ms >= before:
                continue  # held again (the index lags), or orphaned anew since
            if not self._end_copies(orphan.cid):
                continue
            if state.state != DELETING and not self._archives.start_deleting(
                orphan.cid, state.orphaned_ms, state.changes
            ):
                continue
            # S3 deletes are idempotent: a key never uploaded is no error.
            for key in archive_keys(self._prefix, orphan.cid):
                self._s3.delete_object(Bucket=self._bucket, Key=key)
            if self._archives.forget(orphan.cid):
                deleted += 1
                logger.info("archive deleted", extra={"cid": orphan.cid, "orphaned_ms": state.orphaned_ms})
        return deleted
