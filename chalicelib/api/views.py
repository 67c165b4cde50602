"""What every route shares: error mapping and the structured error log."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

from chalice import Response

from chalicelib.api.errors import ApiError, failure, not_found, unauthorized
from chalicelib.busy import StorageBusy
from chalicelib.pins.idempotency import IdempotencyKeyReused
from chalicelib.pins.scan_limit import QueryTooBroad
from chalicelib.pins.service import NoStorageNodes, PinNotFound
from chalicelib.tenants.authenticator import Unauthenticated

logger = logging.getLogger("pinning.api")

# Chalice answers some requests itself ({"Code", "Message"} bodies).
_CHALICE_REASONS: dict[int, str] = {
    400: "BAD_REQUEST",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    415: "UNSUPPORTED_CONTENT_TYPE",
}


def api_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """Turns domain outcomes into Failure responses; never leaks a traceback."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except ApiError as error:
            return error.response()
        except Unauthenticated as error:
            return unauthorized(error.details).response()
        except PinNotFound:
            return not_found().response()
        except IdempotencyKeyReused as error:
            return failure(422, error.reason, error.details)
        except QueryTooBroad as error:
            # Valid, but more than one request may read: the client narrows it.
            return failure(422, error.reason, error.details)
        except NoStorageNodes as error:
            return failure(503, "SERVICE_UNAVAILABLE", str(error), {"Retry-After": "60"})
        except StorageBusy as error:
            logger.warning("storage busy", extra={"view": view.__name__, "error": str(error)})
            return failure(503, "SERVICE_UNAVAILABLE", "the service is busy; retry shortly", {"Retry-After": "5"})
        except Exception:
            error_id = uuid.uuid4().hex
            logger.exception("unexpected error", extra={"error_id": error_id, "view": view.__name__})
            return failure(500, "INTERNAL_SERVER_ERROR", f"unexpected error; error id {error_id}")

    return wrapper


def in_failure_shape(response: Response) -> Response:
    """Rewrites Chalice's own error bodies into the Failure shape."""
    body = response.body
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        reason = _CHALICE_REASONS.get(response.status_code, "INTERNAL_SERVER_ERROR")
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        return failure(response.status_code, reason, str(body["Message"]), headers)
    return response


def method_not_allowed(allowed: str) -> Response:
    return failure(405, "METHOD_NOT_ALLOWED", f"use one of: {allowed}", {"Allow": allowed})
