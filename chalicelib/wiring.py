"""Builds the service's objects from settings, once per container."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, cast

from chalicelib.config import Settings, aws_client, read_secret
from chalicelib.fleet.holds import PinHolds
from chalicelib.fleet.node import Node
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.fleet.removal import NodeRemoval
from chalicelib.pins.service import PinService
from chalicelib.queue.outbox import Outbox
from chalicelib.queue.publisher import Publisher, SqsPublisher
from chalicelib.storage.hold_repository import DynamoHoldRepository
from chalicelib.storage.node_repository import DynamoNodeRepository
from chalicelib.storage.outbox_repository import DynamoOutboxRepository
from chalicelib.storage.pin_store import PinStore
from chalicelib.storage.tables import bind_models
from chalicelib.storage.tenant_repository import DynamoTenantRepository, DynamoTokenRepository
from chalicelib.tenants.authenticator import Authenticator
from chalicelib.tenants.rate_limits import RateLimiter, RateLimits, TenantRateLimits

# Loaded only where used: Kubo by the worker, TenantAdmin by the CLI and local
# stack, CountFolder by the pins stream's function, ShardPlanner by its schedule.
if TYPE_CHECKING:
    from chalicelib.api.receipts import Receipts
    from chalicelib.cold.archive_sweep import ArchiveSweep
    from chalicelib.cold.archiver import Archiver, ObjectStore
    from chalicelib.cold.restorer import Restorer
    from chalicelib.cold.retrieval import Retrieved, Retriever
    from chalicelib.cold.tiering import Tiering
    from chalicelib.cold.tiers import TierPolicies
    from chalicelib.filecoin.backend import FilecoinBackend
    from chalicelib.filecoin.backfill import CopiesBackfill
    from chalicelib.filecoin.copies import CopyWants
    from chalicelib.filecoin.copy_maker import CopyMaker
    from chalicelib.filecoin.repository import CopyRepository
    from chalicelib.filecoin.tracker import Tracker
    from chalicelib.fleet.reconciler import FleetReconciler
    from chalicelib.kubo.client import KuboClient
    from chalicelib.storage.count_folder import CountFolder
    from chalicelib.storage.shard_planner import ShardPlanner
    from chalicelib.storage.usage_folder import UsageFolder
    from chalicelib.tenants.admin import TenantAdmin
    from chalicelib.usage.export import UsageExport
    from chalicelib.usage.meter import UsageMeter
    from chalicelib.usage.plan_admin import PlanAdmin
    from chalicelib.usage.quotas import QuotaCheck, TenantQuotas
    from chalicelib.usage.requests import RequestMeter
    from chalicelib.usage.unique import OperatorLedger
    from chalicelib.webhooks.parts import WebhookParts
    from chalicelib.worker.invocation_slots import InvocationSlots
    from chalicelib.worker.pin_worker import PinWorker


# The public JSON-RPC endpoints (Glif) of the Filecoin networks, when FILECOIN_RPC_URL names none.
PUBLIC_RPC_URLS = {
    "mainnet": "https://api.node.glif.io/rpc/v1",
    "calibration": "https://api.calibration.node.glif.io/rpc/v1",
}


class _Hidden:
    """A secret kept in memory that no repr shows (a traceback's locals, a debugger)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<hidden>"


class Services:
    """What the handlers use. The worker's parts are built on first use, so
    API containers never import the Kubo client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # One DynamoDB client per container, built now rather than by each thread's first request.
        self.dynamo = bind_models(settings)
        self.publisher: Publisher = SqsPublisher(settings)
        self.nodes = DynamoNodeRepository(self.dynamo)
        self.registry = NodeRegistry(self.nodes, settings.node_cache_seconds)
        self.outbox = Outbox(DynamoOutboxRepository(), self.publisher, settings.outbox_shards)
        self.removal = NodeRemoval(self.registry, self.outbox)
        self.tokens = DynamoTokenRepository()
        self.authenticator = Authenticator(self.tokens, settings.token_cache_seconds)
        self.rate_limiter = RateLimiter(
            RateLimits(
                settings.rate_limit_per_second,
                settings.rate_limit_burst,
                settings.rate_limit_token_per_second,
                settings.rate_limit_token_burst,
            ),
            TenantRateLimits(self.tenants, settings.token_cache_seconds),
            settings.rate_limit_containers,
        )
        self.store = PinStore(self.dynamo, max_scanned_pins=settings.max_scanned_pins)
        self.pins = PinService(
            self.store,
            self.registry,
            self.outbox,
            settings.replication_factor,
            min_free_bytes=settings.min_free_bytes,
            quotas=self.quota_check,
        )
        self._kubo_clients: dict[str, KuboClient] = {}
        self._kubo_lock = threading.Lock()
        self._wallet_key: _Hidden | None = None

    @cached_property
    def admin(self) -> TenantAdmin:
        """Tenant administration: the CLI's and the local stack's, never a handler's."""
        from chalicelib.tenants.admin import TenantAdmin

        return TenantAdmin(self.tenants, self.tokens)

    @cached_property
    def planner(self) -> ShardPlanner:
        """Spreads busy tenants' pins over more shards: a schedule's."""
        from chalicelib.storage.shard_planner import ShardPlanner

        return ShardPlanner(self.store, pins_per_shard_per_s=self.settings.shard_pins_per_second)

    @cached_property
    def tenants(self) -> DynamoTenantRepository:
        return DynamoTenantRepository()

    @cached_property
    def tenant_quotas(self) -> TenantQuotas:
        """Each tenant's plan and quotas (chalicelib.usage), cached per container."""
        from chalicelib.storage.usage_plans import DynamoPlanRepository
        from chalicelib.usage.plans import parse_plans
        from chalicelib.usage.quotas import TenantQuotas

        settings = self.settings
        plans = parse_plans(settings.usage_plans)
        return TenantQuotas(DynamoPlanRepository(), plans, settings.default_plan, settings.plan_cache_seconds)

    @cached_property
    def usage(self) -> UsageMeter:
        """Tenants' usage: pins by status (the counts) and bytes (the usage ledger)."""
        from chalicelib.storage.usage_counters import DynamoRequestCounts
        from chalicelib.storage.usage_ledger import DynamoUsageLedger
        from chalicelib.usage.meter import UsageMeter

        return UsageMeter(self.store, DynamoUsageLedger(self.store.plans), requests=DynamoRequestCounts())

    @cached_property
    def request_meter(self) -> RequestMeter:
        """API requests by class and retrieval egress, flushed a minute at a time per container."""
        from chalicelib.storage.usage_counters import DynamoRequestCounts
        from chalicelib.usage.requests import RequestMeter

        return RequestMeter(DynamoRequestCounts())

    @cached_property
    def quota_check(self) -> QuotaCheck:
        from chalicelib.usage.quotas import QuotaCheck

        return QuotaCheck(self.tenant_quotas, self.usage)

    @cached_property
    def plan_admin(self) -> PlanAdmin:
        """Tenants' plans and quota overrides: the CLI's."""
        from chalicelib.usage.plan_admin import PlanAdmin

        return PlanAdmin(self.tenants, self.tenant_quotas.stored, self.tenant_quotas)

    @cached_property
    def usage_export(self) -> UsageExport | None:
        """The monthly usage records (a schedule's and the CLI's); None without USAGE_BUCKET."""
        bucket = self.settings.usage_bucket
        if not bucket:
            return None
        from chalicelib.usage.export import ObjectWriter, UsageExport

        tenant_ids = lambda: (tenant.tenant_id for tenant in self.tenants.all())  # noqa: E731
        objects = cast("ObjectWriter", self.s3)
        return UsageExport(tenant_ids, self.usage, objects, bucket, operator=self.operator_ledger)

    @cached_property
    def operator_ledger(self) -> OperatorLedger:
        """The operator's months of unique bytes stored (each CID once): the CLI's and the export's."""
        from chalicelib.storage.usage_ledger import DynamoOperatorLedger

        return DynamoOperatorLedger()

    @cached_property
    def usage_folder(self) -> UsageFolder:
        """Folds bytes changes into their months: the pins stream's function's, with the counts."""
        from chalicelib.storage.usage_folder import UsageFolder

        return UsageFolder(self.dynamo)

    @cached_property
    def folder(self) -> CountFolder:
        """Folds count changes into the counter trees: the pins stream's function's."""
        from chalicelib.storage.count_folder import CountFolder

        return CountFolder(self.dynamo)

    def kubo(self, node: Node) -> KuboClient:
        """One client (and connection pool) per node and container."""
        from chalicelib.kubo.client import KuboClient

        with self._kubo_lock:
            client = self._kubo_clients.get(node.node_id)
            if client is None or client.base_url != node.rpc_url:
                client = KuboClient(node.rpc_url, auth_header=self._kubo_auth_header)
                self._kubo_clients[node.node_id] = client
            return client

    @cached_property
    def _kubo_auth_header(self) -> str | None:
        """Read once per container, and only by functions that call Kubo."""
        settings = self.settings
        secret = settings.kubo_rpc_secret
        if secret is None and settings.kubo_rpc_secret_arn:
            secret = read_secret(settings, settings.kubo_rpc_secret_arn)
        return f"Bearer {secret}" if secret else None

    @cached_property
    def holds(self) -> PinHolds:
        # A removal lease outlives the longest Lambda run (15 minutes).
        return PinHolds(DynamoHoldRepository(self.dynamo), lease_seconds=15 * 60)

    @cached_property
    def webhooks(self) -> WebhookParts:
        """Webhook endpoints (API, CLI), the pins stream's fanout of their
        events and the webhooks queue's deliveries."""
        from chalicelib.storage.webhook_repository import DynamoWebhookRepository
        from chalicelib.webhooks.parts import WebhookParts

        return WebhookParts(self.settings, DynamoWebhookRepository(), self.store)

    @cached_property
    def worker(self) -> PinWorker:
        from chalicelib.worker.pin_worker import PinWorker

        return PinWorker(
            self.settings,
            self.store,
            self.registry,
            self.holds,
            self.kubo,
            archiver=self.archiver,
            restorer=self.restorer,
            tiering=self.tiering,
            copy_maker=self.copy_maker,
            quotas=self.quota_check,
        )

    @cached_property
    def invocation_slots(self) -> InvocationSlots | None:
        """Each tenant's bound across the pin function's invocations; None with TENANT_INVOCATIONS 0."""
        from chalicelib.storage.slot_repository import DynamoSlotRepository
        from chalicelib.worker.invocation_slots import invocation_slots

        settings = self.settings
        return invocation_slots(
            DynamoSlotRepository(),
            settings.tenant_invocations,
            settings.invocation_margin_seconds,
            settings.stalled_tenant_delay_seconds,
            settings.stage,
            settings.emit_metrics,
        )

    @cached_property
    def s3(self) -> ObjectStore:
        return cast("ObjectStore", aws_client(self.settings, "s3"))

    @cached_property
    def archiver(self) -> Archiver | None:
        """The cold tier's archiver (the worker's); None without ARCHIVE_BUCKET."""
        if not self.settings.archive_bucket:
            return None
        from chalicelib.cold.archiver import Archiver
        from chalicelib.storage.archive_repository import DynamoArchiveRepository

        return Archiver(
            self.settings,
            DynamoArchiveRepository(self.dynamo),
            self.s3,
            self.registry,
            self.kubo,
            self.store,
            cools_at=self.tiering.cools_at if self.tiering is not None else lambda tenant_id: None,
            copies=self.copy_wants,
        )

    @cached_property
    def tier_policies(self) -> TierPolicies:
        """Each tenant's storage tier, cached per container."""
        from chalicelib.cold.tiers import TierPolicies

        settings = self.settings
        return TierPolicies(
            self.tenants, settings.storage_tier, settings.cold_only_after_days, settings.tier_cache_seconds
        )

    @cached_property
    def tiering(self) -> Tiering | None:
        """Storage tiers at work: hot-only requests not archived, cold-only ones
        cooled (a schedule's, through the worker's release) and made hot again
        when retrieved or pinned again. None without ARCHIVE_BUCKET."""
        if not self.settings.archive_bucket:
            return None
        from chalicelib.cold.tiering import Tiering
        from chalicelib.queue.messages import encode
        from chalicelib.storage.archive_repository import DynamoArchiveRepository

        return Tiering(
            DynamoArchiveRepository(self.dynamo),
            self.tier_policies,
            self.store,
            release=lambda *hold: self.worker.release_hot(*hold),
            send=lambda message: self.publisher.send(encode(message)),
        )

    @cached_property
    def restorer(self) -> Restorer | None:
        """Brings back from the cold archive what no hot node holds (the worker's and the
        reconciler's); None without ARCHIVE_BUCKET."""
        if not self.settings.archive_bucket:
            return None
        from chalicelib.cold.archive_objects import ArchiveObjects, ArchiveReader
        from chalicelib.cold.restorer import Restorer
        from chalicelib.storage.archive_repository import DynamoArchiveRepository

        objects = ArchiveObjects(cast("ArchiveReader", self.s3), self.settings.archive_bucket)
        return Restorer(self.settings, DynamoArchiveRepository(self.dynamo), objects, self.kubo)

    @cached_property
    def archive_sweep(self) -> ArchiveSweep | None:
        """Deletes archives orphaned past the grace: a schedule's. None without ARCHIVE_BUCKET."""
        settings = self.settings
        if not settings.archive_bucket:
            return None
        from chalicelib.cold.archive_sweep import ArchiveSweep
        from chalicelib.storage.archive_repository import DynamoArchiveRepository

        return ArchiveSweep(
            DynamoArchiveRepository(self.dynamo),
            self.s3,
            settings.archive_bucket,
            settings.archive_prefix,
            settings.archive_grace_seconds,
            settings.archive_sweep_limit,
            end_copies=self.filecoin_tracker.end_all if self.filecoin_tracker is not None else lambda cid: True,
        )

    @cached_property
    def retrieval(self) -> Retriever:
        """GET /ipfs/{cid}: the tenant's pinned content from its nodes, else its
        archive (none without ARCHIVE_BUCKET). Loaded by the first retrieval only."""
        from chalicelib.cold.archive_objects import ArchiveObjects, ArchiveReader
        from chalicelib.cold.retrieval import RetrievalLimits, Retriever
        from chalicelib.storage.archive_repository import DynamoArchiveRepository

        settings = self.settings
        bucket = settings.archive_bucket
        limits = RetrievalLimits(
            max_bytes=settings.retrieval_max_bytes,
            node_seconds=settings.retrieval_node_seconds,
            url_seconds=settings.retrieval_url_seconds,
        )
        return Retriever(
            self.pins,
            self.registry.nodes,
            self.kubo,
            DynamoArchiveRepository(self.dynamo) if bucket else None,
            ArchiveObjects(cast("ArchiveReader", self.s3), bucket) if bucket else None,
            limits,
            on_retrieved=self._retrieved,
        )

    def _retrieved(self, retrieved: Retrieved) -> None:
        """A retrieval served: its bytes counted as the tenant's egress; a cold-only
        tenant's requests for the CID cool later, or are restored."""
        self.request_meter.egress(retrieved.tenant_id, retrieved.bytes)
        if self.tiering is not None:
            self.tiering.touch_retrieved(retrieved.tenant_id, retrieved.cid_key)

    @cached_property
    def reconciler(self) -> FleetReconciler:
        """Compares the fleet's pins with the holds: a schedule's. Its repairs take the worker's pin path."""
        from chalicelib.fleet.reconciler import FleetReconciler
        from chalicelib.queue.messages import encode
        from chalicelib.storage.reconcile_repository import DynamoReconcileRepository

        return FleetReconciler(
            self.registry,
            self.holds,
            DynamoReconcileRepository(),
            self.store,
            self.kubo,
            self.worker.copy_to,
            grace_seconds=self.settings.reconcile_grace_seconds,
            pin_deadline_seconds=self.settings.pin_deadline_seconds,
            pins_per_run=self.settings.reconcile_pins_per_run,
            release_archive=None if self.archiver is None else self.archiver.release,
            restorer=self.restorer,
            # A restore longer than a run goes to the archive function's long turns.
            hand_off=lambda message: self.publisher.send(encode(message)),
        )

    @cached_property
    def filecoin_backend(self) -> FilecoinBackend | None:
        """Makes Filecoin copies (chalicelib.filecoin.backend), as FILECOIN_BACKEND
        says; None ("off"): no copies are made, tracked or wanted. Tests may set
        it before the worker's, the archiver's or the tracker's first use."""
        settings = self.settings
        if settings.filecoin_backend == "off":
            return None
        if settings.filecoin_backend != "pdp":
            raise ValueError(f"FILECOIN_BACKEND must be pdp or off, not {settings.filecoin_backend!r}")
        # Loaded here: eth-abi and requests cost ~0.4 s (docs/filecoin-pdp.md).
        from chalicelib.filecoin.pdp.backend import PdpBackend, PdpSettings
        from chalicelib.filecoin.pdp.contracts import NETWORKS

        network = NETWORKS.get(settings.filecoin_network)
        if network is None:
            raise ValueError(
                f"FILECOIN_NETWORK must be one of {', '.join(NETWORKS)}, not {settings.filecoin_network!r}"
            )
        pdp = PdpSettings(
            network,
            settings.filecoin_rpc_url or PUBLIC_RPC_URLS[network.name],
            grace_epochs=settings.filecoin_proof_grace_epochs,
        )
        return PdpBackend(pdp, self._filecoin_wallet_key)

    def _filecoin_wallet_key(self) -> str:
        """The wallet's key, read from Secrets Manager at the first signature
        and kept for the container's life; never logged (the backend's
        WalletError carries none of it)."""
        if self._wallet_key is None:
            settings = self.settings
            key = settings.filecoin_wallet_key
            if key is None and settings.filecoin_wallet_secret_arn:
                key = read_secret(settings, settings.filecoin_wallet_secret_arn).strip()
            if not key:
                raise LookupError("neither FILECOIN_WALLET_SECRET_ARN nor FILECOIN_WALLET_KEY is set")
            self._wallet_key = _Hidden(key)
        return self._wallet_key.value

    @cached_property
    def filecoin_copies(self) -> CopyRepository:
        """The copies, wants and receipts of CIDs (the filecoin-copies table)."""
        from chalicelib.storage.filecoin_repository import DynamoCopyRepository

        return DynamoCopyRepository(self.dynamo)

    @cached_property
    def receipts(self) -> Receipts:
        """GET /pins/{requestid}/receipts: a request's Filecoin copies (loaded by its first call)."""
        from chalicelib.api.receipts import ProviderNames, Receipts
        from chalicelib.filecoin.wanted import WantedCopies
        from chalicelib.storage.filecoin_tenants import DynamoTenantCopies

        backend = self.filecoin_backend
        if backend is None:
            return Receipts(self.filecoin_copies, lambda tenant_id, meta: 0, lambda: {})
        wanted = WantedCopies(DynamoTenantCopies(), self.settings.filecoin_copies)
        return Receipts(self.filecoin_copies, wanted.of_request, ProviderNames(backend))

    @cached_property
    def copy_wants(self) -> CopyWants | None:
        """The archiver's: each archived holder's copies wanted. None without a backend."""
        if self.filecoin_backend is None:
            return None
        from chalicelib.filecoin.copies import CopyWants
        from chalicelib.filecoin.wanted import WantedCopies
        from chalicelib.storage.filecoin_tenants import DynamoTenantCopies

        return CopyWants(self.filecoin_copies, WantedCopies(DynamoTenantCopies(), self.settings.filecoin_copies))

    @cached_property
    def copies_backfill(self) -> CopiesBackfill | None:
        """The wants of requests archived before a copies setting changed, recorded again
        (`cli.admin tenants filecoin-existing`). None without a backend."""
        wants = self.copy_wants
        if wants is None:
            return None
        from chalicelib.filecoin.backfill import CopiesBackfill
        from chalicelib.storage.archive_repository import DynamoArchiveRepository

        return CopiesBackfill(self.store, DynamoArchiveRepository(self.dynamo), wants)

    @cached_property
    def filecoin_tracker(self) -> Tracker | None:
        """Keeps each archived CID at the copies wanted: a schedule's, and the
        archive sweep's (ends the copies of an archive it deletes). None without
        a backend or ARCHIVE_BUCKET."""
        backend = self.filecoin_backend
        if backend is None or not self.settings.archive_bucket:
            return None
        from chalicelib.filecoin.tracker import Tracker, TrackerSettings
        from chalicelib.queue.messages import encode
        from chalicelib.storage.archive_repository import DynamoArchiveRepository

        return Tracker(
            self.filecoin_copies,
            backend,
            DynamoArchiveRepository(self.dynamo),
            self.store,
            lambda message: self.publisher.send(encode(message)),
            TrackerSettings.of(self.settings),
            quota=self.quota_check.filecoin_copies_quota,
        )

    @cached_property
    def copy_maker(self) -> CopyMaker | None:
        """Makes one copy (`filecoin_copy` messages, the archive function's).
        None without a backend or ARCHIVE_BUCKET."""
        backend, bucket = self.filecoin_backend, self.settings.archive_bucket
        if backend is None or not bucket:
            return None
        from chalicelib.cold.archive_objects import ArchiveObjects, ArchiveReader
        from chalicelib.filecoin.copy_maker import CopyMaker
        from chalicelib.storage.archive_repository import DynamoArchiveRepository

        return CopyMaker(
            self.filecoin_copies,
            backend,
            DynamoArchiveRepository(self.dynamo),
            ArchiveObjects(cast("ArchiveReader", self.s3), bucket),
            metrics=sys.stdout if self.settings.emit_metrics else None,
            stage=self.settings.stage,
        )


def build_services(settings: Settings) -> Services:
    return Services(settings)


class ServiceProvider:
    """Lazily builds the services on first use (not at import: Chalice sets a
    stage's environment only when a handler runs); tests may install their own."""

    def __init__(self, factory: Callable[[], Services] = lambda: build_services(Settings.from_env())) -> None:
        self._factory = factory
        self._services: Services | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Services:
        if self._services is None:
            with self._lock:
                if self._services is None:
                    self._services = self._factory()
        return self._services

    def install(self, services: Services | None) -> None:
        self._services = services
