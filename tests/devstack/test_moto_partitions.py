"""The local stack's DynamoDB Query reads the partition and key range it names
(devstack.moto_partitions), and answers what moto answers."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto.dynamodb.models.table import Table

from devstack import moto_partitions

QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "shard-b"}}},
    {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
        "ExpressionAttributeValues": {":p": {"S": "shard-b"}, ":s": {"S": "c#"}},
    },
    {
        "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
        "ExpressionAttributeValues": {":p": {"S": "shard-b"}, ":lo": {"S": "c#03"}, ":hi": {"S": "c#07"}},
        "ScanIndexForward": False,
    },
    {
        "KeyConditionExpression": "pk = :p AND sk < :hi",
        "ExpressionAttributeValues": {":p": {"S": "shard-a"}, ":hi": {"S": "p#05"}},
    },
    {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
        "FilterExpression": "n > :n",
        "ExpressionAttributeValues": {":p": {"S": "shard-b"}, ":s": {"S": "p#"}, ":n": {"N": "4"}},
    },
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "no-such-shard"}}},
    {
        "IndexName": "by-kind",
        "KeyConditionExpression": "kind = :k",
        "ExpressionAttributeValues": {":k": {"S": "change"}},
    },
]


@pytest.fixture
def table(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    for owner, name in moto_partitions.PATCHES:
        monkeypatch.setattr(owner, name, owner.__dict__[name])  # restored after the test
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="pins",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "kind")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-kind",
                "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    # three partitions, each with pins (p#) and changes (c#) in its sort keys
    for shard in ("shard-a", "shard-b", "shard-c"):
        for n in range(10):
            for prefix, kind in (("p#", "pin"), ("c#", "change")):
                item = {"pk": {"S": shard}, "sk": {"S": f"{prefix}{n:02d}"}, "kind": {"S": kind}, "n": {"N": str(n)}}
                client.put_item(TableName="pins", Item=item)
    return client


def all_pages(client: Any, query: dict[str, Any], limit: int | None) -> list[list[dict[str, Any]]]:
    pages, start = [], None
    while True:
        paging = ({"Limit": limit} if limit else {}) | ({"ExclusiveStartKey": start} if start else {})
        reply = client.query(TableName="pins", **query, **paging)
        pages.append(reply["Items"])
        start = reply.get("LastEvaluatedKey")
        if start is None:
            # moto may end on an empty page where items outside the key condition
            # follow a full one (DynamoDB too may answer so); the emulation does not
            return pages[:-1] if len(pages) > 1 and not pages[-1] else pages


@pytest.mark.parametrize("query", QUERIES)
def test_a_query_answers_as_moto_does(table: Any, query: dict[str, Any]) -> None:
    # given: moto's answers, whole and in pages of 3
    by_moto = [all_pages(table, query, None), all_pages(table, query, 3)]

    # when: the partition-scoped query is installed
    moto_partitions.install()

    # then: the same items in the same pages
    assert [all_pages(table, query, None), all_pages(table, query, 3)] == by_moto
    assert by_moto[0][0] or "no-such-shard" in str(query)


def test_a_table_query_lists_only_the_items_in_its_key_condition(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the partition-scoped query, and a record of the items moto's query code is handed
    moto_partitions.install()
    handed: list[int] = []
    scoped = Table.all_items

    def recorded(self: Table) -> Any:
        items = scoped(self)
        handed.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", recorded)

    # when: a query of one partition's changes between c#03 and c#07
    table.query(TableName="pins", **QUERIES[2])

    # then: moto's query code saw those 5 items, not the table's 60
    assert handed == [5]


def test_a_numeric_sort_key_is_compared_as_a_number(table: Any) -> None:
    # given: a table whose sort key is a number, with 2, 10 and 30 in one partition
    table.create_table(
        TableName="numbers",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in (2, 10, 30):
        table.put_item(TableName="numbers", Item={"pk": {"S": "a"}, "sk": {"N": str(n)}})
    query = {
        "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
        "ExpressionAttributeValues": {":p": {"S": "a"}, ":lo": {"N": "3"}, ":hi": {"N": "20"}},
    }
    by_moto = table.query(TableName="numbers", **query)["Items"]

    # when: the partition-scoped query is installed
    moto_partitions.install()

    # then: 10 alone is between 3 and 20 (as a string, "10" < "3" and "2" is not)
    assert table.query(TableName="numbers", **query)["Items"] == by_moto == [{"pk": {"S": "a"}, "sk": {"N": "10"}}]


@pytest.mark.parametrize("query", [q for q in QUERIES if "sk" in q["KeyConditionExpression"]])
def test_a_sort_key_condition_is_found_by_bisection_as_moto_answers_it(
    table: Any, query: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: moto's answers, whole and in pages of 3
    by_moto = [all_pages(table, query, None), all_pages(table, query, 3)]
    # and: the partition-scoped query, with a record of the conditions bisected
    moto_partitions.install()
    bisected: list[str] = []
    matching = moto_partitions._Partition.matching

    def recorded(self: Any, comparison: str, operands: list[Any]) -> Any:
        found = matching(self, comparison, operands)
        bisected.append(comparison if found is not None else "")
        return found

    monkeypatch.setattr(moto_partitions._Partition, "matching", recorded)

    # when: it is asked again
    answered = [all_pages(table, query, None), all_pages(table, query, 3)]

    # then: the same items in the same pages, each found by bisecting the partition's ordered keys
    assert answered == by_moto
    assert bisected and all(bisected)


def test_the_ordered_keys_follow_the_partitions_puts_and_deletes(table: Any) -> None:
    # given: the partition-scoped query, asked once (the partition's keys put in order)
    moto_partitions.install()
    query = QUERIES[1]  # shard-b's c# items
    assert len(table.query(TableName="pins", **query)["Items"]) == 10

    # when: one of them is deleted, one put anew between others, one put again
    table.delete_item(TableName="pins", Key={"pk": {"S": "shard-b"}, "sk": {"S": "c#04"}})
    table.put_item(TableName="pins", Item={"pk": {"S": "shard-b"}, "sk": {"S": "c#04a"}, "kind": {"S": "change"}})
    table.put_item(TableName="pins", Item={"pk": {"S": "shard-b"}, "sk": {"S": "c#05"}, "kind": {"S": "change"}})

    # then: the query finds what the partition holds, in order
    keys = [item["sk"]["S"] for item in table.query(TableName="pins", **query)["Items"]]
    assert keys == ["c#00", "c#01", "c#02", "c#03", "c#04a", "c#05", "c#06", "c#07", "c#08", "c#09"]
