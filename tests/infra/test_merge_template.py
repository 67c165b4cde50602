"""infra/service-<stage>.json is merged into `chalice package` output: it is
rendered from the code (infra/render.py), and its keys must name the
resources Chalice generates for app.py, or the merge adds nothing."""

from __future__ import annotations

import json

import pytest
from chalice.app import SQSEventConfig

import app as app_module
from infra.render import GATEWAY_RESPONSES, STAGE_OPTIONS, camel, output_path, rendered_text


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_the_checked_in_template_is_the_rendering_of_the_current_code(stage):
    # A model, a function's access or .chalice/config.json changed: run `python -m infra.render`.
    assert output_path(stage).read_text(encoding="utf-8") == rendered_text(stage)


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_every_sqs_handler_reports_partial_batch_failures(stage):
    template = json.loads(output_path(stage).read_text(encoding="utf-8"))
    # Given every SQS-triggered function of the app
    handlers = [source for source in app_module.app.event_sources if isinstance(source, SQSEventConfig)]
    assert {source.name for source in handlers} == {
        "pin_worker",
        "pin_dead_letters",
        "archive_worker",
        "archive_dead_letters",
        "webhook_worker",
    }
    for source in handlers:
        function = camel(source.name)
        # Then the merge template turns on ReportBatchItemFailures on its event source
        event = template["Resources"][function]["Properties"]["Events"][f"{function}SqsEventSource"]
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_unknown_routes_answer_404_in_the_failure_shape():
    response = json.loads(GATEWAY_RESPONSES.read_text())["Resources"]["UnknownRouteResponse"]["Properties"]
    assert response["ResponseType"] == "MISSING_AUTHENTICATION_TOKEN"
    assert response["StatusCode"] == "404"
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert body["error"]["reason"] == "NOT_FOUND"
