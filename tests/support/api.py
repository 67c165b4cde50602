"""A user's view of the API: Chalice's test client, a bearer token, and the
OpenAPI check applied to every response the tests see."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from chalice.test import Client

from tests.support.openapi import assert_response_conforms


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def reason(self) -> str | None:
        return (self.json or {}).get("error", {}).get("reason")


class ApiClient:
    def __init__(self, client: Client, token: str | None) -> None:
        self._client = client
        self.token = token

    def as_token(self, token: str | None) -> ApiClient:
        return ApiClient(self._client, token)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = {"Accept": "application/json"}
        if self.token is not None:
            all_headers["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        url = path + ("?" + urlencode(params, doseq=True) if params else "")
        response = self._client.http.request(method, url, headers=all_headers, body=body or b"")
        reply = Reply(response.status_code, dict(response.headers), response.body or b"")
        assert_response_conforms(method, path, reply.status, reply.headers, reply.body)
        return reply

    def pin(self, cid: str, **fields: Any) -> dict[str, Any]:
        reply = self.request("POST", "/pins", json_body={"cid": cid, **fields})
        assert reply.status == 202, reply.body
        return reply.json

    def list(self, **params: Any) -> dict[str, Any]:
        reply = self.request("GET", "/pins", params=params)
        assert reply.status == 200, reply.body
        return reply.json
