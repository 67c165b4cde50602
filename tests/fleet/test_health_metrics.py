"""The fleet check reports node counts as a CloudWatch metric (embedded
metric format) that the UnhealthyNodes alarm of infra/ watches."""

from __future__ import annotations

import io
import json

from chalicelib.fleet.health import emit_health_metrics
from chalicelib.metrics import NAMESPACE as METRIC_NAMESPACE
from infra.render import CHALICE_CONFIG, render


def test_one_line_reports_healthy_and_unhealthy_nodes_for_the_stage():
    out = io.StringIO()

    emit_health_metrics({"node-a": True, "node-b": False, "node-c": True}, "prod", out)

    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    (directive,) = entry["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRIC_NAMESPACE
    assert directive["Dimensions"] == [["Stage"]]
    assert {m["Name"] for m in directive["Metrics"]} == {"HealthyNodes", "UnhealthyNodes"}
    assert (entry["Stage"], entry["HealthyNodes"], entry["UnhealthyNodes"]) == ("prod", 2, 1)


def test_the_alarm_watches_the_metric_the_check_emits():
    config = json.loads(CHALICE_CONFIG.read_text())
    alarm = render("prod", config)["Resources"]["UnhealthyNodesAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (METRIC_NAMESPACE, "UnhealthyNodes")
    assert alarm["Dimensions"] == [{"Name": "Stage", "Value": "prod"}]
