"""An unexpected fault answers 500 with an id that is in its log line."""

from __future__ import annotations

import json
import logging

from chalicelib.logs import JsonFormatter


class BrokenStore:
    def find(self, tenant_id, query):
        raise RuntimeError("DynamoDB is on fire")


def test_fault_gives_500_with_an_error_id_found_in_the_structured_log(api, services, caplog):
    # Given a storage layer that fails unexpectedly
    services.pins._store = BrokenStore()

    # When a client lists its pins
    with caplog.at_level(logging.ERROR, logger="pinning.api"):
        reply = api.request("GET", "/pins")

    # Then it gets a Failure-shaped 500 naming an error id...
    assert reply.status == 500
    assert reply.reason == "INTERNAL_SERVER_ERROR"
    error_id = reply.json["error"]["details"].rsplit(" ", 1)[-1]
    assert len(error_id) == 32
    assert "fire" not in reply.json["error"]["details"]

    # ...and exactly one JSON log line carries that id with the traceback
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    matching = [line for line in lines if line.get("error_id") == error_id]
    assert len(matching) == 1
    assert "DynamoDB is on fire" in matching[0]["exception"]
