"""`python -m devstack.worker --state-dir DIR`: the local stack's worker
Lambdas in a process of their own, so that it can be killed and started again.

It reads `DIR/service.env`, which `python -m devstack` writes before its
worker starts (emulated AWS, queue URLs, the stage's settings, the fleet's RPC
secret), over its own environment; other service settings (`STALL_SECONDS`,
`NODE_CACHE_SECONDS`, ...) come from its environment, and so does
`DEVSTACK_WORKER_TIMEOUT_SECONDS`: its invocations' timeout, the stage's
Lambda timeout unless set (a test of a dying worker sets it short, so that
the tenant slot the dead invocation held ends sooner). As many pollers as
the stage's MaximumConcurrency (dev: 2) feed the pin queue to the app's
`pin_worker` handler and one the dead-letter queue to `pin_dead_letters`, as
Lambda would. When polling it prints one line:

    devstack worker ready (pid N), polling QUEUE_URL

`python -m devstack` runs it and starts a new one whenever it exits; with
`--no-worker` run it yourself (as many as you like). SIGTERM or SIGINT: exits
0 at once; a batch still running is abandoned, as when a Lambda is cut off,
and its messages come back after the queue's visibility timeout. Started by
the stack, it also exits when the stack is gone, however the stack ended
(`devstack.lifeline`). Exit status 2: no readable `service.env` (the stack is
not running in DIR).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devstack.env_file import read_env_file
from devstack.lifeline import follow_parent
from devstack.stage import lambda_timeout
from devstack.state import DEFAULT_STATE_DIR, REPO_ROOT, SERVICE_ENV
from devstack.worker_poller import BATCH_SIZE

READY_PREFIX = "devstack worker ready "
# Lambda runs at most the stage's MaximumConcurrency batches at once (dev 2,
# prod 10; infra.render), each process with its own NODE_CONCURRENCY slots;
# here one poller each, sharing one process. Each poller's batch is an
# invocation: it takes its tenants' slots in the emulated DynamoDB as on AWS,
# so one tenant's work holds at most the stage's TENANT_INVOCATIONS (dev 1)
# of them, and a poller is always free for another tenant's message. Not
# more pollers: those past one tenant's slots only defer its messages, round
# the emulated queue (5 pollers in dev: 4 of them; BENCHMARKS.md, tenant
# fairness), which AWS's dev stage does not do either.
# Not a service setting: the worker alone reads the dead-letter queue.
DEAD_LETTER_QUEUE_VAR = "PIN_DEAD_LETTER_QUEUE_URL"
TIMEOUT_VAR = "DEVSTACK_WORKER_TIMEOUT_SECONDS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.worker",
        description="Run the local stack's pin workers (SQS pollers calling the app's handlers).",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"the running stack's --state-dir, holding {SERVICE_ENV} (default %(default)s)",
    )
    args = parser.parse_args(argv)
    env_path = args.state_dir / SERVICE_ENV
    try:
        os.environ.update(read_env_file(env_path))
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or error
        print(
            f"devstack.worker: cannot read {env_path} ({reason}); is `python -m devstack` running?",
            file=sys.stderr,
            flush=True,
        )
        return 2

    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    follow_parent(stopping.set)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    _start_pollers()
    while not stopping.wait(0.5):
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    # Not sys.exit: it would wait for the batch threads of a pin still fetching.
    os._exit(0)


def _start_pollers() -> None:
    import boto3

    import app as app_module
    from chalicelib.logs import ReadableFormatter, configure_logging
    from devstack.worker_poller import QueuePoller

    configure_logging(formatter=ReadableFormatter())
    for noisy in ("botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    queue_url = os.environ["PIN_QUEUE_URL"]
    sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_DEFAULT_REGION"])
    timeout = int(os.environ.get(TIMEOUT_VAR) or lambda_timeout(os.environ["STAGE"]))
    # Several pollers, as Lambda runs several batches at once: a pin that
    # waits for its content does not hold up the others.
    pollers = [
        *(
            QueuePoller(sqs, queue_url, app_module.pin_worker, timeout, f"pin-worker-{n}", _pin_batch_size)
            for n in range(pin_pollers(os.environ["STAGE"]))
        ),
        QueuePoller(sqs, os.environ[DEAD_LETTER_QUEUE_VAR], app_module.pin_dead_letters, timeout, "pin-dead-letters"),
    ]
    for poller in pollers:
        poller.start()
    print(f"{READY_PREFIX}(pid {os.getpid()}), polling {queue_url}", flush=True)


def pin_pollers(stage: str) -> int:
    """The stage's MaximumConcurrency (5, Lambda's first batches, for a stage infra/ does not know)."""
    from infra.render import STAGE_OPTIONS

    options = STAGE_OPTIONS.get(stage)
    return 5 if options is None else options.worker_max_concurrency


def _pin_batch_size() -> int:
    """Lambda gives each invocation a process, and so a tenant share, of its
    own; here the pollers share one. While a tenant holds all of its places,
    a poller takes one message at a time: a full batch would mostly be that
    tenant's messages (when no other tenant's wait: the queue is fair), each
    deferred, so the queue would churn (BENCHMARKS.md, tenant fairness)."""
    import app as app_module

    return 1 if app_module.services().worker.tenant_share.saturated() else BATCH_SIZE


if __name__ == "__main__":
    sys.exit(main())
