"""infra/template.json is merged into `chalice package` output: its keys must
name the resources Chalice generates for app.py, or the merge adds nothing."""
from __future__ import annotations

import json
from pathlib import Path

from chalice.app import SQSEventConfig

import app as app_module

TEMPLATE = json.loads((Path(__file__).resolve().parents[2] / "infra" / "template.json").read_text())


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def test_every_sqs_handler_reports_partial_batch_failures():
    # Given every SQS-triggered function of the app
    handlers = [source for source in app_module.app.event_sources if isinstance(source, SQSEventConfig)]
    assert {source.name for source in handlers} == {"pin_worker", "pin_dead_letters"}
    for source in handlers:
        function = camel(source.name)
        # Then the merge template turns on ReportBatchItemFailures on its event source
        event = TEMPLATE["Resources"][function]["Properties"]["Events"][f"{function}SqsEventSource"]
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_unknown_routes_answer_404_in_the_failure_shape():
    response = TEMPLATE["Resources"]["UnknownRouteResponse"]["Properties"]
    assert response["ResponseType"] == "MISSING_AUTHENTICATION_TOKEN"
    assert response["StatusCode"] == "404"
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert body["error"]["reason"] == "NOT_FOUND"
