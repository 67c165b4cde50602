"""Tables as infra/ deploys them, and tables of another layout, made directly
with CreateTable (moto) for the layout checks to find."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from pynamodb.models import Model

from chalicelib.config import Settings
from chalicelib.storage.tables import table_name
from devstack.aws import MotoServer
from infra.render import STAGE_OPTIONS, table

_CREATE_TABLE_KEYS = (
    "TableName",
    "BillingMode",
    "AttributeDefinitions",
    "KeySchema",
    "LocalSecondaryIndexes",
    "GlobalSecondaryIndexes",
)


def deployed_spec(settings: Settings, model: type[Model]) -> dict[str, Any]:
    """CreateTable's parameters for the model's table as the service stack's template declares it."""
    properties = table(settings, model, STAGE_OPTIONS["dev"])["Properties"]
    return {key: properties[key] for key in _CREATE_TABLE_KEYS if key in properties}


def old_pins_spec(settings: Settings) -> dict[str, Any]:
    """The pins table of the layout before shards (a stage or `.dev/` made by
    older code): every pin of a tenant under one partition key, four
    ALL-projected local indexes."""
    sort_keys = {"status-created": "status_sort", "cid-created": "cid_sort", "name-created": "name_sort"}
    sort_keys["folded-name-created"] = "folded_name_sort"
    return {
        "TableName": f"{settings.table_prefix}-pins",
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "tenant_id", "AttributeType": "S"},
            {"AttributeName": "created_ms", "AttributeType": "N"},
            *({"AttributeName": name, "AttributeType": "S"} for name in sort_keys.values()),
        ],
        "KeySchema": [
            {"AttributeName": "tenant_id", "KeyType": "HASH"},
            {"AttributeName": "created_ms", "KeyType": "RANGE"},
        ],
        "LocalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": "tenant_id", "KeyType": "HASH"},
                    {"AttributeName": sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, sort_key in sort_keys.items()
        ],
    }


def create(spec: dict[str, Any], endpoint_url: str | None = None) -> None:
    boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint_url).create_table(**spec)


def existing_tables(settings: Settings, models: tuple[type[Model], ...]) -> set[str]:
    names = set(boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"])
    return names & {table_name(settings, model) for model in models}


@contextmanager
def emulated_aws() -> Iterator[str]:
    """A moto server (as the local stack runs it) for the block; yields its endpoint.

    Its state is the process's moto state, so it is reset when the block ends.
    """
    server = MotoServer(0)
    server.start()
    try:
        yield server.endpoint_url
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{server.endpoint_url}/moto-api/reset", method="POST")).close()
        server.stop()
