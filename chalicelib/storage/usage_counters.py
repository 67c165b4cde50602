"""A tenant's monthly request counts and egress in its usage partition
(usage_keys: `r#<YYYY-MM>`), behind chalicelib.usage.requests.RequestCounts:
one UpdateItem ADD per flush."""

from __future__ import annotations

from collections.abc import Mapping

from pynamodb.expressions.update import Action

from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.usage_item import UsageItem
from chalicelib.storage.usage_keys import counts_key, usage_partition
from chalicelib.usage.months import Month
from chalicelib.usage.requests import EGRESS

# Each count's attribute of UsageItem.
_FIELDS = {"read": "reads", "write": "writes", "retrieve": "retrieves", EGRESS: "egress"}


class DynamoRequestCounts:
    @busy_as_storage_busy()
    def add(self, tenant_id: str, month: Month, counts: Mapping[str, int]) -> None:
        actions: list[Action] = [getattr(UsageItem, _FIELDS[name]).add(n) for name, n in counts.items() if n]
        if actions:
            UsageItem(usage_partition(tenant_id), counts_key(month.text)).update(actions=actions)

    @busy_as_storage_busy()
    def month(self, tenant_id: str, month: Month) -> dict[str, int]:
        try:
            item = UsageItem.get(usage_partition(tenant_id), counts_key(month.text))
        except UsageItem.DoesNotExist:
            return dict.fromkeys(_FIELDS, 0)
        return {name: getattr(item, field) or 0 for name, field in _FIELDS.items()}
