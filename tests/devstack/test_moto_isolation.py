"""The local stack's emulated DynamoDB never lets a write land in the middle
of a query (devstack.moto_transactions): moto sorts an index's items, then
filters them, so an item updated in between came out of order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import Table

TABLE = "isolation"
WRITE_WAIT_S = 0.5


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[
                {"AttributeName": "tenant", "AttributeType": "S"},
                {"AttributeName": "created", "AttributeType": "N"},
                {"AttributeName": "status_sort", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "tenant", "KeyType": "HASH"},
                {"AttributeName": "created", "KeyType": "RANGE"},
            ],
            LocalSecondaryIndexes=[
                {
                    "IndexName": "by-status",
                    "KeySchema": [
                        {"AttributeName": "tenant", "KeyType": "HASH"},
                        {"AttributeName": "status_sort", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def _put(client: Any, created: int, status: str) -> None:
    client.put_item(
        TableName=TABLE,
        Item={
            "tenant": {"S": "t"},
            "created": {"N": str(created)},
            "status_sort": {"S": f"{status}#{created}"},
        },
    )


def _set_status(client: Any, created: int, status: str) -> None:
    client.update_item(
        TableName=TABLE,
        Key={"tenant": {"S": "t"}, "created": {"N": str(created)}},
        UpdateExpression="SET status_sort = :s",
        ExpressionAttributeValues={":s": {"S": f"{status}#{created}"}},
    )


def _pinned_newest_first(client: Any) -> list[int]:
    items = client.query(
        TableName=TABLE,
        IndexName="by-status",
        ScanIndexForward=False,
        KeyConditionExpression="tenant = :t AND status_sort BETWEEN :lo AND :hi",
        ExpressionAttributeValues={":t": {"S": "t"}, ":lo": {"S": "pinned#"}, ":hi": {"S": "pinned#~"}},
    )["Items"]
    return [int(item["created"]["N"]) for item in items]


def test_given_a_status_query_when_an_item_changes_status_meanwhile_then_the_results_stay_in_order(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an older pin still pinning and a newer one pinned
    _put(dynamodb, 1, "pinning")
    _put(dynamodb, 2, "pinned")
    writer: list[threading.Thread] = []
    sort = Table.sorted_items

    def sort_then_write(self: Table, *args: Any) -> Any:
        ordered = sort(self, *args)
        if not writer:  # the older pin becomes pinned between the sort and the filter
            writer.append(threading.Thread(target=_set_status, args=(dynamodb, 1, "pinned")))
            writer[0].start()
            writer[0].join(WRITE_WAIT_S)
        return ordered

    monkeypatch.setattr(Table, "sorted_items", sort_then_write)

    # When listing the pinned ones while that write comes in
    during = _pinned_newest_first(dynamodb)
    writer[0].join()

    # Then the query saw the table before the write, in order; the next one after it
    assert during == [2]
    assert _pinned_newest_first(dynamodb) == [2, 1]
