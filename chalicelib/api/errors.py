"""Every error the API sends has the spec's Failure shape:
{"error": {"reason": "<MACHINE_READABLE>", "details": "<for humans>"}}."""

from __future__ import annotations

from collections.abc import Mapping

from chalice import Response

from chalicelib.api.http import json_response


class ApiError(Exception):
    def __init__(self, status: int, reason: str, details: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(details)
        self.status = status
        self.reason = reason
        self.details = details
        self.headers = headers or {}

    def response(self) -> Response:
        return failure(self.status, self.reason, self.details, self.headers)


def failure(status: int, reason: str, details: str, headers: Mapping[str, str | list[str]] | None = None) -> Response:
    # Details may quote what the client sent: lone surrogates are spelled out
    # as text, so every client's JSON decoder can read the answer.
    readable = details.encode("utf-8", "backslashreplace").decode()
    return json_response({"error": {"reason": reason, "details": readable}}, status, headers)


def bad_request(reason: str, details: str) -> ApiError:
    return ApiError(400, reason, details)


def unauthorized(details: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", details, {"WWW-Authenticate": 'Bearer realm="pinning"'})


def not_found(details: str = "The specified resource was not found") -> ApiError:
    return ApiError(404, "NOT_FOUND", details)
