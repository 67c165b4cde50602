"""Time from starting the local stack (`make dev`) to its ready line, fresh and warm.

Each run starts `python -m devstack` as `make dev` does (free loopback
ports instead of 8000/4566/5001, so it never meets a stack already running)
and stops it with SIGTERM, as Ctrl-C does:

- fresh: a new state directory (new Kubo repos; tables are always new, moto
  keeps them in memory);
- warm: the same state directory again, right after (Kubo repos exist).

The clock starts just before the process is spawned (interpreter start and
imports included) and stops when the line "Pinning service ready at URL"
is read. The stack's progress lines give the breakdown: each row is the
time from one line to the next, as read. `make dev`'s own cost
with the venv in place is its stamp check (`make -q .venv/.installed`).

    .venv/bin/python -m bench.stack_ready [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.support import READY_LINE, REPO_ROOT, LocalStack, local_stack, print_table

READY_TARGET_SECONDS = 30.0  # issue 4: ready within 30 s once dependencies are installed
MERGE_BELOW = 0.01  # progress lines this close to the previous one are grouped in one row
STEP_WIDTH = 34  # characters of each progress line in a row's name


def _step(text: str) -> str:
    """A progress line without what differs between runs (URLs, ids, numbers)."""
    text = re.sub(r"https?://\S+", "URL", text.strip())
    text = re.sub(r"\b(Qm|12D3Koo|pst_|tn_)\S+", "ID", text)
    text = re.sub(r"(?<!\w)/\S+", "PATH", text)
    text = re.sub(r"\d+", "N", text)
    return text[:70]


def phases(stack: LocalStack) -> list[tuple[str, float]]:
    """(progress line, seconds since the line before it) up to the ready line."""
    steps: list[tuple[str, float]] = []
    previous, before, seen = 0.0, "spawn", Counter[str]()
    for at, text in stack.lines:
        if not text.strip():
            continue
        line = _step(text)
        seen[line] += 1
        if seen[line] > 1:  # the same line for another node: a step of its own
            line += f" #{seen[line]}"
        steps.append((f"{before[:STEP_WIDTH]} -> {line[:STEP_WIDTH]}", at - previous))
        previous, before = at, line
        if text.startswith(READY_LINE):
            break
    return steps


def make_overhead(runs: int) -> float | None:
    """Median seconds of `make -q` on the venv stamp, or None if the stamp is stale or make is missing."""
    if not shutil.which("make"):
        return None
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        done = subprocess.run(["make", "-q", ".venv/.installed"], cwd=REPO_ROOT, check=False)
        times.append(time.perf_counter() - began)
        if done.returncode != 0:
            return None
    return statistics.median(times)


def _spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def run(runs: int) -> dict[str, list[LocalStack]]:
    started: dict[str, list[LocalStack]] = {"fresh": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="bench-stack-ready-") as base:
        for index in range(runs):
            state_dir = Path(base) / f"run-{index}"
            for kind in ("fresh", "warm"):
                with local_stack(state_dir) as stack:
                    pass
                started[kind].append(stack)
    report(started, make_overhead(5))
    return started


def report(started: dict[str, list[LocalStack]], overhead: float | None) -> None:
    """Prints the tables for stacks started and stopped (by kind of start)."""
    _print_start_and_stop(started, overhead)
    _print_phases(started)


def _print_start_and_stop(started: dict[str, list[LocalStack]], overhead: float | None) -> None:
    runs = max(len(stacks) for stacks in started.values())
    kinds = list(started)
    rows = [
        ["spawn -> ready line"] + [_spread([s.ready_seconds for s in started[k]]) for k in kinds],
        ["SIGTERM -> exited"] + [_spread([s.stop_seconds for s in started[k]]) for k in kinds],
        ["`make dev` stamp check (make -q), median of 5", "-" if overhead is None else f"{overhead:.3f}", ""],
    ]
    worst = max(s.ready_seconds + (overhead or 0.0) for k in kinds for s in started[k])
    verdict = "met" if worst <= READY_TARGET_SECONDS else "NOT met"
    rows.append([f"target: ready <= {READY_TARGET_SECONDS:g} s (slowest run + make)", f"{worst:.2f}: {verdict}", ""])
    print_table(
        f"Local stack start, `python -m devstack` to its ready line (s, median (min-max) of {runs} runs each)",
        ["", *kinds],
        rows,
        note="fresh: new state dir (new Kubo repos); warm: the same state dir again. "
        "Stop: SIGTERM, as Ctrl-C, until the process exited.",
    )


def _step_medians(stacks: list[LocalStack], order: list[str]) -> dict[str, float]:
    """Median seconds of each step over `stacks`; steps first seen are appended to `order`."""
    per_step: dict[str, list[float]] = {}
    for stack in stacks:
        for step, seconds in phases(stack):
            per_step.setdefault(step, []).append(seconds)
            if step not in order:
                order.append(step)
    return {step: statistics.median(values) for step, values in per_step.items()}


def _print_phases(started: dict[str, list[LocalStack]]) -> None:
    kinds = list(started)
    order: list[str] = []
    medians = {kind: _step_medians(started[kind], order) for kind in kinds}
    phase_rows, grouped = [], {kind: 0.0 for kind in kinds}
    for step in order:
        values = [medians[kind].get(step, 0.0) for kind in kinds]
        if max(values) < MERGE_BELOW:
            for kind, value in zip(kinds, values, strict=False):
                grouped[kind] += value
            continue
        phase_rows.append([step] + [f"{value:.3f}" for value in values])
    phase_rows.append([f"other lines (each < {MERGE_BELOW * 1000:g} ms)"] + [f"{grouped[k]:.3f}" for k in kinds])
    print_table(
        "Where the start goes: seconds between consecutive progress lines, as read (medians)",
        ["from progress line -> to the next (URLs, ids, numbers elided)", *kinds],
        phase_rows,
        note="'spawn -> first line' is the interpreter's start, imports and binding the API port.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack_ready", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh and warm starts each (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="one run each")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    run(1 if args.quick else args.runs)
    print(f"(stack_ready: {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
