"""The API stage's throttle: every method of the stage throttled together by
API Gateway, a backstop well above what one tenant's limits let through a
container, answered in the Failure shape with Retry-After."""

from __future__ import annotations

import json

import pytest

from chalicelib.config import Settings
from infra.render import GATEWAY_RESPONSES, STAGE_OPTIONS, output_path


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_every_method_of_the_stage_is_throttled_as_its_options_say(stage):
    options = STAGE_OPTIONS[stage]
    rest_api = json.loads(output_path(stage).read_text(encoding="utf-8"))["Resources"]["RestAPI"]
    assert rest_api["Properties"]["MethodSettings"] == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": options.api_rate_per_second,
            "ThrottlingBurstLimit": options.api_burst,
        }
    ]
    # A backstop: above the stage's default for one tenant (per container)
    defaults = Settings()
    assert options.api_rate_per_second > defaults.rate_limit_per_second
    assert options.api_burst > defaults.rate_limit_burst


def test_a_throttled_request_gets_a_failure_with_retry_after():
    responses = json.loads(GATEWAY_RESPONSES.read_text(encoding="utf-8"))["Resources"]
    (throttled,) = [r["Properties"] for r in responses.values() if r["Properties"]["ResponseType"] == "THROTTLED"]
    assert throttled["StatusCode"] == "429"
    assert throttled["ResponseParameters"]["gatewayresponse.header.Retry-After"].strip("'").isdigit()
    body = json.loads(throttled["ResponseTemplates"]["application/json"])
    assert body["error"]["reason"] == "RATE_LIMITED"
