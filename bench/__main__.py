"""Runs every benchmark and prints its tables: `make bench`.

    .venv/bin/python -m bench [--quick] [module ...]

Every module of this package that runs as a script (`if __name__ ==
"__main__"`) is a benchmark: the API's own first, in a fixed order, then any
other (the worker's) by name. Each runs in its own fresh process, one after
the other, so none inherits another's imports, emulated tables or memory.
--quick uses smaller sizes (a smoke run).

The stack_* benchmarks start the local stack itself (`python -m devstack`,
free loopback ports) and take their own sizes when run directly:
`python -m bench.stack_ready --runs N`, `python -m bench.stack_latency
--runs N --large-runs N --large-mib M`, `python -m bench.stack_throughput
--pins N --concurrency N` (defaults: 3 starts; 5 x 1 MiB and 3 x 100 MiB;
1,000 pins from 32 threads; together ~10 min on 2 cores).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence

from bench.support import REPO_ROOT

# Quiet machine first: cold_start measures wall time of fresh processes.
FIRST = ("cold_start", "request_cost", "memory", "list_cost")
HERE = os.path.dirname(os.path.abspath(__file__))


def benchmarks() -> list[str]:
    found = []
    for file in sorted(os.listdir(HERE)):
        name, ext = os.path.splitext(file)
        if ext != ".py" or name.startswith("_") or name == "support":
            continue
        with open(os.path.join(HERE, file)) as source:
            if 'if __name__ == "__main__":' in source.read():
                found.append(name)
    return [name for name in FIRST if name in found] + [name for name in found if name not in FIRST]


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def _run_one(name: str, quick: bool) -> bool:
    """Runs bench.`name` in a fresh process; whether it succeeded."""
    print(f"\n===== bench.{name} =====", flush=True)
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}"] + (["--quick"] if quick else []),
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,  # the service logs JSON lines to stderr; shown only on failure
        text=True,
        check=False,
    )
    print(f"(bench.{name}: {time.perf_counter() - began:.0f} s)", flush=True)
    if done.returncode != 0:
        print(f"bench.{name} FAILED (exit {done.returncode}):\n{done.stderr[-6000:]}", flush=True)
    return done.returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:
        print(f"{__doc__}\nbenchmarks: {', '.join(benchmarks())}")
        return 0
    quick = "--quick" in args
    available = benchmarks()
    chosen: list[str] = [arg for arg in args if arg != "--quick"] or available
    unknown = [name for name in chosen if name not in available]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {', '.join(available)}", file=sys.stderr)
        return 2
    print(f"bench: {', '.join(chosen)}{' (quick sizes)' if quick else ''} on {_machine()}", flush=True)
    started = time.perf_counter()
    failed = []
    for name in chosen:
        if not _run_one(name, quick):
            failed.append(name)
    print(
        f"\nall benchmarks: {time.perf_counter() - started:.0f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
