"""Emulated AWS for the local stack: moto in server mode, on loopback only."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from collections.abc import MutableMapping
from typing import Any

from moto.server import ThreadedMotoServer

HOST = "127.0.0.1"
REGION = "us-east-1"

# Fake credentials, and no shared config or credentials file, profile or
# per-service endpoint: nothing can send this process to real AWS.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_DROPPED_PREFIXES = ("AWS_ENDPOINT_URL_", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")

# Messages that fail this often go to the dead-letter queue.
MAX_RECEIVE_COUNT = 5


def use_fake_aws(env: MutableMapping[str, str] = os.environ) -> None:
    for name in [name for name in env if name.startswith(_DROPPED_PREFIXES)]:
        del env[name]
    env.update(FAKE_AWS_ENV)


class MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer that reports a port in use instead of waiting forever
    (its thread sets the ready event only once bound; werkzeug exits that thread
    with SystemExit after printing its own message)."""

    def __init__(self, port: int) -> None:
        super().__init__(ip_address=HOST, port=port, verbose=False)
        self._error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            super()._server_entry()
        except SystemExit:
            self._error = OSError(errno.EADDRINUSE, f"cannot listen on {HOST}:{self._port}")
        except BaseException as error:  # noqa: BLE001 - raised again by start()
            self._error = error
        self._server_ready_event.set()

    def start(self) -> None:
        if self._port:
            _check_port_free(self._port)
        # A line per AWS call (and per credential lookup) is noise; warnings still show.
        for name in ("werkzeug", "botocore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        super().start()
        if self._error is not None:
            raise self._error

    @property
    def endpoint_url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


def _check_port_free(port: int) -> None:
    """Raise OSError(EADDRINUSE) now rather than from werkzeug's thread."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
        probe.bind((HOST, port))
    finally:
        probe.close()


def _client(service: str, endpoint_url: str) -> Any:
    import botocore.session

    return botocore.session.get_session().create_client(service, region_name=REGION, endpoint_url=endpoint_url)


def create_pin_queue(endpoint_url: str, name: str, visibility_timeout: int) -> dict[str, str]:
    """The pin queue and its dead-letter queue; returns both URLs."""
    sqs = _client("sqs", endpoint_url)
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": str(visibility_timeout)},
    )["QueueUrl"]
    return {"queue": queue_url, "dead_letter_queue": dlq_url}


def create_archive_bucket(endpoint_url: str, name: str) -> None:
    """The cold tier's bucket (chalicelib.cold.archiver); a second call keeps it."""
    s3 = _client("s3", endpoint_url)
    try:
        s3.create_bucket(Bucket=name)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
