"""chalicelib.webhooks.endpoints.EndpointRepository on the webhooks table."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import DeleteError

from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.pin_keys import CREATED_DIGITS
from chalicelib.storage.webhook_record import ENDPOINT, LOG, WebhookItem
from chalicelib.webhooks.endpoints import Attempt, Endpoint

# Errors are logged as the endpoint's answer was: at most this long.
MAX_ERROR_CHARS = 500


class DynamoWebhookRepository:
    def add(self, endpoint: Endpoint) -> None:
        item = WebhookItem(
            endpoint.tenant_id,
            ENDPOINT + endpoint.endpoint_id,
            url=endpoint.url,
            events=list(endpoint.events),
            secret=endpoint.secret,
            created_ms=endpoint.created_ms,
        )
        with busy_as_storage_busy():
            item.save(condition=WebhookItem.sk.does_not_exist())

    def get(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        with busy_as_storage_busy():
            try:
                return _endpoint_of(WebhookItem.get(tenant_id, ENDPOINT + endpoint_id, consistent_read=True))
            except WebhookItem.DoesNotExist:
                return None

    def of_tenant(self, tenant_id: str) -> list[Endpoint]:
        with busy_as_storage_busy():
            items = WebhookItem.query(tenant_id, WebhookItem.sk.startswith(ENDPOINT), consistent_read=True)
            return [_endpoint_of(item) for item in items]

    def remove(self, tenant_id: str, endpoint_id: str) -> bool:
        with busy_as_storage_busy():
            try:
                WebhookItem(tenant_id, ENDPOINT + endpoint_id).delete(condition=WebhookItem.sk.exists())
            except DeleteError as error:
                if error.cause_response_code == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def log(self, attempt: Attempt, expires_ms: int) -> None:
        item = WebhookItem(
            LOG + attempt.endpoint_id,
            f"{attempt.at_ms:0{CREATED_DIGITS}d}#{attempt.message_id}#{attempt.attempt}",
            message_id=attempt.message_id,
            event_type=attempt.event_type,
            attempt=attempt.attempt,
            status_code=attempt.status_code,
            error=None if attempt.error is None else attempt.error[:MAX_ERROR_CHARS],
            duration_ms=attempt.duration_ms,
            expires=datetime.fromtimestamp(expires_ms / 1000, tz=UTC),
        )
        with busy_as_storage_busy():
            item.save()

    def attempts(self, endpoint_id: str, limit: int) -> list[Attempt]:
        with busy_as_storage_busy():
            items = WebhookItem.query(LOG + endpoint_id, scan_index_forward=False, limit=limit)
            return [_attempt_of(endpoint_id, item) for item in items]


def _endpoint_of(item: WebhookItem) -> Endpoint:
    return Endpoint(
        item.pk,
        item.sk.removeprefix(ENDPOINT),
        item.url or "",
        tuple(item.events),
        item.secret or "",
        item.created_ms or 0,
    )


def _attempt_of(endpoint_id: str, item: WebhookItem) -> Attempt:
    return Attempt(
        endpoint_id,
        int(item.sk[:CREATED_DIGITS]),
        item.message_id or "",
        item.event_type or "",
        item.attempt or 0,
        item.status_code,
        item.error,
        item.duration_ms or 0,
    )
