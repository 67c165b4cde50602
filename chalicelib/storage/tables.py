"""Binds the storage models to the tables of one stage and endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pynamodb.models import Model

from chalicelib.config import Settings
from chalicelib.storage.archive_record import ArchiveRecord
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.filecoin_record import FilecoinRecord
from chalicelib.storage.node_pin import NodePin
from chalicelib.storage.node_record import NodeRecord
from chalicelib.storage.outbox_entry import OutboxEntry
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.tenant_record import ApiTokenRecord, TenantRecord
from chalicelib.storage.tenant_slot import TenantSlot
from chalicelib.storage.usage_item import UsageItem
from chalicelib.storage.webhook_record import WebhookItem

if TYPE_CHECKING:  # the layout check runs from the CLI and deploys, never in a Lambda's start
    from chalicelib.storage.layout import TableFinding

MODELS: tuple[type[Model], ...] = (
    PinItem,
    OutboxEntry,
    TenantRecord,
    ApiTokenRecord,
    NodeRecord,
    NodePin,
    ArchiveRecord,
    FilecoinRecord,
    TenantSlot,
    WebhookItem,
)

_BASE_NAMES = {
    PinItem: "pins",
    OutboxEntry: "outbox",
    TenantRecord: "tenants",
    ApiTokenRecord: "api-tokens",
    NodeRecord: "nodes",
    NodePin: "node-pins",
    ArchiveRecord: "archives",
    FilecoinRecord: "filecoin-copies",
    TenantSlot: "tenant-slots",
    WebhookItem: "webhooks",
}


# Models of items kept in another model's table: bound to its name, never created apart.
_SHARING: dict[type[Model], type[Model]] = {UsageItem: PinItem}


def table_name(settings: Settings, model: type[Model]) -> str:
    return f"{settings.table_prefix}-{_BASE_NAMES[model]}"


def table_names(settings: Settings) -> list[str]:
    """Every table of the stage."""
    return [table_name(settings, model) for model in MODELS]


def bind_models(settings: Settings) -> DynamoConnection:
    """Point every model at this stage's tables, through one shared client."""
    dynamo = DynamoConnection(settings, MODELS, {model: table_name(settings, model) for model in MODELS})
    for model, host in _SHARING.items():
        # The host's table connection, on the shared client: a table is bound once.
        model.Meta.table_name = host.Meta.table_name
        model._connection = host._get_connection()
    return dynamo


def check_tables(settings: Settings) -> list[TableFinding]:
    """Each of the stage's tables as found: missing, matching, or of another layout."""
    from chalicelib.storage.layout import check_table

    connection = bind_models(settings).connection
    return [check_table(connection, model) for model in MODELS]


def create_tables(settings: Settings, wait: bool = True) -> list[str]:
    """Create missing tables (local stack and tests; AWS uses infra/).

    Returns the names of the tables it created. Raises TablesOfAnotherLayout,
    before creating any, when a table exists with another layout.
    """
    from chalicelib.storage.layout import TablesOfAnotherLayout, TableState

    findings = check_tables(settings)
    other_layout = [finding for finding in findings if finding.state is TableState.OTHER_LAYOUT]
    if other_layout:
        raise TablesOfAnotherLayout(other_layout)
    created = []
    for model, finding in zip(MODELS, findings, strict=True):
        if finding.state is TableState.MISSING:
            model.create_table(wait=wait)
            created.append(finding.table)
    return created
