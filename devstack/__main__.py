"""`python -m devstack` (`make dev`): the whole service on 127.0.0.1.

Exit status: 0 after Ctrl-C or SIGTERM, 2 for a startup problem (port in use,
state dir in use, missing dependency, bad option), 1 if the API server stops
by itself. Whatever ends it, the processes it started end with it
(`devstack.lifeline`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from devstack.console import READY_LINE
from devstack.lifeline import stop_with_parent
from devstack.stack import DevStack, NodeSpec, Options, StackError
from devstack.state import REPO_ROOT


class _Stopped(BaseException):
    """Raised by the SIGTERM handler, like KeyboardInterrupt for Ctrl-C."""


def _node(text: str) -> NodeSpec:
    try:
        return NodeSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0 picks a free one)")
    return port


def _user_node_port(text: str) -> int | None:
    """PORT, 'auto' (a free port) or 0 (no node)."""
    if text == "auto":
        return 0
    port = _port(text)
    return port or None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of seconds")
    return value


def parse_args(argv: list[str] | None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=(
            "Run the pinning service locally on 127.0.0.1: emulated AWS (moto), embedded Kubo nodes, "
            "the API, the worker and the scheduled jobs."
        ),
        epilog='Through make: make dev ARGS="--port 0 --fleet-size 1" (any of these options).',
    )
    parser.add_argument(
        "--port", type=_port, default=defaults.port, help="API port; 0 picks a free one (default %(default)s)"
    )
    parser.add_argument(
        "--aws-port",
        type=_port,
        default=defaults.aws_port,
        help="emulated AWS port; 0 picks a free one (default %(default)s)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=defaults.state_dir,
        help=(
            "where the state files are written (default %(default)s): local.env (service URL, token, your node's "
            "RPC URL), aws.env, service.env (the service's environment, for workers) and, while the stack runs, "
            "stack.json (pids, URLs and peer ids of every part, for scripts and tests); all mode 0600"
        ),
    )
    parser.add_argument(
        "--stage",
        default=defaults.stage,
        help="Chalice stage whose environment_variables are used (default %(default)s)",
    )
    parser.add_argument(
        "--node",
        dest="nodes",
        action="append",
        type=_node,
        default=[],
        metavar="NODE_ID=RPC_URL,PEER_ID,MULTIADDR",
        help="register a Kubo node (repeatable; more multiaddrs may follow, comma-separated)",
    )
    parser.add_argument(
        "--sweep-seconds",
        type=float,
        default=defaults.sweep_seconds,
        help="outbox sweep interval (default %(default)s)",
    )
    parser.add_argument(
        "--fleet-size",
        type=int,
        default=defaults.fleet_size,
        help="embedded Kubo fleet nodes to start when no --node is given; 0 for none (default %(default)s)",
    )
    parser.add_argument(
        "--user-node-port",
        type=_user_node_port,
        default=defaults.user_node_port,
        metavar="PORT|auto",
        help="RPC port of 'your node', a Kubo node for your own content; 'auto' picks a free one, 0 for none (default %(default)s)",
    )
    parser.add_argument(
        "--health-seconds",
        type=float,
        default=defaults.health_seconds,
        help="fleet health check interval (default %(default)s)",
    )
    parser.add_argument(
        "--visibility-seconds",
        type=_positive,
        default=defaults.visibility_seconds,
        metavar="SECONDS",
        help=(
            "the pin queue's visibility timeout: how long a message taken by a worker that died stays hidden "
            "(default 6 times the stage's Lambda timeout, as on AWS). Shorter makes tests of dying workers quick; "
            "below the Lambda timeout a slow message may be handled twice at once, which the worker tolerates"
        ),
    )
    parser.add_argument(
        "--no-worker",
        dest="worker",
        action="store_false",
        help=(
            "do not run the worker; run `python -m devstack.worker --state-dir DIR` yourself. By default the stack "
            "runs it as a child process (pid in stack.json) and starts a new one whenever it dies"
        ),
    )
    parser.add_argument(
        "--stop-with-parent",
        action="store_true",
        help="stop (as on SIGTERM) when the process that started this one dies, even by SIGKILL; `make dev` sets it",
    )
    args = parser.parse_args(argv)
    return Options(
        port=args.port,
        aws_port=args.aws_port,
        state_dir=args.state_dir,
        stage=args.stage,
        nodes=args.nodes,
        sweep_seconds=args.sweep_seconds,
        fleet_size=args.fleet_size,
        user_node_port=args.user_node_port,
        health_seconds=args.health_seconds,
        visibility_seconds=args.visibility_seconds,
        worker=args.worker,
        stop_with_parent=args.stop_with_parent,
    )


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped()


def _force_exit(signum: int, frame: FrameType | None) -> None:
    print("devstack: stopped while shutting down", file=sys.stderr, flush=True)
    os._exit(1)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    # The app and chalicelib are imported from the repository root.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    # Python caches a module's bytecode beside it, which for app.py is the
    # repository root: the stack's caches (its children's too) go into the state dir.
    sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"] = str(options.state_dir.resolve() / "pycache")
    signal.signal(signal.SIGTERM, _raise_stopped)
    if options.stop_with_parent and not stop_with_parent():
        print("devstack: the process that started it is already gone", file=sys.stderr, flush=True)
        return 2
    stack = DevStack(options)
    status = 0
    try:
        stack.start()
        print(f"{READY_LINE}{stack.url}", flush=True)
        while stack.is_alive():
            time.sleep(0.5)
        print("devstack: the API server stopped unexpectedly", file=sys.stderr, flush=True)
        status = 1
    except (KeyboardInterrupt, _Stopped):
        print("\nStopping ...", flush=True)
    except StackError as error:
        print(f"devstack: {error}", file=sys.stderr, flush=True)
        status = 2
    except ImportError as error:
        missing = getattr(error, "name", None) or str(error)
        print(
            f"devstack: missing dependency {missing!r} ({error}); run `make dev`, which installs them",
            file=sys.stderr,
            flush=True,
        )
        status = 2
    finally:
        signal.signal(signal.SIGINT, _force_exit)
        signal.signal(signal.SIGTERM, _force_exit)
        stack.stop()
    if status == 0:
        print("Stopped.", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
