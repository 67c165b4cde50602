"""One signed POST (Standard Webhooks) to a checked address.

The connection goes to the address chalicelib.webhooks.addresses checked,
never to a name resolved again; TLS still verifies the certificate for the
URL's host (sent as SNI and Host). Redirects are never followed (an answer
is an answer: 3xx is not delivered), and every socket operation times out
after TIMEOUT_SECONDS.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from datetime import UTC, datetime
from typing import Protocol

from chalicelib.webhooks.addresses import Target

TIMEOUT_SECONDS = 5.0
# An endpoint's answer is read up to this much, then dropped: only its status matters.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "pinning-service-webhooks/1"


class Poster(Protocol):
    def post(self, target: Target, headers: dict[str, str], body: bytes) -> int:
        """The HTTP status of the answer; OSError (timeouts included) when there is none."""
        ...


def signed_headers(secret: str, message_id: str, at: datetime, payload: str) -> dict[str, str]:
    from standardwebhooks.webhooks import Webhook  # the library loads where deliveries are made

    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at.astimezone(UTC), payload),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class _PinnedHttp(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHttps(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class HttpPoster:
    def __init__(self, timeout: float = TIMEOUT_SECONDS, context: ssl.SSLContext | None = None) -> None:
        self._timeout = timeout
        self._context = context or ssl.create_default_context()

    def post(self, target: Target, headers: dict[str, str], body: bytes) -> int:
        connection: http.client.HTTPConnection = (
            _PinnedHttps(target, self._timeout, self._context)
            if target.scheme == "https"
            else _PinnedHttp(target, self._timeout)
        )
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read(MAX_ANSWER_BYTES)
            return answer.status
        except http.client.HTTPException as error:  # a malformed answer: no status to go by
            raise OSError(f"{type(error).__name__}: {error}") from error
        finally:
            connection.close()
