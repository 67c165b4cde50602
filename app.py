"""The IPFS Pinning Service API v1.0.0 on Chalice.

Routes parse and validate, call the domain, serialize; the work lives in
chalicelib/.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from chalice import Chalice, CORSConfig, Cron, Rate, Response
from chalice.app import CloudWatchEvent, Request, SQSEvent

from chalicelib.api.access import admit
from chalicelib.api.errors import ApiError, bad_request, not_found
from chalicelib.api.http import json_response
from chalicelib.api.pin_requests import idempotency_key, parse_list_query, parse_pin_body
from chalicelib.api.pin_responses import pin_results, pin_status
from chalicelib.api.views import api_view, in_failure_shape, method_not_allowed
from chalicelib.config import aws_client
from chalicelib.fleet.health import check_fleet, emit_health_metrics
from chalicelib.fleet.lifecycle import TERMINATION_EVENTS, release_terminating_node
from chalicelib.logs import configure_logging
from chalicelib.pins.model import PinRequest
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import decode
from chalicelib.queue.publisher import forward_archive
from chalicelib.storage.change_stream import fold_changes, writing_tenants
from chalicelib.tenants.scopes import READ, RETRIEVE, WRITE
from chalicelib.usage.months import InvalidMonth, Month
from chalicelib.usage.quotas import QuotaExceeded
from chalicelib.wiring import ServiceProvider
from chalicelib.worker.batch import QueuedMessage, process_batch, remaining_seconds

app = Chalice(app_name="pinning-service")
services = ServiceProvider()
configure_logging()

# Browsers let a page read Retry-After (429, 503) only when exposed.
_CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
    expose_headers=["Retry-After"],
    max_age=600,
)
# Every content type reaches the view, which answers a Failure, not Chalice's 415.
_ANY = ["*/*"]
# Bodies Chalice sends base64-encoded and API Gateway decodes (binaryMediaTypes):
# chalicelib.api.retrieval's CAR and RAW (literal here: that module loads on demand).
app.api.binary_types += ["application/vnd.ipld.car", "application/vnd.ipld.raw"]


@app.middleware("http")
def failure_shape(event: Request, get_response: Callable[[Request], Response]) -> Response:
    return in_failure_shape(get_response(event))


def _request() -> Request:
    request = app.current_request
    if request is None:  # Chalice sets it before any route's view runs
        raise RuntimeError("no current request outside an HTTP route")
    return request


def _tenant(needed: str = WRITE) -> str:
    """The tenant of a request needing the `needed` scope (chalicelib.tenants.scopes), within its rate limits."""
    provided = services()
    authorization = _request().headers.get("authorization")
    tenant_id = admit(provided.authenticator, provided.rate_limiter, authorization, needed).tenant_id
    # API requests by class (the scope needed), counted per container (chalicelib.usage.requests).
    provided.request_meter.request(tenant_id, needed)
    return tenant_id


def _body() -> PinRequest:
    request = _request()
    return parse_pin_body(request.raw_body, request.headers.get("content-type"), services().settings.max_body_bytes)


@app.route("/pins", methods=["GET"], cors=_CORS, content_types=_ANY)
@api_view
def list_pins() -> Response:
    tenant_id = _tenant(READ)
    query = parse_list_query(_request().query_params)
    records, count = services().pins.list(tenant_id, query)
    return json_response(pin_results(records, count))


@contextmanager
def _within_quotas() -> Iterator[None]:
    """A create or replace beyond a quota (chalicelib.usage.quotas): 409 with the spec's reason."""
    try:
        yield
    except QuotaExceeded as error:
        raise ApiError(409, error.reason, error.details) from None


@app.route("/pins", methods=["POST"], cors=_CORS, content_types=_ANY)
@api_view
def add_pin() -> Response:
    tenant_id = _tenant()
    with _within_quotas():
        record = services().pins.create(tenant_id, _body(), idempotency_key(_request().headers))
    return json_response(pin_status(record), 202)


@app.route("/pins/{requestid}", methods=["GET"], cors=_CORS, content_types=_ANY)
@api_view
def get_pin(requestid: str) -> Response:
    return json_response(pin_status(services().pins.get(_tenant(READ), requestid)))


@app.route("/pins/{requestid}/receipts", methods=["GET"], cors=_CORS, content_types=_ANY)
@api_view
def get_pin_receipts(requestid: str) -> Response:
    """The request's Filecoin copies and their receipts (an extension: chalicelib.api.receipts)."""
    tenant_id = _tenant(READ)
    return json_response(services().receipts.of(services().pins.get(tenant_id, requestid)))


@app.route("/pins/{requestid}", methods=["POST"], cors=_CORS, content_types=_ANY)
@api_view
def replace_pin(requestid: str) -> Response:
    tenant_id = _tenant()
    request = _body()
    with _within_quotas():
        replaced = services().pins.replace(tenant_id, requestid, request, idempotency_key(_request().headers))
    return json_response(pin_status(replaced), 202)


@app.route("/pins/{requestid}", methods=["DELETE"], cors=_CORS, content_types=_ANY)
@api_view
def delete_pin(requestid: str) -> Response:
    services().pins.delete(_tenant(), requestid)
    return Response(body="", status_code=202)


# Declared so API Gateway routes them here (it would answer 403 otherwise).
@app.route("/pins", methods=["PUT", "PATCH", "DELETE"], cors=_CORS, content_types=_ANY)
@api_view
def pins_method_not_allowed() -> Response:
    return method_not_allowed("GET, POST")


@app.route("/pins/{requestid}", methods=["PUT", "PATCH"], cors=_CORS, content_types=_ANY)
@api_view
def pin_method_not_allowed(requestid: str) -> Response:
    return method_not_allowed("GET, POST, DELETE")


# Extension beyond the Pinning Service API: a tenant's pinned content, as the
# IPFS Trustless Gateway serves it (chalicelib/api/retrieval.py).
@app.route("/ipfs/{cid}", methods=["GET", "HEAD"], cors=_CORS, content_types=_ANY)
@api_view
def get_content(cid: str) -> Response:
    # Imported here: the retrieval modules cost every other route's cold start ~40 ms.
    from chalicelib.api.retrieval import parse_request, respond

    tenant_id = _tenant(RETRIEVE)
    request = _request()
    retrieval = parse_request(tenant_id, cid, request.query_params, request.headers)
    settings = services().settings
    stage = settings.stage if settings.emit_metrics else None
    return respond(services().retrieval, retrieval, request.method, request.headers.get("if-none-match"), stage)


@app.route("/ipfs/{cid}", methods=["POST", "PUT", "PATCH", "DELETE"], cors=_CORS, content_types=_ANY)
@api_view
def content_method_not_allowed(cid: str) -> Response:
    return method_not_allowed("GET, HEAD")


# Extension: the tenant's own usage (openapi.yaml), this month's or `month`'s (YYYY-MM).
@app.route("/usage", methods=["GET"], cors=_CORS, content_types=_ANY)
@api_view
def get_usage() -> Response:
    tenant_id = _tenant(READ)
    query = _request().query_params
    text = None if query is None else query.get("month")
    try:
        month = None if text is None else Month.parse(text)
    except InvalidMonth as error:
        raise bad_request("INVALID_MONTH", str(error)) from None
    return json_response(services().usage.usage(tenant_id, month).as_dict())


@app.route("/usage", methods=["POST", "PUT", "PATCH", "DELETE"], cors=_CORS, content_types=_ANY)
@api_view
def usage_method_not_allowed() -> Response:
    return method_not_allowed("GET")


# Extension: a tenant's webhook endpoints and their delivery logs (openapi.yaml,
# "Webhooks"). The webhooks package loads with the first such request only.
@app.route("/webhooks", methods=["GET"], cors=_CORS, content_types=_ANY)
@api_view
def list_webhooks() -> Response:
    from chalicelib.webhooks.views import endpoint_json

    endpoints = services().webhooks.endpoints.of_tenant(_tenant(READ))
    return json_response({"results": [endpoint_json(endpoint) for endpoint in endpoints]})


@app.route("/webhooks", methods=["POST"], cors=_CORS, content_types=_ANY)
@api_view
def add_webhook() -> Response:
    from chalicelib.webhooks.views import endpoint_json, parse_endpoint_body, registering

    tenant_id, request = _tenant(), _request()
    url, events = parse_endpoint_body(request.raw_body, request.headers.get("content-type"))
    endpoint = registering(lambda: services().webhooks.endpoints.register(tenant_id, url, events))
    return json_response(endpoint_json(endpoint, with_secret=True), 201)


@app.route("/webhooks/{endpoint_id}", methods=["GET"], cors=_CORS, content_types=_ANY)
@api_view
def get_webhook(endpoint_id: str) -> Response:
    from chalicelib.webhooks.views import endpoint_json, found

    return json_response(endpoint_json(found(services().webhooks.endpoints.get(_tenant(READ), endpoint_id))))


@app.route("/webhooks/{endpoint_id}", methods=["DELETE"], cors=_CORS, content_types=_ANY)
@api_view
def delete_webhook(endpoint_id: str) -> Response:
    if not services().webhooks.endpoints.remove(_tenant(), endpoint_id):
        raise not_found("no such webhook endpoint")
    return Response(body="", status_code=204)


@app.route("/webhooks/{endpoint_id}/deliveries", methods=["GET"], cors=_CORS, content_types=_ANY)
@api_view
def webhook_attempts(endpoint_id: str) -> Response:
    from chalicelib.webhooks.views import attempt_json, found, parse_limit

    limit = parse_limit(_request().query_params)
    attempts = found(services().webhooks.endpoints.attempts(_tenant(READ), endpoint_id, limit))
    return json_response({"results": [attempt_json(attempt) for attempt in attempts]})


@app.route("/webhooks", methods=["PUT", "PATCH", "DELETE"], cors=_CORS, content_types=_ANY)
@api_view
def webhooks_method_not_allowed() -> Response:
    return method_not_allowed("GET, POST")


@app.route("/webhooks/{endpoint_id}", methods=["POST", "PUT", "PATCH"], cors=_CORS, content_types=_ANY)
@api_view
def webhook_method_not_allowed(endpoint_id: str) -> Response:
    return method_not_allowed("GET, DELETE")


@app.route("/", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], cors=_CORS, content_types=_ANY)
@api_view
def root() -> Response:
    return not_found("unknown route; the API lives under /pins").response()


# Chalice wants a queue name; infra/ creates each stage's queues (Chalice never
# does) and binds these event sources to them.
PIN_QUEUE = "pinning-service-pins"
PIN_DEAD_LETTERS = "pinning-service-pins-dlq"
ARCHIVE_QUEUE = "pinning-service-archives"
ARCHIVE_DEAD_LETTERS = "pinning-service-archives-dlq"


@app.on_sqs_message(queue=PIN_QUEUE, batch_size=10, maximum_batching_window_in_seconds=1)
def pin_worker(event: SQSEvent) -> dict[str, list[dict[str, str]]]:
    """Pins and unpins on the fleet; returns the messages that must come back."""
    worker_services = services()
    settings, publisher = worker_services.settings, worker_services.publisher
    batch = [
        QueuedMessage(record.to_dict()["messageId"], record.body)
        for record in event
        if not forward_archive(record.body, settings, publisher)
    ]
    seconds_left = remaining_seconds(event.context, settings.invocation_margin_seconds)
    # Each tenant may hold only so many of the function's concurrent invocations.
    return process_batch(batch, worker_services.worker, publisher, seconds_left, worker_services.invocation_slots)


@app.on_sqs_message(queue=PIN_DEAD_LETTERS, batch_size=10)
def pin_dead_letters(event: SQSEvent) -> None:
    """Messages that failed every delivery: their requests fail with a reason."""
    _give_up(event)


@app.on_sqs_message(queue=ARCHIVE_QUEUE, batch_size=1)
def archive_worker(event: SQSEvent) -> dict[str, list[dict[str, str]]]:
    """Archives a pinned DAG into the cold tier: one message an invocation,
    which may take the function's 15 minutes (.chalice/config.json)."""
    worker_services = services()
    batch = [QueuedMessage(record.to_dict()["messageId"], record.body) for record in event]
    seconds_left = remaining_seconds(event.context, worker_services.settings.invocation_margin_seconds)
    return process_batch(batch, worker_services.worker, worker_services.publisher, seconds_left)


@app.on_sqs_message(queue=ARCHIVE_DEAD_LETTERS, batch_size=10)
def archive_dead_letters(event: SQSEvent) -> None:
    """Archive messages that failed every delivery: their archives fail with a reason."""
    _give_up(event)


def _give_up(event: SQSEvent) -> None:
    worker = services().worker
    for record in event:
        worker.give_up(decode(record.body), record.to_dict()["messageId"])


@app.schedule(Rate(1, unit=Rate.MINUTES))
def check_fleet_health(event: CloudWatchEvent) -> dict[str, bool]:
    """Reachability and free space of every node, for placement."""
    results = check_fleet(services().registry, services().kubo)
    settings = services().settings
    if settings.emit_metrics:
        emit_health_metrics(results, settings.stage, sys.stdout)
    return results


@app.schedule(Rate(1, unit=Rate.MINUTES))
def reconcile_fleet(event: CloudWatchEvent) -> dict[str, int]:
    """Compares what each node pins with the holds recorded for it: pins
    what is held but missing, unpins what nothing holds (after a grace
    period), corrects holder counts. A bounded run; the next goes on."""
    settings = services().settings
    seconds = min(settings.reconcile_seconds, remaining_seconds(event.context, settings.invocation_margin_seconds))
    report = services().reconciler.run(time.monotonic() + seconds)
    if settings.emit_metrics:
        # Imported here: the reconciler's module would cost every function's cold start ~9 ms.
        from chalicelib.fleet.reconciler import emit_reconcile_metrics

        emit_reconcile_metrics(report, settings.stage, sys.stdout)
    return report.as_dict()


@app.schedule(Rate(10, unit=Rate.MINUTES))
def sweep_archives(event: CloudWatchEvent) -> int:
    """Deletes the archives whose last request went more than ARCHIVE_GRACE_SECONDS ago."""
    sweep = services().archive_sweep
    return sweep.run() if sweep is not None else 0


@app.schedule(Rate(1, unit=Rate.MINUTES))
def cool_pins(event: CloudWatchEvent) -> dict[str, int]:
    """Releases the hot copies of cold-only tenants' requests unretrieved for
    their days (chalicelib.cold.tiering); they stay pinned in the archive.
    A bounded run; the next goes on."""
    settings, tiering = services().settings, services().tiering
    if tiering is None:
        return {}
    seconds = min(settings.cooling_seconds, remaining_seconds(event.context, settings.invocation_margin_seconds))
    return tiering.cool(time.monotonic() + seconds, settings.cooling_limit).as_dict()


@app.schedule(Rate(1, unit=Rate.MINUTES))
def track_filecoin_copies(event: CloudWatchEvent) -> dict[str, int]:
    """Keeps each archived CID at the Filecoin copies its requests want:
    follows, repairs, ends and begins copies (chalicelib.filecoin.tracker).
    A bounded run; the next goes on."""
    settings, tracker = services().settings, services().filecoin_tracker
    if tracker is None:
        return {}
    seconds = min(
        settings.filecoin_tracker_seconds, remaining_seconds(event.context, settings.invocation_margin_seconds)
    )
    report = tracker.run(time.monotonic() + seconds, settings.filecoin_tracker_limit)
    if settings.emit_metrics:
        # Imported here: only this function emits them.
        from chalicelib.filecoin.tracker import emit_copy_metrics

        emit_copy_metrics(report, settings.stage, sys.stdout)
    return report.as_dict()


@app.on_cw_event(TERMINATION_EVENTS)
def node_terminating(event: CloudWatchEvent) -> str | None:
    """The fleet's Auto Scaling group is terminating a node: out of the
    registry first, and its pins queued for re-replication elsewhere."""
    settings = services().settings
    return release_terminating_node(
        event.to_dict(), settings.stage, services().removal, aws_client(settings, "autoscaling")
    )


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sweep_outbox(event: CloudWatchEvent) -> int:
    """Re-sends queue messages whose send failed or was cut off."""
    settings = services().settings
    return services().outbox.sweep(now_ms() - settings.outbox_grace_seconds * 1000)


@app.schedule(Cron(0, 1, 1, "*", "?", "*"))
def export_usage(event: CloudWatchEvent) -> str | None:
    """On the 1st at 01:00 UTC: the month just ended's usage records, as JSON
    lines in S3 (chalicelib.usage.export); run again, the same object."""
    export = services().usage_export
    return None if export is None else export.export()


# Fed by the pins table's stream through an event source mapping that infra/
# renders (on_dynamodb_record would want the stream's ARN before the table exists).
@app.lambda_function(name="fold_counts")
def fold_counts(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Folds the count changes the stream reports into their shards' counter
    trees, and spreads the pins of the tenants who wrote them over more
    shards if their rate needs it; returns the records the stream must
    deliver again."""
    records = event.get("Records", [])
    failed = fold_changes(records, services().folder)
    # Bytes changes are written with count changes: the same records name their shards.
    failed += [number for number in fold_changes(records, services().usage_folder) if number not in failed]
    services().planner.plan(writing_tenants(records))
    return {"batchItemFailures": [{"itemIdentifier": sequence_number} for sequence_number in failed]}


# Fed by the pins table's stream through a second event source mapping that
# infra/ renders (chalicelib.webhooks.events.WEBHOOK_FILTER), apart from the
# folds: a slow webhook queue never holds up the counts, nor they it.
@app.lambda_function(name="webhook_events")
def webhook_events(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Turns the status changes of tenants' pins into deliveries to their
    webhook endpoints; returns the record the stream must deliver again from."""
    failed = services().webhooks.fanout.consume(event.get("Records", []))
    return {"batchItemFailures": [{"itemIdentifier": sequence_number} for sequence_number in failed]}


WEBHOOK_QUEUE = "pinning-service-webhooks.fifo"


@app.on_sqs_message(queue=WEBHOOK_QUEUE, batch_size=1)  # chalicelib.webhooks.delivery.BATCH_SIZE
def webhook_worker(event: SQSEvent) -> dict[str, list[dict[str, str]]]:
    """Delivers webhooks (signed POSTs); a failed one is held for its backoff
    and comes back (chalicelib.webhooks.delivery)."""
    from chalicelib.webhooks.delivery import deliver_batch, emit_delivery_metrics

    parts, settings = services().webhooks, services().settings
    report = deliver_batch([record.to_dict() for record in event], parts.deliverer, parts.queue)
    if settings.emit_metrics:
        emit_delivery_metrics(report, settings.stage, sys.stdout)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in report.failed]}
