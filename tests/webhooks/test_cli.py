"""`cli.admin webhooks`: add, list, remove and the delivery log, against moto."""

from __future__ import annotations

import pytest

from chalicelib.storage.webhook_repository import DynamoWebhookRepository
from chalicelib.webhooks.endpoints import Attempt
from tests.cli.test_admin_cli import assert_one_line_error, run, run_json

URL = "https://93.184.215.14/hooks"


@pytest.fixture
def tenant_id(settings) -> str:
    return run_json("tenants", "create", "alice")["tenant_id"]


def test_an_endpoint_added_is_listed_without_its_secret_and_removed(tenant_id):
    # Given a tenant
    # When an endpoint is added for two event types
    added = run_json("webhooks", "add", tenant_id, URL, "--events", "pin.failed,pin.pinned")
    # Then its secret is shown once, and the listing shows it without
    assert added["secret"].startswith("whsec_") and added["events"] == ["pin.pinned", "pin.failed"]
    listed = run_json("webhooks", "list", tenant_id)
    assert [(e["id"], e["url"]) for e in listed] == [(added["id"], URL)] and "secret" not in listed[0]
    assert added["id"] in run("webhooks", "list", tenant_id).stdout
    # When it is removed
    assert run_json("webhooks", "remove", tenant_id, added["id"]) == {"removed": added["id"]}
    # Then it is gone, and removing it again is an error
    assert run_json("webhooks", "list", tenant_id) == []
    assert_one_line_error(run("webhooks", "remove", tenant_id, added["id"]), "no endpoint")


def test_refused_endpoints_are_one_line_errors(tenant_id):
    # Given a tenant
    # When endpoints outside the rules, or for an unknown tenant, are added
    # Then each is refused with one line and nothing is registered
    assert_one_line_error(
        run("webhooks", "add", tenant_id, "https://10.0.0.1/", "--events", "pin.pinned"), "10.0.0.0/8"
    )
    assert_one_line_error(run("webhooks", "add", tenant_id, URL, "--events", "pin.burnt"), "unknown event type")
    assert_one_line_error(run("webhooks", "add", "nobody", URL, "--events", "pin.pinned"), "unknown tenant")
    assert run_json("webhooks", "list", tenant_id) == []


def test_the_delivery_log_shows_attempts_newest_first(tenant_id):
    # Given an endpoint with two attempts logged
    added = run_json("webhooks", "add", tenant_id, URL, "--events", "pin.pinned")
    for at_ms, status in ((1_000, None), (2_000, 200)):
        error = "TimeoutError: timed out" if status is None else None
        attempt = Attempt(added["id"], at_ms, "msg_1", "pin.pinned", at_ms // 1000, status, error, 5000)
        DynamoWebhookRepository().log(attempt, 10**13)
    # When its deliveries are shown
    shown = run_json("webhooks", "deliveries", tenant_id, added["id"])
    table = run("webhooks", "deliveries", tenant_id, added["id"]).stdout
    # Then the newest comes first, with its status or error
    assert [(a["attempt"], a["status_code"], a["error"]) for a in shown] == [
        (2, 200, None),
        (1, None, "TimeoutError: timed out"),
    ]
    assert "timed out" in table
    assert_one_line_error(run("webhooks", "deliveries", "someone-else", added["id"]), "no endpoint")
