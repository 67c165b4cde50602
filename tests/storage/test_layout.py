"""A stage's tables are compared with the code's models before use: tables of
another layout are found, named with what differs, and never built upon."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.config import Settings
from chalicelib.storage.layout import TablesOfAnotherLayout, TableState
from chalicelib.storage.node_pin import NodePin
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.tables import MODELS, check_tables, create_tables, table_name
from chalicelib.storage.tenant_record import TenantRecord
from tests.support.table_layouts import create, deployed_spec, existing_tables, old_pins_spec


@pytest.fixture
def stage(aws: None) -> Settings:
    """A stage with no table yet."""
    return replace(Settings(), table_prefix="layout", region="us-east-1")


def finding_of(settings: Settings, model: type) -> tuple[TableState, tuple[str, ...]]:
    (finding,) = [f for f in check_tables(settings) if f.table == table_name(settings, model)]
    return finding.state, finding.differences


def test_given_no_tables_then_each_is_missing_and_create_makes_them_matching(stage: Settings) -> None:
    assert {f.state for f in check_tables(stage)} == {TableState.MISSING}

    created = create_tables(stage, wait=False)

    assert set(created) == {table_name(stage, model) for model in MODELS}
    assert {f.state for f in check_tables(stage)} == {TableState.MATCHING}


def test_given_the_tables_infra_deploys_then_each_matches(stage: Settings) -> None:
    # the service stack's template, not PynamoDB, makes the tables on AWS
    for model in MODELS:
        create(deployed_spec(stage, model))

    assert [(f.table, f.state, f.differences) for f in check_tables(stage)] == [
        (table_name(stage, model), TableState.MATCHING, ()) for model in MODELS
    ]


def test_given_the_pins_table_of_the_layout_before_shards_then_every_difference_is_named(stage: Settings) -> None:
    create(old_pins_spec(stage))

    state, differences = finding_of(stage, PinItem)

    assert state is TableState.OTHER_LAYOUT
    assert differences == (
        "partition key pk expected, found tenant_id",
        "sort key sk expected, found created_ms",
        "local index cid-created not expected",
        "local index folded-name-created not expected",
        "local index name-created not expected",
        "local index status-created not expected",
    )


def test_given_a_key_attribute_of_another_type_then_it_is_named(stage: Settings) -> None:
    spec = deployed_spec(stage, PinItem)
    spec["AttributeDefinitions"] = [
        {**a, "AttributeType": "N"} if a["AttributeName"] == "sk" else a for a in spec["AttributeDefinitions"]
    ]
    create(spec)

    assert finding_of(stage, PinItem) == (TableState.OTHER_LAYOUT, ("attribute sk: string expected, found number",))


def test_given_an_index_missing_then_it_is_named(stage: Settings) -> None:
    spec = deployed_spec(stage, NodePin)
    del spec["GlobalSecondaryIndexes"]
    spec["AttributeDefinitions"] = [a for a in spec["AttributeDefinitions"] if a["AttributeName"] != "node_id"]
    create(spec)

    assert finding_of(stage, NodePin) == (TableState.OTHER_LAYOUT, ("global index node-holders missing",))


def test_given_an_extra_index_then_it_is_named(stage: Settings) -> None:
    spec = deployed_spec(stage, TenantRecord)
    spec["GlobalSecondaryIndexes"].append(
        {
            "IndexName": "tenants-by-name",
            "KeySchema": [{"AttributeName": "name", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    )
    spec["AttributeDefinitions"].append({"AttributeName": "name", "AttributeType": "S"})
    create(spec)

    assert finding_of(stage, TenantRecord) == (TableState.OTHER_LAYOUT, ("global index tenants-by-name not expected",))


def test_given_an_index_with_another_projection_or_keys_then_both_are_named(stage: Settings) -> None:
    spec = deployed_spec(stage, NodePin)
    (holders,) = spec["GlobalSecondaryIndexes"]
    holders["Projection"] = {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["holders"]}
    holders["KeySchema"] = [{"AttributeName": "node_id", "KeyType": "HASH"}]
    create(spec)

    assert finding_of(stage, NodePin) == (
        TableState.OTHER_LAYOUT,
        (
            "index node-holders: sort key node_pin expected, found none",
            "index node-holders: projection KEYS_ONLY expected, found INCLUDE(holders)",
        ),
    )


def test_given_a_table_of_another_layout_when_creating_then_refused_and_nothing_created(stage: Settings) -> None:
    create(old_pins_spec(stage))

    with pytest.raises(TablesOfAnotherLayout) as refused:
        create_tables(stage, wait=False)

    assert "layout-pins: partition key pk expected, found tenant_id" in str(refused.value)
    assert [f.table for f in refused.value.findings] == ["layout-pins"]
    # the missing tables were not created beside the old one
    assert existing_tables(stage, MODELS) == {"layout-pins"}
