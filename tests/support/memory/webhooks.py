"""An EndpointRepository in dicts, for domain tests."""

from __future__ import annotations

from chalicelib.webhooks.endpoints import Attempt, Endpoint


class MemoryWebhooks:
    def __init__(self) -> None:
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.logged: dict[str, list[tuple[Attempt, int]]] = {}  # endpoint id -> (attempt, expires ms)

    def add(self, endpoint: Endpoint) -> None:
        self.endpoints[(endpoint.tenant_id, endpoint.endpoint_id)] = endpoint

    def get(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        return self.endpoints.get((tenant_id, endpoint_id))

    def of_tenant(self, tenant_id: str) -> list[Endpoint]:
        found = [endpoint for (tenant, _), endpoint in self.endpoints.items() if tenant == tenant_id]
        return sorted(found, key=lambda endpoint: endpoint.endpoint_id)

    def remove(self, tenant_id: str, endpoint_id: str) -> bool:
        return self.endpoints.pop((tenant_id, endpoint_id), None) is not None

    def log(self, attempt: Attempt, expires_ms: int) -> None:
        self.logged.setdefault(attempt.endpoint_id, []).append((attempt, expires_ms))

    def attempts(self, endpoint_id: str, limit: int) -> list[Attempt]:
        attempts = [attempt for attempt, _ in self.logged.get(endpoint_id, [])]
        newest_first = sorted(attempts, key=lambda a: (a.at_ms, a.message_id, a.attempt), reverse=True)
        return newest_first[:limit]
