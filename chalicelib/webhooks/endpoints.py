"""A tenant's webhook endpoints: what they are, how they are registered,
listed and removed, and the log of their delivery attempts.

An endpoint is a URL, the event types it wants and its secret (Standard
Webhooks: `whsec_` and 32 random bytes in base64), generated here and
shown once, when the endpoint is registered.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chalicelib.webhooks.addresses import EndpointRefused
from chalicelib.webhooks.info_events import INFO_EVENTS

# The status changes of a tenant's pins, one event type each.
PIN_EVENTS = ("pin.queued", "pin.pinning", "pin.pinned", "pin.failed", "pin.deleted")
# The cold-tier and Filecoin events of a tenant's requests (chalicelib.webhooks.info_events).
EVENT_TYPES = PIN_EVENTS + INFO_EVENTS
MAX_ENDPOINTS = 10  # per tenant: the stream consumer sends each event to each of them
MAX_URL_CHARS = 2048
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# Attempts a delivery log answers at most, newest first; older ones expire (DELIVERY_LOG_DAYS).
DELIVERY_LOG_LIMIT = 100
DELIVERY_LOG_DAYS = 7


class InvalidEndpoint(ValueError):
    """A registration that cannot be accepted: why, for the caller."""


class TooManyEndpoints(ValueError):
    pass


@dataclass(frozen=True)
class Endpoint:
    tenant_id: str
    endpoint_id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_ms: int

    def wants(self, event_type: str) -> bool:
        return event_type in self.events


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt: its HTTP status (None: no answer) or error."""

    endpoint_id: str
    at_ms: int
    message_id: str
    event_type: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class EndpointRepository(Protocol):
    def add(self, endpoint: Endpoint) -> None: ...

    def get(self, tenant_id: str, endpoint_id: str) -> Endpoint | None: ...

    def of_tenant(self, tenant_id: str) -> list[Endpoint]: ...

    def remove(self, tenant_id: str, endpoint_id: str) -> bool:
        """True when there was such an endpoint."""
        ...

    def log(self, attempt: Attempt, expires_ms: int) -> None: ...

    def attempts(self, endpoint_id: str, limit: int) -> list[Attempt]:
        """The endpoint's last attempts, newest first."""
        ...


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_endpoint_id() -> str:
    return "ep_" + secrets.token_hex(10)


def parse_events(events: Iterable[object]) -> tuple[str, ...]:
    """The event types asked for, each once, in EVENT_TYPES' order."""
    asked = list(events)
    if not asked:
        raise InvalidEndpoint(f"name at least one event type of: {', '.join(EVENT_TYPES)}")
    unknown = [event for event in asked if event not in EVENT_TYPES]
    if unknown:
        raise InvalidEndpoint(f"unknown event type(s) {unknown!r}; known: {', '.join(EVENT_TYPES)}")
    return tuple(event for event in EVENT_TYPES if event in asked)


class Webhooks:
    """Registration of one stage's endpoints (the API's and the CLI's)."""

    def __init__(
        self,
        repository: EndpointRepository,
        check_url: Callable[[str], object],
        clock: Callable[[], int],
    ) -> None:
        self._repository = repository
        self._check_url = check_url  # raises EndpointRefused
        self._clock = clock

    def register(self, tenant_id: str, url: object, events: Sequence[object]) -> Endpoint:
        if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
            raise InvalidEndpoint(f"url must be a string of 1 to {MAX_URL_CHARS} characters")
        wanted = parse_events(events)
        try:
            self._check_url(url)
        except EndpointRefused as refused:
            raise InvalidEndpoint(str(refused)) from refused
        if len(self._repository.of_tenant(tenant_id)) >= MAX_ENDPOINTS:
            raise TooManyEndpoints(f"a tenant has at most {MAX_ENDPOINTS} webhook endpoints")
        endpoint = Endpoint(tenant_id, new_endpoint_id(), url, wanted, new_secret(), self._clock())
        self._repository.add(endpoint)
        return endpoint

    def of_tenant(self, tenant_id: str) -> list[Endpoint]:
        return self._repository.of_tenant(tenant_id)

    def get(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        return self._repository.get(tenant_id, endpoint_id)

    def remove(self, tenant_id: str, endpoint_id: str) -> bool:
        return self._repository.remove(tenant_id, endpoint_id)

    def attempts(self, tenant_id: str, endpoint_id: str, limit: int = DELIVERY_LOG_LIMIT) -> list[Attempt] | None:
        """The endpoint's last attempts; None when the tenant has no such endpoint."""
        if self._repository.get(tenant_id, endpoint_id) is None:
            return None
        return self._repository.attempts(endpoint_id, min(limit, DELIVERY_LOG_LIMIT))
