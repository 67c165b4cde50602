"""JSON responses with an explicit Content-Type (clients decode only JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalice import Response

JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: Mapping[str, str | list[str]] | None = None) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": JSON, **(headers or {})})
