"""The reconciler reports its runs as CloudWatch metrics (embedded metric
format), which the ReconcilerRepairsAlarm of infra/ adds up."""

from __future__ import annotations

import io
import json

from chalicelib.fleet.reconciler import METRICS, ReconcileReport, emit_reconcile_metrics
from chalicelib.metrics import NAMESPACE as METRIC_NAMESPACE
from infra.render import CHALICE_CONFIG, render


def emitted(report: ReconcileReport, stage: str) -> dict:
    out = io.StringIO()
    emit_reconcile_metrics(report, stage, out)
    (line,) = out.getvalue().splitlines()
    return json.loads(line)


def test_a_runs_counts_are_one_embedded_metric_line():
    report = ReconcileReport(nodes=3, skipped=1, missing_found=2, repaired=1, leaked_found=5, reclaimed=4)
    report.bytes_reclaimed, report.counts_corrected = 8192, 1
    report.orphans_found, report.orphans_released = 3, 2

    entry = emitted(report, "prod")

    (directive,) = entry["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["Stage"]]
    units = {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}
    assert units["BytesReclaimed"] == "Bytes"
    values = {name: entry[name] for name in units}
    assert values == {
        "MissingPinsFound": 2,
        "MissingPinsRepaired": 1,
        "LeakedPinsFound": 5,
        "LeakedPinsReclaimed": 4,
        "BytesReclaimed": 8192,
        "HolderCountsCorrected": 1,
        "OrphanHoldsFound": 3,
        "OrphanHoldsReleased": 2,
        "ReconcilerSkippedNodes": 1,
    }


def test_the_alarm_adds_up_the_repairs_the_reconciler_emits_for_its_stage():
    # Given the prod template and a run's metric line
    config = json.loads(CHALICE_CONFIG.read_text())
    resources = render("prod", config)["Resources"]
    alarm = resources["ReconcilerRepairsAlarm"]["Properties"]
    entry = emitted(ReconcileReport(missing_found=1), "prod")

    # Then the alarm reads metrics the line carries, in its namespace and stage, and fires on any
    stats = [metric["MetricStat"]["Metric"] for metric in alarm["Metrics"] if "MetricStat" in metric]
    assert {stat["MetricName"] for stat in stats} == {
        "MissingPinsFound",
        "LeakedPinsReclaimed",
        "HolderCountsCorrected",
        "OrphanHoldsReleased",
    }
    assert all(stat["MetricName"] in entry for stat in stats)
    assert {stat["Namespace"] for stat in stats} == {METRIC_NAMESPACE}
    assert all(stat["Dimensions"] == [{"Name": "Stage", "Value": "prod"}] for stat in stats)
    (expression,) = [metric for metric in alarm["Metrics"] if "Expression" in metric]
    assert set(expression["Expression"].split(" + ")) == {metric["Id"] for metric in alarm["Metrics"]} - {"repairs"}
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    # And the reconciler itself is scheduled with an errors alarm of its own, reaching Kubo and the tables
    assert resources["ReconcileFleetErrorsAlarm"]["Properties"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "ReconcileFleet"}}
    ]
    assert "KUBO_RPC_SECRET_ARN" in resources["ReconcileFleet"]["Properties"]["Environment"]["Variables"]


def test_every_count_of_a_run_has_a_metric():
    assert set(METRICS) == set(ReconcileReport().as_dict()) - {"nodes"}
