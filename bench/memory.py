"""Peak RSS of the API process after 1,000 requests.

Three processes, all on loopback: moto's ThreadedMotoServer (its memory is
not counted), this parent (creates tables, queue, fleet, tenant and token on
it), and a fresh API process that imports `app`, builds its services from the
environment (AWS_ENDPOINT_URL, TABLE_PREFIX, PIN_QUEUE_URL, as deployed) and
serves 1,000 in-process requests through `chalice.test.Client`: POST /pins,
GET /pins/{id} and GET /pins with filters. It reports
`getrusage(RUSAGE_SELF).ru_maxrss` along the way.

    .venv/bin/python -m bench.memory [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.support import REPO_ROOT, print_table, quick_flag, verdict

TARGET_MB = 150
# The local stack's moto server (ThreadedMotoServer on 127.0.0.1, any free port).
MOTO_SERVER = """
import sys
from devstack import moto_transactions
from devstack.aws import MotoServer, use_fake_aws
use_fake_aws()
moto_transactions.install()
server = MotoServer(port=0)
server.start()
print(server.endpoint_url, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
server.stop()
"""


def _rss_mb() -> list[float]:
    """[ru_maxrss, VmHWM] in MB: getrusage's peak, and the kernel's high-water
    mark of this process image (a cross-check; both are KiB on Linux)."""
    import resource

    with open("/proc/self/status") as status:
        hwm = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    return [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, hwm / 1024]


# -- the API process -------------------------------------------------------------


def child(requests: int) -> None:
    """Runs in the fresh API process; prints one JSON line."""
    marks: list[list[Any]] = [["interpreter + bench harness", *_rss_mb()]]
    import app as app_module  # noqa: E402

    marks.append(["after `import app`", *_rss_mb()])
    from chalice.test import Client

    from bench.support import Api, cid_for

    token = os.environ["BENCH_TOKEN"]
    statuses: dict[int, int] = {}
    created: list[dict[str, Any]] = []
    filters = [
        lambda i: {},
        lambda i: {"status": "queued"},
        lambda i: {"cid": created[i % len(created)]["pin"]["cid"]},
        lambda i: {"name": created[i % len(created)]["pin"]["name"]},
        lambda i: {"before": created[len(created) // 2]["created"]},
        lambda i: {"status": "queued,pinning,pinned,failed", "limit": "50"},
        lambda i: {"name": "file-1", "match": "partial"},
        lambda i: {"meta": json.dumps({"batch": f"b{i % 7}"})},
    ]
    latency: dict[str, list[float]] = {"POST /pins": [], "GET /pins/{id}": [], "GET /pins?filters": []}
    started = time.monotonic()
    with Client(app_module.app) as client:
        api = Api(client, token)
        for i in range(requests):
            kind = i % 10
            began = time.perf_counter()
            if kind < 4 or not created:  # 40% POST /pins
                body: dict[str, Any] = {"cid": cid_for(f"mem/{i}"), "name": f"file-{i}.txt"}
                if i % 3 == 0:
                    body["meta"] = {"batch": f"b{i % 7}", "app": "bench"}
                status, payload = api.request("POST", "/pins", body=body)
                if status == 202:
                    created.append(payload)
                route = "POST /pins"
            elif kind < 7:  # 30% GET /pins/{requestid}
                status, payload = api.request("GET", f"/pins/{created[(i * 7919) % len(created)]['requestid']}")
                route = "GET /pins/{id}"
            else:  # 30% GET /pins with filters
                status, payload = api.request("GET", "/pins", params=filters[i % len(filters)](i))
                route = "GET /pins?filters"
            latency[route].append((time.perf_counter() - began) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if i == 0:
                marks.append(["after the 1st request (services built)", *_rss_mb()])
            if (i + 1) % (requests // 4) == 0:
                marks.append([f"after {i + 1} requests", *_rss_mb()])
    clients = _clients_probe()
    print(
        json.dumps(
            {
                "clients": clients,
                "marks": marks,
                "statuses": statuses,
                "seconds": time.monotonic() - started,
                "latency_ms": latency,
                "modules": len(sys.modules),
                "moto_imported": any(name == "moto" or name.startswith("moto.") for name in sys.modules),
                "boto3_imported": "boto3" in sys.modules,
            }
        )
    )


def _vmrss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def _clients_probe() -> dict[str, Any]:
    """How many botocore clients and sessions the service holds, and what one
    more client costs in a new session (as PynamoDB makes one per model)
    versus in an existing one. Runs after the peak was recorded."""
    import botocore.session

    from chalicelib.storage.tables import MODELS

    connections = [model._connection.connection for model in MODELS if model._connection is not None]
    clients = {id(c._client) for c in connections if c._client is not None}
    sessions = {
        id(getattr(c._local, "session", None)) for c in connections if getattr(c._local, "session", None) is not None
    }
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    region = os.environ["AWS_DEFAULT_REGION"]
    before, started = _vmrss_mb(), time.perf_counter()
    session = botocore.session.get_session()
    first = session.create_client("dynamodb", region_name=region, endpoint_url=endpoint)
    new_session = (_vmrss_mb() - before, (time.perf_counter() - started) * 1000)
    before, started = _vmrss_mb(), time.perf_counter()
    second = session.create_client("dynamodb", region_name=region, endpoint_url=endpoint)
    same_session = (_vmrss_mb() - before, (time.perf_counter() - started) * 1000)
    del first, second
    return {
        "dynamodb_clients": len(clients),
        "botocore_sessions": len(sessions),
        "new_session_client": new_session,
        "same_session_client": same_session,
    }


# -- the parent ----------------------------------------------------------------------


def run(quick: bool) -> dict[str, Any]:
    from bench.support import build_stack, fake_credentials

    requests = 200 if quick else 1000
    fake_credentials()
    server = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO_ROOT,  # werkzeug logs every request
    )
    try:
        endpoint = server.stdout.readline().strip()  # type: ignore[union-attr]
        if not endpoint.startswith("http://127.0.0.1:"):
            raise SystemExit(f"FATAL: moto server did not start: {endpoint!r}")
        stack = build_stack("mem", endpoint_url=endpoint)
        env = dict(os.environ)
        env.update(
            AWS_ENDPOINT_URL=endpoint,
            TABLE_PREFIX=stack.settings.table_prefix,
            PIN_QUEUE_URL=stack.settings.queue_url,
            BENCH_TOKEN=stack.token,
            AWS_DEFAULT_REGION=stack.settings.region,
        )
        # Linux carries the peak RSS over execve (and fork copies it), so a
        # child started from this parent (moto and boto3 loaded) would report
        # at least the parent's peak. A small shell forks the API process, so
        # its ru_maxrss starts from the shell's few MB.
        done = subprocess.run(
            [
                "/bin/sh",
                "-c",
                '"$@"; exit $?',
                "sh",
                sys.executable,
                "-c",
                f"from bench.memory import child; child({requests})",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"FATAL: API process failed:\n{done.stderr[-4000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    bad = {code: n for code, n in report["statuses"].items() if code not in ("200", "202")}
    if bad:
        raise SystemExit(f"FATAL: unexpected answers in the API process: {report['statuses']}")
    peak = max(mark[1] for mark in report["marks"])
    print(
        f"\nmemory: API process serving {requests} in-process requests (40% POST /pins, 30% GET /pins/{{id}}, "
        f"30% GET /pins with 8 filter kinds) against moto server in another process at {endpoint}; "
        f"answers {report['statuses']} in {report['seconds']:.0f} s; {report['modules']} modules loaded "
        f"(moto {'LOADED' if report['moto_imported'] else 'not loaded'}, boto3 {'loaded' if report['boto3_imported'] else 'not loaded'})"
    )
    print_table(
        "Peak RSS of the API process (ru_maxrss, MB)",
        ["point", "ru_maxrss MB", "VmHWM MB"],
        [[label, f"{mb:.1f}", f"{hwm:.1f}"] for label, mb, hwm in report["marks"]],
    )
    import statistics

    print_table(
        "Latency in the API process, ms (informative: loopback moto server, 2 cores shared with it)",
        ["route", "n", "1st request", "median of the rest", "max of the rest"],
        [
            [route, len(values), f"{values[0]:.0f}", f"{statistics.median(values[1:]):.1f}", f"{max(values[1:]):.0f}"]
            for route, values in report["latency_ms"].items()
            if len(values) > 1
        ],
    )
    probe = report["clients"]
    print_table(
        "botocore clients in the API process after the run (PynamoDB builds a session + client per model)",
        ["what", "value"],
        [
            ["DynamoDB clients held by the models", probe["dynamodb_clients"]],
            ["distinct botocore sessions behind them", probe["botocore_sessions"]],
            [
                "one more DynamoDB client in a NEW session: MB / ms",
                "{:.1f} / {:.0f}".format(*tuple(probe["new_session_client"])),
            ],
            [
                "one more DynamoDB client in the SAME session: MB / ms",
                "{:.1f} / {:.0f}".format(*tuple(probe["same_session_client"])),
            ],
        ],
    )
    print(
        "verdict: "
        + verdict(
            peak < TARGET_MB, f"peak {peak:.1f} MB vs target < {TARGET_MB} MB, {TARGET_MB - peak:.0f} MB headroom"
        )
    )
    return report


def main(argv: Sequence[str] | None = None) -> None:
    run(quick_flag(argv))


if __name__ == "__main__":
    main()
