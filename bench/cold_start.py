"""Cold start: importing the API module versus importing only the libraries
it stands on, in fresh processes, interleaved.

Each child times its own import with time.perf_counter and prints it; the
parent also times the whole process (interpreter start to exit).

    .venv/bin/python -m bench.cold_start [--quick]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence

from bench.support import REPO_ROOT, median, print_table, quick_flag, verdict

TARGET_RATIO = 1.25
SUBJECTS = {
    "import app": "app",
    "import boto3, chalice, pynamodb.models": "boto3, chalice, pynamodb.models",
}


def _child_code(modules: str) -> str:
    return f"import time\nt = time.perf_counter()\nimport {modules}\nprint(repr(time.perf_counter() - t))\n"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return env


def run_once(modules: str) -> tuple[float, float]:
    """(import seconds measured in the child, whole-process wall seconds)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _child_code(modules)],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"FATAL: `import {modules}` failed:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1]), wall


def import_profile(modules: str, top: int = 8) -> list[tuple[str, float]]:
    """What `import app` spends its time on: the module itself and its direct
    imports, cumulative ms under -X importtime (a library is charged to the
    first module that imports it)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {modules}"],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    parsed = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( +)(\S+)$", line)
        if match:
            parsed.append((len(match.group(2)), match.group(3), int(match.group(1)) / 1000))
    # Post-order: a module's imports are listed just before it, one level deeper.
    end = max(i for i, (indent, name, _) in enumerate(parsed) if indent == 1 and name == modules.split(",")[0])
    start = max([i for i in range(end) if parsed[i][0] == 1], default=-1) + 1
    entries = [(name, ms) for indent, name, ms in parsed[start : end + 1] if indent in (1, 3)]
    return sorted(entries, key=lambda e: e[1], reverse=True)[:top]


Sample = tuple[float, float]  # (import seconds in the child, whole-process wall seconds)


def _samples(runs: int) -> dict[str, list[Sample]]:
    labels = list(SUBJECTS)
    for label in labels:  # warm-up, discarded: bytecode compiled, page cache filled
        run_once(SUBJECTS[label])
    samples: dict[str, list[Sample]] = {label: [] for label in labels}
    for round_no in range(runs):
        order = labels if round_no % 2 == 0 else labels[::-1]  # interleaved, alternating first
        for label in order:
            samples[label].append(run_once(SUBJECTS[label]))
    return samples


def _ms_range(values: list[float]) -> str:
    return f"{min(values) * 1000:.0f}-{max(values) * 1000:.0f}"


def _subject_row(label: str, samples: list[Sample], medians: Sample) -> list[object]:
    imports = [sample[0] for sample in samples]
    walls = [sample[1] for sample in samples]
    return [
        label,
        len(imports),
        f"{medians[0] * 1000:.0f}",
        _ms_range(imports),
        f"{medians[1] * 1000:.0f}",
        _ms_range(walls),
    ]


def _ratio_row(app: list[Sample], base: list[Sample], ratio_import: float, ratio_wall: float) -> list[object]:
    def min_ratio(index: int) -> float:
        return min(sample[index] for sample in app) / min(sample[index] for sample in base)

    return [
        "ratio app / libraries",
        "",
        f"{ratio_import:.2f}",
        f"min/min {min_ratio(0):.2f}",
        f"{ratio_wall:.2f}",
        f"min/min {min_ratio(1):.2f}",
    ]


def run(quick: bool) -> dict[str, object]:
    runs = 7 if quick else 21
    samples = _samples(runs)
    app_label, base_label = labels = list(SUBJECTS)
    med = {label: (median(s[0] for s in samples[label]), median(s[1] for s in samples[label])) for label in labels}
    ratio_import = med[app_label][0] / med[base_label][0]
    ratio_wall = med[app_label][1] / med[base_label][1]
    rows = [_subject_row(label, samples[label], med[label]) for label in labels]
    rows.append(_ratio_row(samples[app_label], samples[base_label], ratio_import, ratio_wall))
    load = os.getloadavg()[0]
    print(
        f"\ncold_start: {runs} fresh processes each, interleaved, cwd={REPO_ROOT}, AWS_ENDPOINT_URL unset, "
        f"python {sys.version.split()[0]}; 1-min load average at the end {load:.2f} on {os.cpu_count()} cores "
        f"(other work on the machine widens the spread)"
    )
    print_table(
        "Import time in a fresh process (ms)",
        ["what", "runs", "import median", "import min-max", "process median", "process min-max"],
        rows,
    )
    heavy = import_profile(SUBJECTS[app_label])
    print_table(
        "Where `import app` spends its time: app and its direct imports (-X importtime, cumulative ms, one run)",
        ["module", "ms"],
        [[name, f"{ms:.1f}"] for name, ms in heavy],
    )
    print(
        "verdict: "
        + verdict(
            ratio_import <= TARGET_RATIO,
            f"import ratio {ratio_import:.2f} vs target <= {TARGET_RATIO}; whole process {ratio_wall:.2f}",
        )
    )
    return {"medians": med, "ratio": ratio_import, "ratio_wall": ratio_wall}


def main(argv: Sequence[str] | None = None) -> None:
    run(quick_flag(argv))


if __name__ == "__main__":
    main()
