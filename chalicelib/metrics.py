"""The service's own CloudWatch metrics, as embedded-metric-format log lines.

Lambda's log stream carries a line to CloudWatch, which turns it into
metrics: no API call and no permission (infra/ alarms on some of them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TextIO

from chalicelib.pins.timestamps import now_ms

NAMESPACE = "PinningService"


def emit_metrics(values: Mapping[str, tuple[float, str]], stage: str, out: TextIO) -> None:
    """One line of metrics (name -> (value, unit)) of the stage."""
    line = {
        "_aws": {
            "Timestamp": now_ms(),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Stage"]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in values.items()],
                }
            ],
        },
        "Stage": stage,
        **{name: value for name, (value, _) in values.items()},
    }
    out.write(json.dumps(line) + "\n")
    out.flush()
