"""The read side of the archives in S3: a CAR streamed or read by ranges, its
block index, a presigned URL, and archives in a class that must be thawed.

An archive written by chalicelib.cold.archiver is a CARv1 object and a block
index object. Both are read here for restores (the whole CAR, streamed) and
for retrieval (one block by its index entry, or the whole CAR). Objects that
a lifecycle rule moved to S3 Glacier Deep Archive (or Flexible Retrieval)
cannot be read until a restore request has made a temporary copy: a read of
one asks S3 for that copy and raises ArchiveThawing, which says when to come
back. Glacier Instant Retrieval (the default colder class) reads at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from botocore.exceptions import ClientError

from chalicelib.cold.archive_repository import ArchivedCar
from chalicelib.cold.block_index import BlockIndex, IndexEntry
from chalicelib.cold.cids import Cid, verify_block

# The days a thawed copy stays readable: long enough for the restore or
# retrieval that asked for it to come back and finish.
THAW_DAYS = 2
# S3's documented restore times for the Standard retrieval tier: Deep Archive
# within 12 hours, Flexible Retrieval 3-5 hours. The wait we announce.
THAW_SECONDS = {"DEEP_ARCHIVE": 12 * 3600, "GLACIER": 5 * 3600}
# What S3 answers to reads of an unthawed object, and to a second restore request.
_NOT_THAWED = "InvalidObjectState"
_ALREADY_THAWING = "RestoreAlreadyInProgress"
READ_CHUNK_BYTES = 1 << 20


class ArchiveThawing(Exception):
    """The object is in a class that needs a restore first; one is under way."""

    def __init__(self, key: str, storage_class: str, retry_after_seconds: int) -> None:
        super().__init__(
            f"the archive {key} is in {storage_class}: S3 is restoring a readable copy"
            f" (about {retry_after_seconds // 3600} h)"
        )
        self.key = key
        self.storage_class = storage_class
        self.retry_after_seconds = retry_after_seconds


class ArchiveReader(Protocol):
    """The S3 calls that read archives (a botocore S3 client)."""

    def get_object(self, *, Bucket: str, Key: str, **kwargs: Any) -> Mapping[str, Any]: ...
    def head_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]: ...
    def restore_object(self, *, Bucket: str, Key: str, RestoreRequest: Mapping[str, Any]) -> Mapping[str, Any]: ...
    def generate_presigned_url(
        self, ClientMethod: str, Params: Mapping[str, Any] | None = None, ExpiresIn: int = 3600
    ) -> str: ...


class ArchiveObjects:
    def __init__(self, s3: ArchiveReader, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def car_chunks(self, car: ArchivedCar, chunk_bytes: int = READ_CHUNK_BYTES) -> Iterator[bytes]:
        """The CAR's bytes, streamed; ArchiveThawing before the first chunk
        when it must be restored first."""
        body = self._get(car.car_key)["Body"]
        try:
            yield from body.iter_chunks(chunk_bytes)
        finally:
            body.close()

    def index(self, car: ArchivedCar) -> BlockIndex:
        body = self._get(car.index_key)["Body"]
        try:
            return BlockIndex.from_bytes(body.read())
        finally:
            body.close()

    def block(self, car: ArchivedCar, cid: Cid, entry: IndexEntry) -> bytes:
        """One block by a ranged read, verified against its CID (BlockMismatch otherwise)."""
        last = entry.offset + entry.length - 1
        body = self._get(car.car_key, Range=f"bytes={entry.offset}-{last}")["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        verify_block(cid, data)
        return data

    def presigned_url(self, car: ArchivedCar, seconds: int, filename: str | None = None) -> str:
        """A URL that reads the CAR without credentials for `seconds`; a thawed
        copy is what it reads from a class that needs a restore."""
        self._check_readable(car.car_key)
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": car.car_key}
        params["ResponseContentType"] = "application/vnd.ipld.car; version=1"
        if filename is not None:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)

    def _get(self, key: str, **kwargs: Any) -> Mapping[str, Any]:
        try:
            return self._s3.get_object(Bucket=self._bucket, Key=key, **kwargs)
        except ClientError as error:
            if _code(error) != _NOT_THAWED:
                raise
        raise self._thaw(key, self._s3.head_object(Bucket=self._bucket, Key=key))

    def _check_readable(self, key: str) -> None:
        head = self._s3.head_object(Bucket=self._bucket, Key=key)
        if head.get("StorageClass") in THAW_SECONDS and 'ongoing-request="false"' not in head.get("Restore", ""):
            raise self._thaw(key, head)

    def _thaw(self, key: str, head: Mapping[str, Any]) -> ArchiveThawing:
        """Ask S3 for a readable copy (once: a request under way is left be)."""
        storage_class = str(head.get("StorageClass", "DEEP_ARCHIVE"))
        try:
            self._s3.restore_object(
                Bucket=self._bucket,
                Key=key,
                RestoreRequest={"Days": THAW_DAYS, "GlacierJobParameters": {"Tier": "Standard"}},
            )
        except ClientError as error:
            if _code(error) != _ALREADY_THAWING:
                raise
        return ArchiveThawing(key, storage_class, THAW_SECONDS.get(storage_class, THAW_SECONDS["DEEP_ARCHIVE"]))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
