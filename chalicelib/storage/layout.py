"""Whether a live table has the layout the code's model expects.

Nothing migrates a table from one layout to another: code run against a
table keyed or indexed differently fails at its first read or write, or
worse, answers from the wrong index. So the tables are compared before they
are used (`cli.admin tables check`, `tables create`, `make deploy`), never on
the request path: one DescribeTable per table. The comparison covers what a
table cannot change in place: key schema, key attribute types, local and
global secondary indexes with their keys and projections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import TableDoesNotExist
from pynamodb.models import Model

from chalicelib.config import Settings

_TYPE_NAMES = {"S": "string", "N": "number", "B": "binary"}
# Where docs/deploy.md explains the retained tables of a destroyed stage.
DESTROY_DOCS = "docs/deploy.md#destroying-prod-keeps-its-data-under-the-same-names"


class TableState(Enum):
    MISSING = "missing"
    MATCHING = "matching"
    OTHER_LAYOUT = "other layout"


@dataclass(frozen=True)
class TableFinding:
    """One table of the stage as found: its differences are one line each."""

    table: str
    state: TableState
    differences: tuple[str, ...] = ()


class TablesOfAnotherLayout(Exception):
    """Tables exist whose layout differs from the code's models."""

    def __init__(self, findings: Sequence[TableFinding]) -> None:
        super().__init__("; ".join(line for finding in findings for line in difference_lines(finding)))
        self.findings = tuple(findings)


@dataclass(frozen=True)
class _Keys:
    partition: str | None
    sort: str | None


@dataclass(frozen=True)
class _Index:
    kind: str  # "local" or "global"
    keys: _Keys
    projection: str


@dataclass(frozen=True)
class _Layout:
    keys: _Keys
    types: Mapping[str, str]
    indexes: Mapping[str, _Index]


def _keys(schema: Sequence[Mapping[str, Any]]) -> _Keys:
    roles = {key["KeyType"]: key["AttributeName"] for key in schema}
    return _Keys(roles.get("HASH"), roles.get("RANGE"))


def _projection(projection: Mapping[str, Any]) -> str:
    extra = projection.get("NonKeyAttributes")
    kind = str(projection["ProjectionType"])
    return f"{kind}({', '.join(sorted(extra))})" if extra else kind


def _expected(model: type[Model]) -> _Layout:
    """The layout PynamoDB's create_table (and infra/render.py) give the model's table."""
    schema = model._get_schema()
    indexes = {
        index["index_name"]: _Index(kind, _keys(index["key_schema"]), _projection(index["projection"]))
        for kind, listed in (
            ("local", schema["local_secondary_indexes"]),
            ("global", schema["global_secondary_indexes"]),
        )
        for index in listed
    }
    types = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
    return _Layout(_keys(schema["key_schema"]), types, indexes)


def _found(description: Mapping[str, Any]) -> _Layout:
    """The layout of a DescribeTable answer."""
    indexes = {
        index["IndexName"]: _Index(kind, _keys(index["KeySchema"]), _projection(index["Projection"]))
        for kind, key in (("local", "LocalSecondaryIndexes"), ("global", "GlobalSecondaryIndexes"))
        for index in description.get(key, [])
    }
    types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
    return _Layout(_keys(description["KeySchema"]), types, indexes)


def _key_differences(where: str, expected: _Keys, found: _Keys) -> list[str]:
    return [
        f"{where}{role} {want or 'none'} expected, found {have or 'none'}"
        for role, want, have in (
            ("partition key", expected.partition, found.partition),
            ("sort key", expected.sort, found.sort),
        )
        if want != have
    ]


def _type_differences(expected: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    return [
        f"attribute {name}: {_TYPE_NAMES.get(want, want)} expected, found {_TYPE_NAMES.get(found[name], found[name])}"
        for name, want in sorted(expected.items())
        if name in found and found[name] != want
    ]


def _index_differences(expected: Mapping[str, _Index], found: Mapping[str, _Index]) -> list[str]:
    differences = []
    for name, want in sorted(expected.items()):
        have = found.get(name)
        if have is None:
            differences.append(f"{want.kind} index {name} missing")
            continue
        if have.kind != want.kind:
            differences.append(f"index {name}: {want.kind} expected, found {have.kind}")
        differences += _key_differences(f"index {name}: ", want.keys, have.keys)
        if have.projection != want.projection:
            differences.append(f"index {name}: projection {want.projection} expected, found {have.projection}")
    differences += [f"{found[name].kind} index {name} not expected" for name in sorted(found.keys() - expected.keys())]
    return differences


def layout_differences(model: type[Model], description: Mapping[str, Any]) -> list[str]:
    """How the described table differs from the model's, one line each; [] when it matches."""
    expected, found = _expected(model), _found(description)
    return (
        _key_differences("", expected.keys, found.keys)
        + _type_differences(expected.types, found.types)
        + _index_differences(expected.indexes, found.indexes)
    )


def check_table(connection: Connection, model: type[Model]) -> TableFinding:
    """The model's table as found: one DescribeTable."""
    table = model.Meta.table_name
    try:
        description = connection.describe_table(table)
    except TableDoesNotExist:
        return TableFinding(table, TableState.MISSING)
    differences = layout_differences(model, description)
    if differences:
        return TableFinding(table, TableState.OTHER_LAYOUT, tuple(differences))
    return TableFinding(table, TableState.MATCHING)


def difference_lines(finding: TableFinding) -> list[str]:
    """`table: difference`, one line each."""
    return [f"{finding.table}: {difference}" for difference in finding.differences]


def what_to_do(settings: Settings) -> str:
    """What an operator does about tables of another layout, where they are."""
    if settings.aws_endpoint_url:
        return (
            "The local stack (make dev) keeps its tables in memory only, never in .dev/: stop it and start it "
            "again to get tables of this layout (make clean or a new --state-dir is not needed); its tenants, "
            "tokens and pins are not kept. At another endpoint, delete these tables or use another --table-prefix."
        )
    stage = settings.stage
    return (
        f"Nothing migrates tables from one layout to another. Export what must be kept (e.g. DynamoDB export "
        f"to S3), then destroy the stage's fleet and service stacks (make destroy-fleet destroy-service "
        f"STAGE={stage}; the tables of a stage that retains them, such as prod, must then be deleted too: "
        f"{DESTROY_DOCS}) and run make deploy STAGE={stage} again; or deploy a new stage."
    )
