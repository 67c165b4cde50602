"""Deliveries from the webhooks queue: a signed POST each, at least once,
retried with backoff for more than a day, then dead-lettered.

Retries hold the message rather than send a new one: a failed delivery's
visibility is set to its backoff (BACKOFF_SECONDS, by SQS's receive count)
and it stays in the FIFO queue, so its message group (the endpoint and
request) waits behind it and the request's later events cannot overtake
it. SQS delays a new message by 15 minutes at most; a visibility timeout
may be 12 hours, so the whole schedule fits without re-sending. After
MAX_ATTEMPTS receives the queue's redrive policy moves it to the
dead-letter queue (infra/render.py: its alarm).

An endpoint removed since stops its deliveries: they are dropped, not
attempted. Every attempt is logged for the endpoint (its status code or
error), kept for DELIVERY_LOG_DAYS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from chalicelib.webhooks.addresses import EndpointRefused, Target
from chalicelib.webhooks.endpoints import DELIVERY_LOG_DAYS, Attempt, EndpointRepository
from chalicelib.webhooks.messages import Delivery, delivery_of
from chalicelib.webhooks.sender import Poster, signed_headers

logger = logging.getLogger("pinning.webhooks")

# The wait after each failed attempt: 31.7 hours in all, over MAX_ATTEMPTS attempts.
BACKOFF_SECONDS = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800, 28800)
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1  # the queue's maxReceiveCount
# Messages one invocation takes. One: a FIFO receive hands out the messages
# of a group together, and SQS counts a receive of each; a request's later
# events received with a failing one would use up their own receives (the
# dead-letter count) without an attempt. Taken one at a time, a group's
# later messages are not received while its first is held.
BATCH_SIZE = 1
DAY_MS = 24 * 3600 * 1000


def backoff_seconds(attempt: int) -> int:
    """The wait after failed attempt `attempt` (1 for the first)."""
    return BACKOFF_SECONDS[min(max(attempt, 1), len(BACKOFF_SECONDS)) - 1]


class Visibility(Protocol):
    def hide(self, receipt_handle: str, seconds: int) -> None: ...


@dataclass(frozen=True)
class Outcome:
    done: bool  # delivered, or nothing left to deliver
    attempt: Attempt | None  # None: not attempted (the endpoint is gone or no longer wants it)


class Deliverer:
    def __init__(
        self,
        endpoints: EndpointRepository,
        check_url: Callable[[str], Target],
        poster: Poster,
        clock_ms: Callable[[], int],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoints = endpoints
        self._check_url = check_url
        self._poster = poster
        self._clock_ms = clock_ms
        self._monotonic = monotonic

    def deliver(self, delivery: Delivery, attempt: int) -> Outcome:
        endpoint = self._endpoints.get(delivery.tenant_id, delivery.endpoint_id)
        if endpoint is None or not endpoint.wants(delivery.event_type):
            return Outcome(True, None)
        started, at_ms = self._monotonic(), self._clock_ms()
        status: int | None = None
        error: str | None = None
        try:
            # Checked again now: the name may point elsewhere since its registration.
            target = self._check_url(endpoint.url)
            at = datetime.fromtimestamp(at_ms / 1000, UTC)
            headers = signed_headers(endpoint.secret, delivery.message_id, at, delivery.payload)
            status = self._poster.post(target, headers, delivery.payload.encode())
            if not 200 <= status < 300:
                error = f"answered {status}"
        except EndpointRefused as refused:
            error = f"refused: {refused}"
        except OSError as failure:
            error = f"{type(failure).__name__}: {failure}"
        duration_ms = int((self._monotonic() - started) * 1000)
        logged = Attempt(
            delivery.endpoint_id,
            at_ms,
            delivery.message_id,
            delivery.event_type,
            attempt,
            status,
            error,
            duration_ms,
        )
        self._endpoints.log(logged, at_ms + DELIVERY_LOG_DAYS * DAY_MS)
        return Outcome(logged.delivered, logged)


@dataclass
class BatchReport:
    failed: list[str] = field(default_factory=list)  # message ids, for Lambda's batchItemFailures
    attempts_failed: int = 0
    # From the change to its receipt, ms, of each event delivered.
    latencies_ms: list[int] = field(default_factory=list)

    def add(self, other: BatchReport) -> None:
        self.failed += other.failed
        self.attempts_failed += other.attempts_failed
        self.latencies_ms += other.latencies_ms


def _attempt_of(attributes: Mapping[str, Any]) -> int:
    try:
        return int(attributes.get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


def _run_group(
    group: list[tuple[Mapping[str, Any], Delivery]], deliverer: Deliverer, visibility: Visibility
) -> BatchReport:
    report = BatchReport()
    for position, (record, delivery) in enumerate(group):
        attempt = _attempt_of(record.get("attributes", {}))
        outcome = deliverer.deliver(delivery, attempt)
        if outcome.done:
            if outcome.attempt is not None:
                report.latencies_ms.append(outcome.attempt.at_ms - delivery.at_ms)
            continue
        report.attempts_failed += 1
        visibility.hide(str(record["receiptHandle"]), backoff_seconds(attempt))
        report.failed.append(str(record["messageId"]))
        for later, _ in group[position + 1 :]:
            # Not attempted: back at once, behind the failed one (which holds its group).
            visibility.hide(str(later["receiptHandle"]), 0)
            report.failed.append(str(later["messageId"]))
        break
    return report


def deliver_batch(records: Iterable[Mapping[str, Any]], deliverer: Deliverer, visibility: Visibility) -> BatchReport:
    """Delivers a batch of queue records, each message group in order and the
    groups at once (a slow endpoint holds up only its own group). After a
    failure, the group's later records are not attempted: they fail too, to
    come back after it (FIFO queues keep a group's order only so)."""
    groups: dict[str, list[tuple[Mapping[str, Any], Delivery]]] = {}
    for record in records:
        delivery = delivery_of(str(record.get("body", "")))
        if delivery is None:
            logger.error("malformed webhook delivery dropped", extra={"message_id": record.get("messageId")})
            continue
        groups.setdefault(delivery.group, []).append((record, delivery))
    report = BatchReport()
    if groups:
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            for part in pool.map(lambda group: _run_group(group, deliverer, visibility), groups.values()):
                report.add(part)
    return report


def emit_delivery_metrics(report: BatchReport, stage: str, out: TextIO) -> None:
    """A batch's deliveries, failed attempts and slowest change-to-receipt time."""
    from chalicelib.metrics import emit_metrics

    values = {
        "WebhooksDelivered": (float(len(report.latencies_ms)), "Count"),
        "WebhookAttemptsFailed": (float(report.attempts_failed), "Count"),
    }
    if report.latencies_ms:
        values["WebhookLatencyMs"] = (float(max(report.latencies_ms)), "Milliseconds")
    emit_metrics(values, stage, out)
