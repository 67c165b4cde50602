"""Starts and stops the pieces of the local stack, in order."""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.console import say
from devstack.env_file import write_env_file, write_private
from devstack.kubo.fleet import NodeStartError, start_node
from devstack.proc import command_line
from devstack.stage import CHALICE_CONFIG, chalice_config, lambda_timeout
from devstack.state import (
    AWS_ENV,
    DEFAULT_STATE_DIR,
    KUBO_DIR,
    LOCAL_ENV,
    SERVICE_ENV,
    STACK_FILE,
    STACK_FILE_VERSION,
    StateDirBusy,
    StateDirLock,
)
from devstack.worker import DEAD_LETTER_QUEUE_VAR
from devstack.worker_supervisor import WorkerSupervisor

HOST = "127.0.0.1"
# The fleet reconciler's, shorter than AWS's minute: drift shows within seconds here.
RECONCILE_SECONDS = 15.0
# The archive sweep's (AWS: 10 minutes); ARCHIVE_GRACE_SECONDS still applies.
ARCHIVE_SWEEP_SECONDS = 60.0
# The cooling sweep's (AWS: a minute); a cold-only request still waits its days.
COOLING_SECONDS = 60.0
# The Filecoin tracker's (AWS: a minute), so copies move within seconds here;
# the environment may set another (a test of copies lapsing and repaired: 1 s).
FILECOIN_TRACKER_SECONDS = 2.0
FILECOIN_TRACKER_VAR = "DEVSTACK_FILECOIN_TRACKER_SECONDS"
# The usage export's (AWS: the 1st of each month): the month just ended's
# records written again to the local bucket (the same object each time).
USAGE_EXPORT_SECONDS = 300.0
# The fake PDP network of `make dev` (devstack.fake_pdp_provider): three
# providers in three places, and a chain whose epoch (30 s on Filecoin) lasts
# a quarter second, so a copy's first proof comes seconds after it is added.
FAKE_PROVIDERS = [("sp-frankfurt", "DE"), ("sp-virginia", "US"), ("sp-singapore", "SG")]
FAKE_EPOCH_SECONDS = 0.25
# The wallet key generated once into the state dir (mode 0600), and its funds
# on the fake chain: 1,000 USDFC (18 decimals), 100 a month allowed to be spent.
WALLET_KEY_FILE = "filecoin-wallet.key"
FAKE_FUNDS = 1000 * 10**18
# What the stack sets unless the environment does (chalicelib.config).
FILECOIN_DEFAULTS = {
    "FILECOIN_BACKEND": "pdp",
    "FILECOIN_NETWORK": "calibration",
    "FILECOIN_COPIES": "2",
    "FILECOIN_SPEND_CAP": str(100 * 10**18),
    "FILECOIN_ADDING_CHECK_SECONDS": "2",
    "FILECOIN_CHECK_SECONDS": "10",
    "FILECOIN_PROOF_GRACE_EPOCHS": "20",
}


# The archive function's batch size (app.archive_worker) and its dead letters'.
ARCHIVE_BATCH_SIZE = 1
ARCHIVE_DEAD_LETTERS_BATCH_SIZE = 10


class StackError(Exception):
    """A startup problem the developer can fix; shown as one line, exit status 2."""


@dataclass(frozen=True)
class NodeSpec:
    node_id: str
    rpc_url: str
    peer_id: str
    multiaddrs: Sequence[str]

    @classmethod
    def parse(cls, text: str) -> NodeSpec:
        """NODE_ID=RPC_URL,PEER_ID,MULTIADDR[,MULTIADDR...]"""
        node_id, _, rest = text.partition("=")
        parts = [part.strip() for part in rest.split(",")]
        if not node_id.strip() or len(parts) < 3 or not all(parts):
            raise ValueError(f"expected NODE_ID=RPC_URL,PEER_ID,MULTIADDR[,MULTIADDR...], got {text!r}")
        return cls(node_id.strip(), parts[0], parts[1], tuple(parts[2:]))


@dataclass
class Options:
    port: int = 8000
    aws_port: int = 4566
    state_dir: Path = DEFAULT_STATE_DIR
    stage: str = "dev"
    nodes: list[NodeSpec] = field(default_factory=list)
    sweep_seconds: float = 30.0
    # Embedded Kubo fleet nodes started when no --node is given (0: none).
    fleet_size: int = 2
    # The user's own node ("your node"), for the quickstart; 0 picks a free
    # port, None runs none.
    user_node_port: int | None = 5001
    health_seconds: float = 30.0
    # The pin queue's visibility timeout; None: 6 times the stage's Lambda timeout.
    visibility_seconds: int | None = None
    # Run `python -m devstack.worker` as a supervised child (else someone else does).
    worker: bool = True
    # SIGTERM to the stack when its parent dies (`make dev`: killing make stops it).
    stop_with_parent: bool = False


def stage_environment(stage: str) -> dict[str, str]:
    """The stage's environment_variables (Chalice sets them only under Lambda)."""
    config = chalice_config()
    stages = config.get("stages", {})
    if stage not in stages:
        raise StackError(f"stage {stage!r} is not in {CHALICE_CONFIG} (stages: {', '.join(stages)})")
    env = dict(config.get("environment_variables", {}))
    env.update(stages[stage].get("environment_variables", {}))
    return {name: str(value) for name, value in env.items()}


class QueueJob:
    """Polls one queue for one of the app's SQS handlers (a
    devstack.worker_poller.QueuePoller), on a thread that stops with the
    stack: the archive function's queues, polled here rather than in the
    worker process (an archive in progress is cut off when the stack stops)."""

    def __init__(self, poller: Any, name: str) -> None:
        self._poller = poller
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._poller.poll_once(wait_seconds=1)
            except Exception as error:  # the emulator stopping, a handler bug: keep polling
                say(f"{self._thread.name} poll failed: {type(error).__name__}: {error}")
                self._stopping.wait(1)


def scheduled_event(rule: str) -> dict[str, Any]:
    """What EventBridge hands a scheduled Lambda."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{rule}"],
        "detail": {},
    }


def _tracked(report: dict[str, int]) -> str | None:
    """The Filecoin tracker's run in a line, when it changed anything."""
    found = [f"{name.replace('_', ' ')} {count}" for name, count in report.items() if count and name != "visited"]
    return "Filecoin copies: " + ", ".join(found) if found else None


def _reconciled(report: dict[str, int]) -> str | None:
    """The reconciler's run in a line, when it found anything."""
    found = [f"{name.replace('_', ' ')} {count}" for name, count in report.items() if count and name != "nodes"]
    return "reconciler: " + ", ".join(found) if found else None


class ScheduledJob:
    """Runs one of the app's scheduled handlers every `interval` seconds, as AWS would."""

    def __init__(
        self,
        handler: Callable[[dict[str, Any], Any], Any],
        rule: str,
        interval: float,
        report: Callable[[Any], str | None],
    ) -> None:
        self._handler = handler
        self._rule = rule
        self._interval = interval
        self._report = report
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=rule, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.run_once()

    def run_once(self) -> None:
        try:
            result = self._handler(scheduled_event(self._rule), None)
        except Exception as error:  # keep going; the next run retries
            say(f"{self._rule} failed: {type(error).__name__}: {error}")
            return
        line = self._report(result)
        if line:
            say(line)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()


class DevStack:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.url: str | None = None
        self.token: str | None = None
        self._api: Any = None
        self._aws: Any = None
        self._jobs: list[Any] = []
        self._kubo_nodes: list[Any] = []
        self._user_node: Any = None
        self._worker: Any = None
        self._queues: dict[str, str] = {}
        self._archive_queues: dict[str, str] = {}
        self._webhook_queues: dict[str, str] = {}
        self._fake_network: tuple[Any, list[Any]] | None = None
        self._visibility = 0
        self._service_env: dict[str, str] = {}
        # stack.json is rewritten by the worker supervisor's thread too.
        self._state_lock = threading.Lock()
        self._state_dir_lock = StateDirLock(options.state_dir)
        self._ready = False

    @property
    def user_node_url(self) -> str | None:
        return self._user_node.rpc_url if self._user_node is not None else None

    def start(self) -> None:
        """Everything, in order; raises StackError (or ImportError) on a startup problem."""
        from devstack import aws, moto_fair_queues, moto_partitions, moto_streams, moto_transactions

        options = self.options
        stage_env = stage_environment(options.stage)
        self._claim_state_dir()
        aws.use_fake_aws()
        os.environ.update(stage_env)

        # The API's port first: a port in use fails before anything else starts.
        app_module, self._api = self._bind_api()
        from chalicelib.logs import ReadableFormatter, configure_logging

        configure_logging(formatter=ReadableFormatter())
        for noisy in ("botocore", "urllib3", "werkzeug"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

        say(f"Starting emulated AWS (moto) on {HOST}, port {options.aws_port or 'any free one'} ...")
        moto_transactions.install()
        moto_partitions.install()
        moto_streams.install()
        moto_fair_queues.install()
        moto_server = aws.MotoServer(options.aws_port)
        try:
            moto_server.start()
        except OSError as error:
            raise _port_error("emulated AWS", options.aws_port, "--aws-port", error) from None
        self._aws = moto_server
        os.environ["AWS_ENDPOINT_URL"] = self._aws.endpoint_url
        say(f"  AWS endpoint {self._aws.endpoint_url} (region {aws.REGION}, fake credentials)")

        from chalicelib.config import Settings
        from chalicelib.storage.tables import create_tables

        prefix = Settings.from_env().table_prefix
        self._visibility = options.visibility_seconds or 6 * lambda_timeout(options.stage)
        self._queues = aws.create_pin_queue(self._aws.endpoint_url, f"{prefix}-pins", self._visibility)
        os.environ["PIN_QUEUE_URL"] = self._queues["queue"]
        say(
            f"  queue {self._queues['queue']} (visibility timeout {self._visibility} s; dead letters after "
            f"{aws.MAX_RECEIVE_COUNT} receives: {self._queues['dead_letter_queue']})"
        )

        self._create_archive_queues(aws, prefix)
        self._create_webhook_queues(prefix)
        create_tables(Settings.from_env())
        say(f"  DynamoDB tables {prefix}-*")
        os.environ.setdefault("ARCHIVE_BUCKET", f"{prefix}-archives")
        aws.create_archive_bucket(self._aws.endpoint_url, os.environ["ARCHIVE_BUCKET"])
        say(f"  S3 bucket {os.environ['ARCHIVE_BUCKET']} (the cold tier's archives)")
        # The monthly usage records go to the same bucket (usage/), as on AWS;
        # tenants given no plan are on `demo` (chalicelib.usage.plans) unless the environment says otherwise.
        os.environ.setdefault("USAGE_BUCKET", os.environ["ARCHIVE_BUCKET"])
        os.environ.setdefault("DEFAULT_PLAN", "demo")

        self._start_filecoin()

        # The reconciler unpins what nothing holds once unheld longer than any
        # pin in progress here: a worker's turn plus the queue's visibility.
        os.environ.setdefault("RECONCILE_GRACE_SECONDS", str(self._visibility + lambda_timeout(options.stage)))
        # Local nodes sit on loopback: origins there must be dialable here.
        os.environ["ALLOW_PRIVATE_ORIGINS"] = "true"
        os.environ["KUBO_RPC_SECRET"] = uuid.uuid4().hex
        # What the handlers run with here, for a worker started from service.env.
        names = [
            *aws.FAKE_AWS_ENV,
            *stage_env,
            "AWS_ENDPOINT_URL",
            "PIN_QUEUE_URL",
            "ARCHIVE_QUEUE_URL",
            "ARCHIVE_BUCKET",
            "USAGE_BUCKET",
            "DEFAULT_PLAN",
            "ALLOW_PRIVATE_ORIGINS",
            "KUBO_RPC_SECRET",
        ]
        names += [name for name in os.environ if name.startswith("FILECOIN_") and name not in names]
        self._service_env = {name: os.environ[name] for name in names}
        self._service_env[DEAD_LETTER_QUEUE_VAR] = self._queues["dead_letter_queue"]
        self._start_kubo()
        self._register_nodes(app_module)
        self._create_demo_tenant(app_module)
        self._write_state_files()
        self._start_jobs(app_module)
        self._start_worker()
        self._api.start()
        with self._state_lock:
            self._ready = True
            self._write_stack_file()

    def _claim_state_dir(self) -> None:
        """Lock the state dir before touching anything in it: a second stack
        started on it stops here, leaving the running one's files alone."""
        state_dir = self.options.state_dir
        try:
            self._state_dir_lock.acquire()
        except StateDirBusy as busy:
            holder = f"pid {busy.holder}" if busy.holder else "another process"
            stop = f"Ctrl-C in its terminal, or `kill {busy.holder}`" if busy.holder else "Ctrl-C in its terminal"
            raise StackError(
                f"another stack ({holder}) is running with the state dir {state_dir}; stop it ({stop}), "
                f'or give this one another: make dev ARGS="--state-dir DIR"'
            ) from None
        except OSError as error:
            raise StackError(f"cannot write to --state-dir {state_dir}: {error.strerror or error}") from None
        stack_file = state_dir / STACK_FILE
        left = _still_running(stack_file)
        if left:
            self._state_dir_lock.release()  # and stack.json stays: it names them for the next try
            raise StackError(
                f"processes of an earlier stack in {state_dir} still run: "
                + ", ".join(f"{pid} ({role})" for pid, role in left)
                + f"; stop them with `kill {' '.join(str(pid) for pid, _ in left)}` and start again"
            )
        # Left by a stack that died: it names processes that are gone.
        stack_file.unlink(missing_ok=True)

    def _start_filecoin(self) -> None:
        """Filecoin copies on the fake PDP network, unless FILECOIN_BACKEND=off
        or the environment names a chain already (FILECOIN_RPC_URL, with its
        FILECOIN_WALLET_KEY: a test's own fake network, whose faults it drives)."""
        for name, value in FILECOIN_DEFAULTS.items():
            os.environ.setdefault(name, value)
        if os.environ["FILECOIN_BACKEND"] == "off":
            say("  Filecoin copies off (FILECOIN_BACKEND=off)")
            return
        if not os.environ.get("FILECOIN_WALLET_KEY"):
            os.environ["FILECOIN_WALLET_KEY"] = self._wallet_key()
        if os.environ.get("FILECOIN_RPC_URL"):
            say(f"  Filecoin copies on the chain at {os.environ['FILECOIN_RPC_URL']}")
            return
        from eth_account import Account

        from devstack.fake_pdp_provider import start_fake_network

        self._fake_network = start_fake_network(FAKE_PROVIDERS, FAKE_EPOCH_SECONDS)
        chain, providers = self._fake_network
        wallet = Account.from_key(os.environ["FILECOIN_WALLET_KEY"]).address
        chain.fund(wallet, FAKE_FUNDS)
        os.environ["FILECOIN_RPC_URL"] = chain.url
        say(
            f"  fake Filecoin network: chain {chain.url} (an epoch every {FAKE_EPOCH_SECONDS:g} s), providers "
            + ", ".join(f"{p.name} ({p.location}) {p.url}" for p in providers)
            + f"; wallet {wallet} funded; {os.environ['FILECOIN_COPIES']} copies a request"
        )

    def _wallet_key(self) -> str:
        """The stack's wallet key: generated into the state dir once, read back after."""
        path = self.options.state_dir / WALLET_KEY_FILE
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            key = "0x" + secrets.token_hex(32)
            write_private(path, key + "\n")
            return key

    def _filecoin_info(self) -> dict[str, Any] | None:
        """stack.json's `filecoin`: the chain, the providers and the wallet (its key stays in service.env)."""
        if os.environ.get("FILECOIN_BACKEND", "off") == "off":
            return None
        providers = [] if self._fake_network is None else self._fake_network[1]
        return {
            "rpc_url": os.environ.get("FILECOIN_RPC_URL"),
            "fake": self._fake_network is not None,
            "copies": int(os.environ.get("FILECOIN_COPIES", "0")),
            "providers": [
                {"provider_id": str(p.provider_id), "name": p.name, "location": p.location, "url": p.url}
                for p in providers
            ],
        }

    def _bind_api(self) -> Any:
        """The API's socket, bound now; it is served by a process of its own
        (devstack.api_server) once the handlers' environment is written."""
        import app as app_module
        from devstack.api_server import ApiProcess, listening_socket

        try:
            listening = listening_socket(HOST, self.options.port)
        except OSError as error:
            raise _port_error("the API", self.options.port, "--port", error) from None
        host, port = listening.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return app_module, ApiProcess(self.options.state_dir, listening)

    def _start_kubo(self) -> None:
        options = self.options
        base = options.state_dir / KUBO_DIR
        try:
            if not options.nodes and options.fleet_size:
                say(f"Starting {options.fleet_size} embedded Kubo fleet nodes (loopback only) ...")
                for index in range(options.fleet_size):
                    node = start_node(f"fleet-{index}", base, auth_token=os.environ["KUBO_RPC_SECRET"], backend="auto")
                    self._kubo_nodes.append(node)
                    options.nodes.append(NodeSpec(node.name, node.rpc_url, node.peer_id, (node.multiaddr,)))
            if options.user_node_port is not None:
                say(f"Starting your node: Kubo RPC on {HOST}, port {options.user_node_port or 'any free one'} ...")
                node = start_node("your-node", base, rpc_port=options.user_node_port, backend="auto")
                self._kubo_nodes.append(node)
                self._user_node = node
                say(f"  your node {node.peer_id} at {node.multiaddr}, RPC {node.rpc_url}")
        except (NodeStartError, OSError) as error:
            # The first line carries the cause; the rest (the node's log) is in the log file it names.
            raise StackError(f"could not start a Kubo node: {str(error).splitlines()[0]}") from None

    def _create_archive_queues(self, aws: Any, prefix: str) -> None:
        """The archive function's queue (visibility: 6 of its turns) and dead letters."""
        from infra.render import VISIBILITY_FACTOR, function_timeout

        timeout = function_timeout(self.options.stage, chalice_config(), "archive_worker")
        visibility = VISIBILITY_FACTOR * timeout
        self._archive_queues = aws.create_pin_queue(self._aws.endpoint_url, f"{prefix}-archives", visibility)
        os.environ["ARCHIVE_QUEUE_URL"] = self._archive_queues["queue"]
        say(
            f"  archive queue {self._archive_queues['queue']} (turns of {timeout} s, visibility timeout "
            f"{visibility} s; dead letters: {self._archive_queues['dead_letter_queue']})"
        )

    def _create_webhook_queues(self, prefix: str) -> None:
        """The webhooks queue (FIFO) and its dead letters; receivers on this
        machine (cli.webhook_receiver) may be registered: http on loopback."""
        import boto3

        from devstack.webhook_poller import create_webhook_queues
        from infra.render import VISIBILITY_FACTOR, function_timeout

        sqs = boto3.client("sqs", endpoint_url=self._aws.endpoint_url, region_name=os.environ["AWS_DEFAULT_REGION"])
        visibility = VISIBILITY_FACTOR * function_timeout(self.options.stage, chalice_config(), "webhook_worker")
        self._webhook_queues = create_webhook_queues(sqs, prefix, visibility)
        os.environ["WEBHOOK_QUEUE_URL"] = self._webhook_queues["queue"]
        os.environ["ALLOW_LOOPBACK_WEBHOOKS"] = "true"
        say(
            f"  webhooks queue {self._webhook_queues['queue']} (FIFO; dead letters: "
            f"{self._webhook_queues['dead_letter_queue']}); webhooks to loopback receivers allowed"
        )

    def _webhook_jobs(self, app_module: Any) -> list[Any]:
        """Lambda's part for webhooks: the pins stream's second reader and the webhooks queue's poller."""
        import boto3

        from chalicelib.config import Settings
        from chalicelib.storage.pin_item import PinItem
        from chalicelib.storage.tables import table_name
        from devstack.webhook_poller import webhook_jobs
        from infra.render import function_timeout

        sqs = boto3.client("sqs", endpoint_url=self._aws.endpoint_url, region_name=os.environ["AWS_DEFAULT_REGION"])
        timeout = function_timeout(self.options.stage, chalice_config(), "webhook_worker")
        table = table_name(Settings.from_env(), PinItem)
        stream, queue = webhook_jobs(
            app_module, sqs, self._aws.endpoint_url, table, self._webhook_queues["queue"], timeout
        )
        return [stream, QueueJob(queue, "webhook_worker")]

    def _archive_jobs(self, app_module: Any) -> list[QueueJob]:
        """Lambda's pollers of the archive function and of its dead letters."""
        import boto3

        from devstack.worker_poller import QueuePoller
        from infra.render import function_timeout

        sqs = boto3.client("sqs", endpoint_url=self._aws.endpoint_url, region_name=os.environ["AWS_DEFAULT_REGION"])
        config, stage = chalice_config(), self.options.stage

        def job(function: str, queue: str, batch_size: int) -> QueueJob:
            url, timeout = self._archive_queues[queue], function_timeout(stage, config, function)
            poller = QueuePoller(sqs, url, getattr(app_module, function), timeout, function, lambda: batch_size)
            return QueueJob(poller, function)

        return [
            job("archive_worker", "queue", ARCHIVE_BATCH_SIZE),
            job("archive_dead_letters", "dead_letter_queue", ARCHIVE_DEAD_LETTERS_BATCH_SIZE),
        ]

    def _start_jobs(self, app_module: Any) -> None:
        """The scheduled handlers (EventBridge's part) and the count folder fed by
        the pins table's stream (the event source mapping's); the queues' are the worker's."""
        from chalicelib.config import Settings
        from chalicelib.storage.pin_item import PinItem
        from chalicelib.storage.tables import table_name
        from devstack.stream_poller import POLL_SECONDS, StreamPoller, streams_client

        rule = f"{app_module.app.app_name}-{self.options.stage}"
        tracker_seconds = float(os.environ.get(FILECOIN_TRACKER_VAR) or FILECOIN_TRACKER_SECONDS)
        self._jobs = [
            ScheduledJob(
                app_module.sweep_outbox,
                f"{rule}-sweep_outbox",
                self.options.sweep_seconds,
                lambda sent: f"outbox sweep re-sent {sent} queue message(s)" if sent else None,
            ),
            ScheduledJob(
                app_module.check_fleet_health,
                f"{rule}-check_fleet_health",
                self.options.health_seconds,
                lambda health: (
                    "unhealthy nodes: " + ", ".join(n for n, ok in health.items() if not ok)
                    if health and not all(health.values())
                    else None
                ),
            ),
            ScheduledJob(
                app_module.reconcile_fleet,
                f"{rule}-reconcile_fleet",
                RECONCILE_SECONDS,
                _reconciled,
            ),
            ScheduledJob(
                app_module.sweep_archives,
                f"{rule}-sweep_archives",
                ARCHIVE_SWEEP_SECONDS,
                lambda deleted: f"archive sweep deleted {deleted} orphaned archive(s)" if deleted else None,
            ),
            ScheduledJob(
                app_module.cool_pins,
                f"{rule}-cool_pins",
                COOLING_SECONDS,
                lambda report: f"cold-only pins cooled: {report['cooled']}" if report.get("cooled") else None,
            ),
            ScheduledJob(
                app_module.track_filecoin_copies,
                f"{rule}-track_filecoin_copies",
                tracker_seconds,
                _tracked,
            ),
            ScheduledJob(
                app_module.export_usage,
                f"{rule}-export_usage",
                USAGE_EXPORT_SECONDS,
                lambda key: f"usage records written to s3://{os.environ['USAGE_BUCKET']}/{key}" if key else None,
            ),
            StreamPoller(
                streams_client(self._aws.endpoint_url),
                table_name(Settings.from_env(), PinItem),
                app_module.fold_counts,
                lambda_timeout(self.options.stage),
            ),
            *self._archive_jobs(app_module),
            *self._webhook_jobs(app_module),
        ]
        for job in self._jobs:
            job.start()
        say(
            f"Outbox sweep every {self.options.sweep_seconds:g} s, fleet health check every {self.options.health_seconds:g} s, "
            f"fleet reconciled with the holds every {RECONCILE_SECONDS:g} s, "
            f"orphaned archives swept every {ARCHIVE_SWEEP_SECONDS:g} s, "
            f"cold-only pins due cooled every {COOLING_SECONDS:g} s, "
            f"Filecoin copies tracked every {tracker_seconds:g} s, "
            f"last month's usage exported every {USAGE_EXPORT_SECONDS:g} s (plan of new tenants: "
            f"{os.environ['DEFAULT_PLAN']}), "
            f"count changes folded from the pins table's stream every {POLL_SECONDS:g} s, "
            "archives made one at a time from the archive queue, "
            "webhooks sent from the pins table's stream through the webhooks queue."
        )

    def _start_worker(self) -> None:
        state_dir = self.options.state_dir
        if not self.options.worker:
            say(
                f"No worker (--no-worker): pins stay queued until one runs:\n"
                f"  {Path(sys.executable).name} -m devstack.worker --state-dir {state_dir}"
            )
            return
        self._worker = WorkerSupervisor(state_dir, self._worker_started)
        self._worker.start()
        say(f"Worker process {self._worker.pid} polling {self._queues['queue']} (started again if it dies).")

    def _worker_started(self, pid: int) -> None:
        with self._state_lock:
            if self._ready:
                self._write_stack_file()

    def _register_nodes(self, app_module: Any) -> None:
        from chalicelib.config import Settings
        from chalicelib.fleet.registry import InvalidNode

        if not self.options.nodes:
            endpoint = os.environ["AWS_ENDPOINT_URL"]
            prefix = Settings.from_env().table_prefix
            say(
                "\nNOTICE: no Kubo node is registered, so POST /pins answers 503 SERVICE_UNAVAILABLE\n"
                "until one is. Restart with --node NODE_ID=RPC_URL,PEER_ID,MULTIADDR, or register one now:\n"
                f"  python -m cli.admin --endpoint-url {endpoint} --table-prefix {prefix} \\\n"
                "    nodes register NODE_ID --rpc-url http://127.0.0.1:5001 --peer-id PEER_ID \\\n"
                "    --multiaddr /ip4/127.0.0.1/tcp/4001\n"
                "(the API sees a new node within NODE_CACHE_SECONDS, 30 by default)\n"
            )
            return
        # The API's own services (built now, with the stack's environment complete), not a second set.
        registry = app_module.services().registry
        for node in self.options.nodes:
            try:
                registry.register(node.node_id, node.rpc_url, node.peer_id, list(node.multiaddrs))
            except InvalidNode as error:
                raise StackError(f"--node {node.node_id}: {error}") from None
            say(f"  node {node.node_id}: RPC {node.rpc_url}, peer {node.peer_id}")

    def _create_demo_tenant(self, app_module: Any) -> None:
        admin = app_module.services().admin
        tenant = admin.create_tenant("demo")
        self.token = admin.issue_token(tenant.tenant_id, "devstack").secret
        say(f"  demo tenant {tenant.tenant_id}")

    def _write_state_files(self) -> None:
        state_dir = self.options.state_dir
        local_env = state_dir / LOCAL_ENV
        # For the admin CLI and other tools: `source .dev/aws.env`.
        names = (
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "STAGE",
            "TABLE_PREFIX",
            "PIN_QUEUE_URL",
            "ALLOW_LOOPBACK_WEBHOOKS",
        )
        try:
            local = {"PINNING_SERVICE_URL": str(self.url), "PINNING_SERVICE_TOKEN": str(self.token)}
            if self.user_node_url:
                local["KUBO_RPC_URL"] = self.user_node_url
            write_env_file(local_env, local)
            write_env_file(state_dir / AWS_ENV, {name: os.environ.get(name, "") for name in names})
            write_env_file(state_dir / SERVICE_ENV, self._service_env)
        except OSError as error:
            raise StackError(f"cannot write to --state-dir {state_dir}: {error.strerror or error}") from None
        say(
            f"\n  URL:   {self.url}\n  Token: {self.token}\n  (both in {local_env}; AWS settings in {state_dir / AWS_ENV})"
        )
        say(f'  try:   curl -H "Authorization: Bearer {self.token}" {self.url}/pins\n')

    def _write_stack_file(self) -> None:
        """stack.json: what a client needs to find, drive and kill the stack's parts."""
        from chalicelib.config import Settings

        embedded = {node.name: node for node in self._kubo_nodes}

        def node(spec: NodeSpec) -> dict[str, Any]:
            running = embedded.get(spec.node_id)
            return {
                "node_id": spec.node_id,
                "pid": running.pid if running is not None else None,
                "rpc_url": spec.rpc_url,
                "peer_id": spec.peer_id,
                "multiaddrs": list(spec.multiaddrs),
            }

        user = self._user_node
        document = {
            "version": STACK_FILE_VERSION,
            "pid": os.getpid(),
            "api_url": self.url,
            "token": self.token,
            "stage": self.options.stage,
            "replication_factor": Settings.from_env().replication_factor,
            "aws_endpoint_url": self._aws.endpoint_url,
            "pin_queue_url": self._queues["queue"],
            "dead_letter_queue_url": self._queues["dead_letter_queue"],
            "archive_queue_url": self._archive_queues["queue"],
            "webhook_queue_url": self._webhook_queues["queue"],
            "visibility_seconds": self._visibility,
            "kubo_rpc_secret": os.environ["KUBO_RPC_SECRET"],
            "fleet": [node(spec) for spec in self.options.nodes],
            "your_node": None
            if user is None
            else {
                "pid": user.pid,
                "rpc_url": user.rpc_url,
                "peer_id": user.peer_id,
                "multiaddrs": [user.multiaddr],
            },
            "worker": None if self._worker is None else {"pid": self._worker.pid, "restarts": self._worker.restarts},
            "api": None if self._api is None else {"pid": self._api.pid},
            "filecoin": self._filecoin_info(),
        }
        path = self.options.state_dir / STACK_FILE
        try:
            write_private(path, json.dumps(document, indent=2) + "\n")
        except OSError as error:
            raise StackError(f"cannot write {path}: {error.strerror or error}") from None

    def is_alive(self) -> bool:
        return self._api is not None and self._api.is_alive()

    def stop(self) -> None:
        """Stop whatever started, newest first; safe to call after a failed start."""
        with self._state_lock:
            self._ready = False
            if self._state_dir_lock.held:  # else the state dir is another stack's
                (self.options.state_dir / STACK_FILE).unlink(missing_ok=True)
        if self._api is not None:
            self._api.stop()
            self._api = None
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        for job in self._jobs:
            job.stop()
        self._jobs = []
        for node in self._kubo_nodes:
            if node.alive():
                node.process.terminate()  # all at once: each takes a moment to close
        for node in self._kubo_nodes:
            node.stop()
        self._kubo_nodes = []
        self._user_node = None
        if self._fake_network is not None:
            from devstack.fake_pdp_provider import stop_fake_network

            stop_fake_network(*self._fake_network)
            self._fake_network = None
        if self._aws is not None:
            self._aws.stop()
            self._aws = None
        # Last: the next stack may start once nothing of this one runs.
        self._state_dir_lock.release()


def _still_running(stack_file: Path) -> list[tuple[int, str]]:
    """(pid, role) of the processes a stack.json left by a crashed stack names
    that still run one of the stack's programs (not a pid reused since)."""
    try:
        document = json.loads(stack_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    # Not the stack's own pid: a running stack holds the state dir's lock, which the caller has.
    named = [
        ((document.get("worker") or {}).get("pid"), "its worker"),
        ((document.get("api") or {}).get("pid"), "its API"),
    ]
    named += [(node.get("pid"), f"Kubo node {node.get('node_id')}") for node in document.get("fleet") or []]
    named.append(((document.get("your_node") or {}).get("pid"), "your node"))
    return [
        (pid, role)
        for pid, role in named
        if isinstance(pid, int) and pid != os.getpid() and "devstack" in (command_line(pid) or "")
    ]


def _port_error(what: str, port: int, option: str, error: OSError) -> StackError:
    if error.errno == errno.EADDRINUSE:
        return StackError(
            f"port {port} on {HOST} for {what} is already in use; choose another with {option} PORT "
            f'(through make: make dev ARGS="{option} PORT"; 0 picks a free one)'
        )
    return StackError(f"cannot listen on {HOST}:{port} for {what}: {error.strerror or error}")
