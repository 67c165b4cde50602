"""The deployed tables are the ones the code's PynamoDB models describe:
keys, attribute types, indexes with their projections, TTL, stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pynamodb.attributes import TTLAttribute
from pynamodb.indexes import GlobalSecondaryIndex

from chalicelib.config import Settings
from chalicelib.storage.tables import MODELS, table_name
from infra.render import STAGE_OPTIONS, output_path


def key_schema(attributes: Any) -> set[tuple[str, str]]:
    """(name, HASH or RANGE) of the key attributes among `attributes`."""
    return {
        (a.attr_name, "HASH" if a.is_hash_key else "RANGE")
        for a in attributes.values()
        if a.is_hash_key or a.is_range_key
    }


def model_view(model) -> dict[str, Any]:
    """What DynamoDB must know of a model, read from its attributes."""
    attributes = model.get_attributes()
    keys = key_schema(attributes)
    indexes = {}
    for index in model._indexes.values():
        kind = "global" if isinstance(index, GlobalSecondaryIndex) else "local"
        index_keys = frozenset(key_schema(index.Meta.attributes))
        indexes[index.Meta.index_name] = (kind, index_keys, index.Meta.projection.projection_type)
    # Every attribute some key (of the table or an index) is made of, with its type.
    key_names = {name for name, _ in keys} | {name for _, index_keys, _ in indexes.values() for name, _ in index_keys}
    ttl = [a.attr_name for a in attributes.values() if isinstance(a, TTLAttribute)]
    return {
        "keys": keys,
        "types": {(name, attributes[name].attr_type) for name in key_names},
        "indexes": indexes,
        "ttl": ttl[0] if ttl else None,
        "stream": getattr(model.Meta, "stream_view_type", None),
    }


def template_view(properties: dict[str, Any]) -> dict[str, Any]:
    def keys(schema):
        return {(k["AttributeName"], k["KeyType"]) for k in schema}

    indexes = {}
    for kind, key in (("global", "GlobalSecondaryIndexes"), ("local", "LocalSecondaryIndexes")):
        for index in properties.get(key, []):
            indexes[index["IndexName"]] = (
                kind,
                frozenset(keys(index["KeySchema"])),
                index["Projection"]["ProjectionType"],
            )
    ttl = properties.get("TimeToLiveSpecification")
    return {
        "keys": keys(properties["KeySchema"]),
        "types": {(a["AttributeName"], a["AttributeType"]) for a in properties["AttributeDefinitions"]},
        "indexes": indexes,
        "ttl": ttl["AttributeName"] if ttl and ttl["Enabled"] else None,
        "stream": properties.get("StreamSpecification", {}).get("StreamViewType"),
    }


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_every_model_has_its_table_with_the_same_keys_indexes_ttl_and_stream(stage):
    resources = json.loads(output_path(stage).read_text(encoding="utf-8"))["Resources"]
    tables = {
        r["Properties"]["TableName"]: r["Properties"]
        for r in resources.values()
        if r.get("Type") == "AWS::DynamoDB::Table"
    }
    settings = Settings.from_env({"STAGE": stage, "TABLE_PREFIX": f"pinning-{stage}"})
    # Then the template has exactly the models' tables
    assert set(tables) == {table_name(settings, model) for model in MODELS}
    for model in MODELS:
        # and each is what the model reads and writes
        assert template_view(tables[table_name(settings, model)]) == model_view(model), model.__name__
