"""The webhooks table: a tenant's endpoints and each endpoint's delivery log.

    pk = <tenant id>             sk = ep#<endpoint id>    an endpoint
    pk = log#<endpoint id>       sk = <at ms, 13 digits>#<message id>#<attempt>
                                                          one delivery attempt

A tenant's endpoints are one Query (the stream's consumer reads them once
per batch and tenant), a delivery's endpoint one GetItem. Attempts are
read newest first and expire by DynamoDB's TTL (`expires`).
"""

from __future__ import annotations

from pynamodb.attributes import TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute, string_list

ENDPOINT = "ep#"
LOG = "log#"


class WebhookItem(Model):
    class Meta:
        table_name = "webhooks"
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    # An endpoint. The secret signs its deliveries: kept as is (DynamoDB
    # encrypts tables at rest), never shown again after its registration.
    url = UnicodeAttribute(null=True)
    events = string_list()
    secret = UnicodeAttribute(null=True)
    created_ms = IntegerAttribute(null=True)

    # An attempt.
    message_id = UnicodeAttribute(null=True)
    event_type = UnicodeAttribute(null=True)
    attempt = IntegerAttribute(null=True)
    status_code = IntegerAttribute(null=True)
    error = UnicodeAttribute(null=True)
    duration_ms = IntegerAttribute(null=True)
    expires = TTLAttribute(null=True)
