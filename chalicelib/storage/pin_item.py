"""The pins table: every item of a tenant's pins (chalicelib.storage.pin_keys
says which item is where). One model for all of them: a pin and its copies
fill the pin's fields, a meta entry only its keys, a count change `was`
and `now`, a counter bucket only the counts PynamoDB cannot declare
(chalicelib.storage.pin_counter).

No secondary index: an index here is items written beside the pin in its
transaction, read strongly consistent from the base table.
"""

from __future__ import annotations

from typing import Any, cast

from pynamodb.attributes import BooleanAttribute, ListAttribute, MapAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute


def optional_strings() -> ListAttribute[str]:
    """A list of strings, left out of items that do not have one (entries
    would otherwise each store empty lists). Read back as str."""
    return cast("ListAttribute[str]", ListAttribute(of=UnicodeAttribute, null=True))


def plain_map(value: Any) -> dict[str, str]:
    """A map attribute as a dict: PynamoDB gives a raw MapAttribute when read
    from DynamoDB and keeps the dict it was built from otherwise."""
    return value.as_dict() if hasattr(value, "as_dict") else dict(value or {})


class PinItem(Model):
    class Meta:
        table_name = "pins"
        billing_mode = "PAY_PER_REQUEST"
        # Count changes are folded as the stream reports them (chalicelib.storage.change_stream): keys suffice.
        stream_view_type = "KEYS_ONLY"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    # A pin and its status copy.
    request_id = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    cid = UnicodeAttribute(null=True)
    cid_key = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    origins = optional_strings()
    meta: MapAttribute[str, str] = MapAttribute(null=True)
    info: MapAttribute[str, str] = MapAttribute(null=True)
    delegates = optional_strings()
    node_ids = optional_strings()
    # The meta is in the pin's meta item (pin_keys.meta_key), not here.
    meta_apart = BooleanAttribute(null=True)
    # Incremented by every update and checked by every conditional write
    # (chalicelib.pins.repository).
    version = IntegerAttribute(null=True)

    # A count change: the status codes before and after (absent: no pin).
    was = UnicodeAttribute(null=True)
    now = UnicodeAttribute(null=True)

    # An idempotency key's claim (pin_keys.claim_key): the pin it answers,
    # created then, the request it was for and until when it holds (the
    # TTL attribute lets DynamoDB delete it a while after).
    created_ms = IntegerAttribute(null=True)
    fingerprint = UnicodeAttribute(null=True)
    expires_ms = IntegerAttribute(null=True)
    expires = TTLAttribute(null=True)

    # The shard plan (pin_keys.plan_key): "from_ms:shards" steps.
    steps = optional_strings()
