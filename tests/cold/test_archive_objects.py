"""Reading archives back from S3 (moto): streamed, by ranges, and thawed."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from chalicelib.cold.archive_objects import THAW_SECONDS, ArchiveObjects, ArchiveThawing
from chalicelib.cold.archive_repository import ArchivedCar
from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.car import CarReader, write_car
from chalicelib.cold.cids import BlockMismatch, Cid
from tests.cold.dags import unixfs_file
from tests.cold.s3 import s3_client

BUCKET = "pinning-test-archives"


def _stored(s3: object, storage_class: str = "STANDARD") -> tuple[ArchivedCar, bytes, list[tuple[Cid, bytes]]]:
    root, blocks = unixfs_file(random.Random(7).randbytes(700_000))
    car = b"".join(write_car([root], blocks))
    index = BlockIndex.from_blocks(CarReader().blocks([car]))
    archived = ArchivedCar(f"archives/{root}.car", f"archives/{root}.idx", len(car), "", "", "", 0, 0)
    s3.put_object(Bucket=BUCKET, Key=archived.car_key, Body=car, StorageClass=storage_class)  # type: ignore[attr-defined]
    s3.put_object(Bucket=BUCKET, Key=archived.index_key, Body=index.to_bytes())  # type: ignore[attr-defined]
    return archived, car, blocks


@pytest.fixture
def s3(aws: None) -> Iterator[object]:
    client = s3_client()
    client.create_bucket(Bucket=BUCKET)
    yield client


def test_the_car_streams_back_byte_for_byte_in_bounded_chunks(s3: object) -> None:
    # Given an archived CAR of 700 KB
    archived, car, _ = _stored(s3)
    # When it is read in 64 KiB chunks
    chunks = list(ArchiveObjects(s3, BUCKET).car_chunks(archived, chunk_bytes=64 * 1024))  # type: ignore[arg-type]
    # Then the bytes are the CAR's and no chunk is larger than asked
    assert b"".join(chunks) == car
    assert max(len(chunk) for chunk in chunks) <= 64 * 1024


def test_a_block_is_read_by_its_index_entry_and_verified(s3: object) -> None:
    # Given an archived CAR and its index
    archived, car, blocks = _stored(s3)
    objects = ArchiveObjects(s3, BUCKET)  # type: ignore[arg-type]
    index = objects.index(archived)
    # When every block is read by its range
    # Then each is the block's bytes
    for cid, data in blocks:
        entry = index.lookup(cid)
        assert entry is not None
        assert objects.block(archived, cid, entry) == data


def test_a_range_that_is_not_the_block_is_refused(s3: object) -> None:
    # Given an index entry pointing one byte off
    archived, _, blocks = _stored(s3)
    objects = ArchiveObjects(s3, BUCKET)  # type: ignore[arg-type]
    cid = blocks[1][0]
    entry = objects.index(archived).lookup(cid)
    assert entry is not None
    shifted = type(entry)(entry.key, entry.offset + 1, entry.length)
    # When the block is read
    # Then its bytes do not hash to its CID: nothing unverified comes back
    with pytest.raises(BlockMismatch):
        objects.block(archived, cid, shifted)


def test_a_deep_archive_object_asks_for_a_thaw_and_says_when_to_come_back(s3: object) -> None:
    # Given a CAR a lifecycle rule moved to Deep Archive
    archived, car, _ = _stored(s3, storage_class="DEEP_ARCHIVE")
    objects = ArchiveObjects(s3, BUCKET)  # type: ignore[arg-type]
    # When it is read
    with pytest.raises(ArchiveThawing) as thawing:
        next(objects.car_chunks(archived))
    # Then a restore was requested and the wait is Deep Archive's
    assert thawing.value.retry_after_seconds == THAW_SECONDS["DEEP_ARCHIVE"]
    assert 'ongoing-request="false"' in s3.head_object(Bucket=BUCKET, Key=archived.car_key)["Restore"]  # type: ignore[attr-defined]
    # And once S3 made the copy (moto's restore is immediate) it reads whole
    assert b"".join(objects.car_chunks(archived)) == car


def test_a_presigned_url_of_a_deep_archive_object_waits_for_its_thaw(s3: object) -> None:
    # Given a CAR in Deep Archive, never thawed
    archived, _, _ = _stored(s3, storage_class="DEEP_ARCHIVE")
    objects = ArchiveObjects(s3, BUCKET)  # type: ignore[arg-type]
    # When a URL is asked for
    # Then none is given before the copy exists (it would answer 403)
    with pytest.raises(ArchiveThawing):
        objects.presigned_url(archived, 300)
    # And once thawed, the URL names the object and expires
    url = objects.presigned_url(archived, 300, filename="x.car")
    assert archived.car_key in url and "Expires=" in url


def test_a_standard_object_has_a_presigned_url_at_once(s3: object) -> None:
    archived, _, _ = _stored(s3)
    url = ArchiveObjects(s3, BUCKET).presigned_url(archived, 60)  # type: ignore[arg-type]
    assert archived.car_key in url
