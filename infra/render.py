"""Renders the service stack's merge template of every stage (infra/service-<stage>.json).

`chalice package --merge-template infra/service-<stage>.json` deep-merges it
into Chalice's SAM output: the tables (from the PynamoDB models, so they
cannot drift), the queues, the Kubo RPC secret, alarms, and each function's
own role policy, event source and environment. Run `python -m infra.render`
after changing a model, a function's access or .chalice/config.json;
tests/infra fails while the checked-in files differ from the rendering.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynamodb.models import Model

from chalicelib.cold.archiver import CAR_TAGGING
from chalicelib.config import Settings
from chalicelib.fleet.lifecycle import fleet_group_name
from chalicelib.fleet.reconciler import METRICS as RECONCILER_METRICS
from chalicelib.metrics import NAMESPACE as METRIC_NAMESPACE
from chalicelib.storage.archive_record import ArchiveRecord
from chalicelib.storage.change_stream import CHANGE_FILTER
from chalicelib.storage.filecoin_record import FilecoinRecord
from chalicelib.storage.node_pin import NodePin
from chalicelib.storage.node_record import NodeRecord
from chalicelib.storage.outbox_entry import OutboxEntry
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.tables import MODELS, table_name
from chalicelib.storage.tenant_record import ApiTokenRecord, TenantRecord
from chalicelib.storage.tenant_slot import TenantSlot
from chalicelib.storage.webhook_record import WebhookItem
from chalicelib.usage.export import EXPORT_PREFIX
from chalicelib.webhooks.delivery import BACKOFF_SECONDS, MAX_ATTEMPTS
from chalicelib.webhooks.events import WEBHOOK_FILTER

REPO_ROOT = Path(__file__).resolve().parents[1]
CHALICE_CONFIG = REPO_ROOT / ".chalice" / "config.json"

Json = dict[str, Any]


@dataclass(frozen=True)
class StageOptions:
    """What differs between stages beyond .chalice/config.json."""

    # Tables and the secret survive a stack deletion or replacement; tables
    # also refuse DeleteTable.
    retain: bool
    # Concurrent worker invocations, each with up to NODE_CONCURRENCY Kubo
    # calls per node: the fleet's protection (2 is Lambda's minimum).
    worker_max_concurrency: int
    # The API stage's throttle over every client together (API Gateway's token
    # bucket, answered as gateway_responses.json's THROTTLED): a service-wide
    # backstop far above any one tenant's limits (chalicelib.tenants.rate_limits,
    # per container), which also bounds requests no token admits (401s).
    api_rate_per_second: int = 2000
    api_burst: int = 5000


STAGE_OPTIONS: Mapping[str, StageOptions] = {
    "dev": StageOptions(retain=False, worker_max_concurrency=2),
    "prod": StageOptions(retain=True, worker_max_concurrency=10),
}

# AWS's advice for SQS event sources: visibility >= 6 x the function timeout.
VISIBILITY_FACTOR = 6
# Dead letters are kept as long as SQS allows, for a failing give-up to be retried.
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
PIN_QUEUE = "PinQueue"
DEAD_LETTER_QUEUE = "PinDeadLetterQueue"
ARCHIVE_QUEUE = "ArchiveQueue"
ARCHIVE_DEAD_LETTER_QUEUE = "ArchiveDeadLetterQueue"
SECRET = "KuboRpcSecret"
# The Filecoin wallet's key (chalicelib.filecoin.pdp.signing): created without
# a value; the operator puts the key (docs/deploy.md, "Filecoin copies").
FILECOIN_SECRET = "FilecoinWalletSecret"
ALARM_TOPIC = "AlarmTopic"
FOLD_FAILURES = "FoldFailureQueue"
FOLD_FUNCTION = "FoldCounts"  # app.fold_counts
# Webhooks (chalicelib.webhooks): the pins stream's second consumer, its
# FIFO delivery queue and dead letters, and where the stream records it gave up on go.
WEBHOOK_EVENTS = "WebhookEvents"  # app.webhook_events
WEBHOOK_QUEUE = "WebhookQueue"
WEBHOOK_DEAD_LETTER_QUEUE = "WebhookDeadLetterQueue"
WEBHOOK_EVENT_FAILURES = "WebhookEventFailureQueue"
# Records a batch of the webhook stream mapping: no batching window, the
# events go out as soon as the stream has them (the latency is the point).
WEBHOOK_EVENTS_BATCH_SIZE = 100
WEBHOOK_EVENTS_RETRIES = 10
# Deliveries at once (each one message: chalicelib.webhooks.delivery.BATCH_SIZE);
# a failing endpoint's deliveries wait in their backoff, not in an invocation.
WEBHOOK_MAX_CONCURRENCY = 10
# A delivery is kept past its last attempt: the schedule plus a day.
WEBHOOK_RETENTION_SECONDS = sum(BACKOFF_SECONDS) + 24 * 3600
WORKER_VPC = "UseWorkerVpc"
ARCHIVE_BUCKET = "ArchiveBucket"
# The condition of the lifecycle rule's Deep Archive transition.
DEEP_ARCHIVE = "HasDeepArchive"

READ = ("dynamodb:GetItem",)
QUERY = ("dynamodb:Query",)
# What Lambda's event source mapping reads a table's stream with, as the function's role.
STREAM_READS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams")

# Count changes reach the fold function in batches of up to this many records
# or this many seconds of them: a batch folds each shard it names once.
FOLD_BATCH_SIZE = 1000
FOLD_BATCHING_WINDOW_S = 1
# A batch whose folds keep giving up is delivered again (halved on an error)
# this often, then skipped, its place sent to FOLD_FAILURES. Skipping loses
# no count: the changes stay in their shard, counted by every read, which
# only costs readers more until the shard's next change folds them too.
FOLD_RETRIES = 10
# Folds are due within seconds; the stream's oldest unfolded record this old
# (IteratorAge, ms) for FOLD_LAG_MINUTES running means the folds fall behind.
FOLD_LAG_MS = 60_000
FOLD_LAG_MINUTES = 5
# The reconciler's counts its alarm adds up, by metric-math id.
RECONCILER_REPAIRS = {
    "missing": RECONCILER_METRICS["missing_found"][0],
    "reclaimed": RECONCILER_METRICS["reclaimed"][0],
    "recounted": RECONCILER_METRICS["counts_corrected"][0],
    "orphaned": RECONCILER_METRICS["orphans_released"][0],
}


@dataclass(frozen=True)
class Access:
    """What one function's code does with the stage's resources (checked
    against the calls it makes in tests/infra/test_iam_usage.py)."""

    tables: Mapping[type[Model], tuple[str, ...]] = field(default_factory=dict)
    # Models whose every index the function queries, or (model, index name) for one of them.
    indexes: tuple[type[Model] | tuple[type[Model], str], ...] = ()
    sends_pins: bool = False
    # Sends the long work, archive and restore messages (ARCHIVE_QUEUE_URL):
    # the pin worker once a request is pinned (and a restore too long for its
    # turn, or one the API sent to the pin queue), the archive worker its continuations.
    sends_archives: bool = False
    consumes: tuple[str, ...] = ()
    calls_kubo: bool = False
    # Lets the fleet's Auto Scaling group finish terminating a node.
    completes_lifecycle: bool = False
    # Fed the count changes of the pins table's stream (fold_stream_source).
    folds_pins_stream: bool = False
    # S3 actions on the monthly usage records (usage/*) in the cold tier's bucket (USAGE_BUCKET).
    usage_objects: tuple[str, ...] = ()
    # S3 actions on the archives (ARCHIVE_PREFIX*) of the cold tier's bucket.
    archive_objects: tuple[str, ...] = ()
    # Lets requests' archive holds go (no object touched): it needs to know the stage keeps archives.
    releases_archives: bool = False
    # Fed the pins table's stream's status changes (webhook_stream_source); sends to the webhooks queue.
    webhook_events: bool = False
    # Holds a failed delivery for its backoff (ChangeMessageVisibility on the webhooks queue).
    delivers_webhooks: bool = False
    # Signs Filecoin authorisations (a copy stored or ended): reads the wallet's key.
    signs_filecoin: bool = False


# A pin change writes the pin's items, its count change and (API) its outbox
# entry in one transaction: a Put, Update or Delete per item, each its own IAM
# action; a fold adds changes to counter buckets, deletes them and counts the
# fold in one.
FUNCTIONS: Mapping[str, Access] = {
    "APIHandler": Access(
        tables={
            ApiTokenRecord: READ,
            # UpdateItem: a minute's request counts and egress, one ADD per tenant (chalicelib.usage.requests).
            PinItem: (
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ),
            OutboxEntry: ("dynamodb:PutItem", "dynamodb:DeleteItem"),
            NodeRecord: QUERY,
            # Retrieval (GET /ipfs/{cid}): the CID's archive state; a cold-only
            # tenant's holds of it, their cooling moved forward (chalicelib.cold.tiering).
            ArchiveRecord: ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"),
            # The tenant's storage tier, on a retrieval.
            TenantRecord: READ,
            # Webhook endpoints registered, listed, read, removed; their delivery logs.
            WebhookItem: ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem"),
            # A request's Filecoin copies (GET /pins/{requestid}/receipts).
            FilecoinRecord: QUERY,
        },
        sends_pins=True,
        # Retrieval reads a pinned DAG from its nodes (in the workers' VPC with
        # WorkerVpc=true: docs/cold-tier.md, "Retrieval", says why), else from
        # its archive: the index and ranged reads, the HeadObject of a presigned
        # URL (GetObject's), and the thaw of one in Deep Archive.
        calls_kubo=True,
        archive_objects=("s3:GetObject", "s3:RestoreObject"),
    ),
    "PinWorker": Access(
        tables={
            # Query: a tenant's bytes (its usage ledger) read for its bytes quota as a pin becomes pinned.
            PinItem: (
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ),
            NodeRecord: ("dynamodb:GetItem", "dynamodb:Query"),
            NodePin: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
            # A request's archive hold let go (a transaction); a cold-only
            # tenant's other holds of a CID it pinned again, their cooling moved forward.
            ArchiveRecord: ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
            # The tenant's storage tier: is a pinned request archived?
            TenantRecord: READ,
            # A batch's slot per tenant (chalicelib.worker.invocation_slots):
            # taken, the tenant's slots read on a conflict, given back.
            TenantSlot: ("dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:DeleteItem"),
            # An archive hold let go: the request's Filecoin want with it (and its CID due for the tracker).
            FilecoinRecord: ("dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        },
        indexes=(NodePin,),  # a removed node's holders, for its drain
        sends_pins=True,
        sends_archives=True,
        consumes=(PIN_QUEUE,),
        calls_kubo=True,
        # Archives are the ArchiveWorker's: this one lets a request's hold go,
        # and restores a CID no hot node holds (a drain, a re-pin, a restore
        # message: chalicelib.cold.restorer): the CAR streamed, the HeadObject
        # of one in Deep Archive (GetObject's) and its thaw.
        archive_objects=("s3:GetObject", "s3:RestoreObject"),
    ),
    "ArchiveWorker": Access(
        tables={
            # The request's `info` (the cold keys; a restore's replicas and note), read and written back (a transaction).
            PinItem: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
            # The healthy nodes of the request, to export from; a restore's placement nodes.
            NodeRecord: QUERY,
            # A restore message's holds on its placement nodes (the holder item and the count, a transaction).
            NodePin: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
            # The request's hold (or, its request gone, its release), the lease, the figures or the failure.
            ArchiveRecord: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
            # The tenant's storage tier: when does a cold-only hold cool? Its Filecoin copies.
            TenantRecord: READ,
            # The request's Filecoin want recorded once archived (or let go); a
            # `filecoin_copy` message's copy read, marked, stored and its receipt written.
            FilecoinRecord: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        },
        sends_archives=True,
        consumes=(ARCHIVE_QUEUE,),
        calls_kubo=True,
        # A multipart upload (its create, parts and completion are PutObject's;
        # its tag, for the lifecycle rules, PutObjectTagging's), the index's
        # PutObject, and the abort of a cut one. Restore messages (the long
        # turns) stream a CAR into the nodes: GetObject (and the HeadObject of
        # one in Deep Archive), and its thaw.
        archive_objects=(
            "s3:PutObject",
            "s3:PutObjectTagging",
            "s3:AbortMultipartUpload",
            "s3:GetObject",
            "s3:RestoreObject",
        ),
        # A copy uploaded and added: the authorisations signed with the wallet's key.
        signs_filecoin=True,
    ),
    "ArchiveDeadLetters": Access(
        tables={
            PinItem: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
            # The archive's last error, and its failure.
            ArchiveRecord: ("dynamodb:GetItem", "dynamodb:UpdateItem"),
            # A `filecoin_copy` message given up: its copy read (failed if still pending; repaired).
            FilecoinRecord: READ,
        },
        consumes=(ARCHIVE_DEAD_LETTER_QUEUE,),
        releases_archives=True,  # the archiver's bucket setting; no object is touched
    ),
    "PinDeadLetters": Access(
        tables={
            PinItem: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
            NodeRecord: QUERY,
            # A release reads the holder count, then takes it down in one transaction.
            NodePin: ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        },
        consumes=(DEAD_LETTER_QUEUE,),
        calls_kubo=True,
    ),
    "CheckFleetHealth": Access(tables={NodeRecord: ("dynamodb:Query", "dynamodb:UpdateItem")}, calls_kubo=True),
    "SweepOutbox": Access(tables={OutboxEntry: ("dynamodb:Query", "dynamodb:DeleteItem")}, sends_pins=True),
    # The orphans index, each orphan's state, its DELETING mark and deletion; its objects.
    # The CID's Filecoin copies ended first (read, their removal signed, each written ended).
    "SweepArchives": Access(
        tables={
            ArchiveRecord: ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
            FilecoinRecord: ("dynamodb:Query", "dynamodb:PutItem"),
        },
        indexes=((ArchiveRecord, "orphaned"),),
        archive_objects=("s3:DeleteObject",),
        signs_filecoin=True,
    ),
    # The holds due to cool (their index), each one's tenant tier, request,
    # archive state and new time; the request marked cooling then cold; its
    # hot holds released (each node's count and lease) and their pins removed.
    "CoolPins": Access(
        tables={
            ArchiveRecord: ("dynamodb:GetItem", "dynamodb:UpdateItem"),
            TenantRecord: READ,
            PinItem: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
            NodeRecord: QUERY,
            NodePin: ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        },
        indexes=((ArchiveRecord, "cooling"),),
        calls_kubo=True,
        releases_archives=True,  # its tiering exists only where archives are kept
    ),
    "NodeTerminating": Access(
        tables={NodeRecord: ("dynamodb:DeleteItem",), OutboxEntry: ("dynamodb:PutItem", "dynamodb:DeleteItem")},
        sends_pins=True,  # the node's drain
        completes_lifecycle=True,
    ),
    "ReconcileFleet": Access(
        tables={
            NodeRecord: QUERY,
            # The holders' pages (node index) and each pin's tally, sighting,
            # count, lease; its holder reads; each node's cursor; a page's
            # orphan notes (one batch read), and an orphaned hold's release.
            NodePin: (
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
            ),
            # Each holder's request: is it pinned there, gone or failed? A
            # repair restored from the archive (or waiting for its thaw) is
            # written in its `info` (an Update, and its copies Put).
            PinItem: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
            # An orphaned hold's request lets its archive go too (its Filecoin
            # want with it); a missing pin's archive state, for a restore.
            ArchiveRecord: ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
            FilecoinRecord: ("dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        },
        indexes=(NodePin,),
        calls_kubo=True,
        # A pin missing on every node restored from its archive, as the PinWorker does;
        # one too long for a run handed to the archive function (a restore message).
        archive_objects=("s3:GetObject", "s3:RestoreObject"),
        sends_archives=True,
    ),
    # The CIDs due (their index), each one's wants, copies and state; its
    # archive; copies begun, followed, ended (each a conditional write, a new
    # one with the state's step in a transaction), the month's spend; the
    # holding requests' info; copy messages to the archive function; an
    # ended copy's removal signed.
    "TrackFilecoinCopies": Access(
        tables={
            FilecoinRecord: ("dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"),
            ArchiveRecord: READ,
            PinItem: ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
        },
        indexes=((FilecoinRecord, "due"),),
        sends_archives=True,
        releases_archives=True,  # the tracker exists only where archives are kept
        signs_filecoin=True,
    ),
    # On the 1st: each tenant (their listing) and its month's usage (its
    # counts, shard plan, ledger and request counts), written to usage/.
    "ExportUsage": Access(
        tables={TenantRecord: (), PinItem: ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")},
        indexes=((TenantRecord, "tenants-by-creation"),),
        usage_objects=("s3:PutObject",),
    ),
    FOLD_FUNCTION: Access(
        # The folds; and the writing tenants' recent pins counted, their shard plans raised.
        tables={
            PinItem: (
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            )
        },
        folds_pins_stream=True,
    ),
    # A status event's pin (its shard plan too), the tenant's endpoints; deliveries sent.
    WEBHOOK_EVENTS: Access(tables={PinItem: READ, WebhookItem: QUERY}, webhook_events=True),
    # A delivery's endpoint, and the attempt logged.
    "WebhookWorker": Access(
        tables={WebhookItem: ("dynamodb:GetItem", "dynamodb:PutItem")},
        consumes=(WEBHOOK_QUEUE,),
        delivers_webhooks=True,
    ),
}

# Chalice's logical id of each function's role.
ROLES = {"APIHandler": "ApiHandlerRole"}

CONSUMER_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
# What a function in a VPC needs to attach its network interfaces; EC2 cannot
# scope these to resources, so "*" (no data is behind them).
VPC_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]

PARAMETERS: Json = {
    "MaxReceiveCount": {
        "Type": "Number",
        "Default": 5,
        "MinValue": 1,
        "Description": "Deliveries of a pin message before it goes to the dead-letter queue (its request then fails).",
    },
    "OldestMessageAgeSeconds": {
        "Type": "Number",
        "Default": 900,
        "MinValue": 60,
        "Description": "Alarm when the oldest pin message has waited this long.",
    },
    "Api5xxRate": {
        "Type": "Number",
        "Default": 0.05,
        "Description": "Alarm when this share of API requests (of at least 20 in 5 minutes) answers 5xx.",
    },
    "AlarmEmail": {
        "Type": "String",
        "Default": "",
        "Description": "Optional address subscribed to the alarm topic (confirm the mail AWS sends).",
    },
    "ArchiveColdAfterDays": {
        "Type": "Number",
        "Default": 30,
        "MinValue": 1,
        "Description": "Days after which archives (their CARs) move to S3 Glacier Instant Retrieval "
        "(the bucket's lifecycle rule).",
    },
    "ArchiveDeepArchiveDays": {
        "Type": "Number",
        "Default": 0,
        "MinValue": 0,
        "Description": "Days after which archives (their CARs) move on to S3 Glacier Deep Archive; 0: never. "
        "At least ArchiveColdAfterDays + 30 (S3 refuses the rule otherwise). A restore or retrieval from "
        "Deep Archive waits for S3 to thaw a copy (up to 12 hours).",
    },
    "WorkerVpc": {
        "Type": "String",
        "Default": "true",
        "AllowedValues": ["true", "false"],
        "Description": "Run the functions that call Kubo in the network stack's private subnets "
        "(imports pinning-<stage>-WorkerSubnetIds and -WorkerSecurityGroupId). "
        "false: they reach the Kubo RPC some other way.",
    },
}


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def table_id(settings: Settings, model: type[Model]) -> str:
    """Logical id: PinsTable, OutboxTable, ..."""
    return camel(table_name(settings, model)[len(settings.table_prefix) + 1 :]) + "Table"


def arn(resource: str) -> Json:
    return {"Fn::GetAtt": [resource, "Arn"]}


def table(settings: Settings, model: type[Model], options: StageOptions) -> Json:
    """The table exactly as PynamoDB's create_table would make it, plus what
    a deployed table needs (on-demand, point-in-time recovery, SSE)."""
    schema = model._get_schema()
    properties: Json = {
        "TableName": table_name(settings, model),
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": sorted(schema["attribute_definitions"], key=lambda a: a["AttributeName"]),
        "KeySchema": _key_schema(schema["key_schema"]),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
        "DeletionProtectionEnabled": options.retain,
    }
    for kind, key in (
        ("global_secondary_indexes", "GlobalSecondaryIndexes"),
        ("local_secondary_indexes", "LocalSecondaryIndexes"),
    ):
        indexes = sorted(schema[kind], key=lambda index: index["index_name"])
        if indexes:
            properties[key] = [_index(index) for index in indexes]
    ttl = model._ttl_attribute()
    if ttl is not None:
        properties["TimeToLiveSpecification"] = {"AttributeName": ttl.attr_name, "Enabled": True}
    stream = getattr(model.Meta, "stream_view_type", None)
    if stream is not None:
        properties["StreamSpecification"] = {"StreamViewType": stream}
    return {"Type": "AWS::DynamoDB::Table", **_retention(options), "Properties": properties}


def _key_schema(keys: list[Json]) -> list[Json]:
    # DynamoDB wants the hash key first.
    return sorted(
        ({"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in keys), key=lambda k: k["KeyType"]
    )


def _index(index: Json) -> Json:
    projection = {"ProjectionType": index["projection"]["ProjectionType"]}
    if "NonKeyAttributes" in index["projection"]:
        projection["NonKeyAttributes"] = sorted(index["projection"]["NonKeyAttributes"])
    return {"IndexName": index["index_name"], "KeySchema": _key_schema(index["key_schema"]), "Projection": projection}


def _retention(options: StageOptions) -> Json:
    policy = "Retain" if options.retain else "Delete"
    return {"DeletionPolicy": policy, "UpdateReplacePolicy": policy}


def queues(settings: Settings, worker_timeout: int, dead_letters_timeout: int) -> Json:
    name = f"{settings.table_prefix}-pins"
    return {
        PIN_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": name,
                "VisibilityTimeout": VISIBILITY_FACTOR * worker_timeout,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": arn(DEAD_LETTER_QUEUE),
                    "maxReceiveCount": {"Ref": "MaxReceiveCount"},
                },
            },
        },
        DEAD_LETTER_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": f"{name}-dlq",
                "VisibilityTimeout": VISIBILITY_FACTOR * dead_letters_timeout,
                "MessageRetentionPeriod": DEAD_LETTER_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True,
            },
        },
        # Where the pins stream's records that every fold gave up on are named
        # (Lambda's on-failure destination; nothing consumes it): for an operator.
        FOLD_FAILURES: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": f"{settings.table_prefix}-fold-failures",
                "MessageRetentionPeriod": DEAD_LETTER_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True,
            },
        },
    }


def archive_queues(settings: Settings, worker_timeout: int, dead_letters_timeout: int) -> Json:
    """The archive function's queue (its messages may each take its 15
    minutes: no pin waits behind them) and its dead letters."""
    name = f"{settings.table_prefix}-archives"
    return {
        ARCHIVE_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": name,
                "VisibilityTimeout": VISIBILITY_FACTOR * worker_timeout,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": arn(ARCHIVE_DEAD_LETTER_QUEUE),
                    "maxReceiveCount": {"Ref": "MaxReceiveCount"},
                },
            },
        },
        ARCHIVE_DEAD_LETTER_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": f"{name}-dlq",
                "VisibilityTimeout": VISIBILITY_FACTOR * dead_letters_timeout,
                "MessageRetentionPeriod": DEAD_LETTER_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True,
            },
        },
    }


def secret(settings: Settings, options: StageOptions) -> Json:
    return {
        "Type": "AWS::SecretsManager::Secret",
        **_retention(options),
        "Properties": {
            "Name": f"{settings.table_prefix}-kubo-rpc",
            "Description": "Bearer token of the fleet's Kubo RPC (API.Authorizations); the whole SecretString is the token.",
            "GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": True},
        },
    }


def filecoin_secret(settings: Settings, options: StageOptions) -> Json:
    """The wallet's key, put by the operator; created empty (no key is generated here: the wallet is funded first)."""
    return {
        "Type": "AWS::SecretsManager::Secret",
        **_retention(options),
        "Properties": {
            "Name": f"{settings.table_prefix}-filecoin-wallet",
            "Description": "Private key (0x-prefixed hex) of the Filecoin wallet that pays for copies "
            "(FILECOIN_BACKEND=pdp); the whole SecretString is the key.",
        },
    }


def archive_bucket(settings: Settings, options: StageOptions) -> Json:
    """The cold tier's bucket: private, encrypted, unversioned (an archive is
    written once and deleted by the sweep: no version may outlive it), its
    CARs moved to Glacier Instant Retrieval after ArchiveColdAfterDays and,
    if ArchiveDeepArchiveDays is set, to Deep Archive then (their indexes
    stay readable), and the parts of uploads left unfinished (a worker that
    died) dropped."""
    tag, value = CAR_TAGGING.split("=")
    return {
        "Type": "AWS::S3::Bucket",
        **_retention(options),
        "Properties": {
            # Bucket names are global: the account and region make it this stage's.
            "BucketName": {"Fn::Sub": f"{settings.table_prefix}-archives-${{AWS::AccountId}}-${{AWS::Region}}"},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LifecycleConfiguration": {
                "Rules": [
                    {
                        # CARs only (tagged at upload): the block indexes stay in S3 Standard.
                        "Id": "ArchivesToGlacierInstantRetrieval",
                        "Status": "Enabled",
                        "Prefix": settings.archive_prefix,
                        "TagFilters": [{"Key": tag, "Value": value}],
                        "Transitions": [
                            {"StorageClass": "GLACIER_IR", "TransitionInDays": {"Ref": "ArchiveColdAfterDays"}},
                            {
                                "Fn::If": [
                                    DEEP_ARCHIVE,
                                    {
                                        "StorageClass": "DEEP_ARCHIVE",
                                        "TransitionInDays": {"Ref": "ArchiveDeepArchiveDays"},
                                    },
                                    {"Ref": "AWS::NoValue"},
                                ]
                            },
                        ],
                    },
                    {
                        "Id": "AbortIncompleteUploads",
                        "Status": "Enabled",
                        "Prefix": "",
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    },
                ]
            },
        },
    }


def archive_bucket_policy() -> Json:
    """TLS only."""
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": {"Ref": ARCHIVE_BUCKET},
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [arn(ARCHIVE_BUCKET), {"Fn::Sub": f"${{{ARCHIVE_BUCKET}.Arn}}/*"}],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            },
        },
    }


def policy(settings: Settings, access: Access) -> Json:
    statements: list[Json] = [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [
                {
                    "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}-*"
                },
                {
                    "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}-*:*"
                },
            ],
        }
    ]
    for model, actions in access.tables.items():
        logical = table_id(settings, model)
        if actions:  # none: the function only queries the table's indexes
            statements.append({"Sid": logical, "Effect": "Allow", "Action": sorted(actions), "Resource": arn(logical)})
        queried = [
            index["index_name"]
            for index in _indexes_of(model)
            if model in access.indexes or (model, index["index_name"]) in access.indexes
        ]
        if queried:
            indexes = [{"Fn::Sub": f"${{{logical}.Arn}}/index/{name}"} for name in queried]
            statements.append(
                {"Sid": f"{logical}Indexes", "Effect": "Allow", "Action": list(QUERY), "Resource": indexes}
            )
    if access.sends_pins:
        statements.append(
            {"Sid": "SendPins", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": arn(PIN_QUEUE)}
        )
    if access.sends_archives:
        statements.append(
            {"Sid": "SendArchives", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": arn(ARCHIVE_QUEUE)}
        )
    for queue in access.consumes:
        statements.append(
            {"Sid": f"Consume{queue}", "Effect": "Allow", "Action": CONSUMER_ACTIONS, "Resource": arn(queue)}
        )
    if access.folds_pins_stream:
        pins = table_id(settings, PinItem)
        statements.append(
            {
                "Sid": f"{pins}Stream",
                "Effect": "Allow",
                "Action": list(STREAM_READS),
                "Resource": {"Fn::GetAtt": [pins, "StreamArn"]},
            }
        )
        statements.append(
            {"Sid": "FoldFailures", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": arn(FOLD_FAILURES)}
        )
    statements += _webhook_statements(settings, access)
    statements += _bucket_statements(settings, access)
    if access.completes_lifecycle:
        group = fleet_group_name(settings.stage)
        statements.append(
            {
                "Sid": "FleetLifecycle",
                "Effect": "Allow",
                "Action": ["autoscaling:CompleteLifecycleAction"],
                "Resource": {
                    "Fn::Sub": "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:"
                    f"autoScalingGroupName/{group}"
                },
            }
        )
    if access.signs_filecoin:
        statements.append(
            {
                "Sid": FILECOIN_SECRET,
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": {"Ref": FILECOIN_SECRET},
            }
        )
    if access.calls_kubo:
        statements.append(
            {
                "Sid": "KuboRpcSecret",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": {"Ref": SECRET},
            }
        )
        statements.append(
            {
                "Fn::If": [
                    WORKER_VPC,
                    {"Sid": "VpcNetworkInterfaces", "Effect": "Allow", "Action": VPC_ACTIONS, "Resource": "*"},
                    {"Ref": "AWS::NoValue"},
                ]
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _bucket_statements(settings: Settings, access: Access) -> list[Json]:
    """S3 actions on the archives (ARCHIVE_PREFIX*) and on the usage records (usage/*) of the cold tier's bucket."""
    grants = (
        ("ArchiveObjects", access.archive_objects, settings.archive_prefix),
        ("UsageObjects", access.usage_objects, EXPORT_PREFIX),
    )
    return [
        {
            "Sid": sid,
            "Effect": "Allow",
            "Action": sorted(actions),
            "Resource": {"Fn::Sub": f"${{{ARCHIVE_BUCKET}.Arn}}/{prefix}*"},
        }
        for sid, actions, prefix in grants
        if actions
    ]


def _webhook_statements(settings: Settings, access: Access) -> list[Json]:
    """The webhooks' part of a policy: the fanout reads the pins stream and
    sends deliveries (and the records it gives up on); the worker holds a
    failed delivery for its backoff."""
    statements: list[Json] = []
    if access.webhook_events:
        pins = table_id(settings, PinItem)
        statements.append(
            {
                "Sid": f"{pins}Stream",
                "Effect": "Allow",
                "Action": list(STREAM_READS),
                "Resource": {"Fn::GetAtt": [pins, "StreamArn"]},
            }
        )
        for sid, queue in (("SendWebhooks", WEBHOOK_QUEUE), ("WebhookEventFailures", WEBHOOK_EVENT_FAILURES)):
            statements.append({"Sid": sid, "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": arn(queue)})
    if access.delivers_webhooks:
        statements.append(
            {
                "Sid": "WebhookBackoff",
                "Effect": "Allow",
                "Action": ["sqs:ChangeMessageVisibility"],
                "Resource": arn(WEBHOOK_QUEUE),
            }
        )
    return statements


def _indexes_of(model: type[Model]) -> list[Json]:
    schema = model._get_schema()
    return sorted(schema["global_secondary_indexes"] + schema["local_secondary_indexes"], key=lambda i: i["index_name"])


def function_overrides(settings: Settings, name: str, access: Access, options: StageOptions) -> Json:
    role = ROLES.get(name, f"{name}Role")
    variables: Json = {}
    if access.sends_pins:
        variables["PIN_QUEUE_URL"] = {"Ref": PIN_QUEUE}
    if access.sends_archives:
        variables["ARCHIVE_QUEUE_URL"] = {"Ref": ARCHIVE_QUEUE}
    if access.usage_objects:
        variables["USAGE_BUCKET"] = {"Ref": ARCHIVE_BUCKET}
    if access.archive_objects or access.releases_archives:
        variables["ARCHIVE_BUCKET"] = {"Ref": ARCHIVE_BUCKET}
    if access.webhook_events or access.delivers_webhooks:
        variables["WEBHOOK_QUEUE_URL"] = {"Ref": WEBHOOK_QUEUE}
    if access.signs_filecoin:
        variables["FILECOIN_WALLET_SECRET_ARN"] = {"Ref": FILECOIN_SECRET}
    properties: Json = {}
    if access.calls_kubo:
        variables["KUBO_RPC_SECRET_ARN"] = {"Ref": SECRET}
        stage = settings.stage
        properties["VpcConfig"] = {
            "Fn::If": [
                WORKER_VPC,
                {
                    "SubnetIds": {"Fn::Split": [",", {"Fn::ImportValue": f"pinning-{stage}-WorkerSubnetIds"}]},
                    "SecurityGroupIds": [{"Fn::ImportValue": f"pinning-{stage}-WorkerSecurityGroupId"}],
                },
                {"Ref": "AWS::NoValue"},
            ]
        }
    if variables:
        properties["Environment"] = {"Variables": variables}
    for queue in access.consumes:
        concurrency = {PIN_QUEUE: options.worker_max_concurrency, WEBHOOK_QUEUE: WEBHOOK_MAX_CONCURRENCY}.get(queue, 2)
        properties["Events"] = {
            f"{name}SqsEventSource": {
                "Properties": {
                    # Replaces the Fn::Sub of Chalice's queue name (a deep
                    # merge would keep it next to a Fn::GetAtt).
                    "Queue": {"Fn::Sub": f"${{{queue}.Arn}}"},
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "ScalingConfig": {"MaximumConcurrency": concurrency},
                }
            }
        }
    overrides: Json = {
        role: {
            "Properties": {"Policies": [{"PolicyName": f"{role}Policy", "PolicyDocument": policy(settings, access)}]}
        },
        name: {"Properties": properties},
    }
    if access.folds_pins_stream:
        overrides[f"{name}StreamSource"] = fold_stream_source(settings, name)
    if access.webhook_events:
        overrides[f"{name}StreamSource"] = webhook_stream_source(settings, name)
    return overrides


def webhook_stream_source(settings: Settings, function: str) -> Json:
    """The pins table's stream feeding `function` the insertions that are
    pins' status changes (WEBHOOK_FILTER): the stream's second reader (the
    folds are the first; DynamoDB advises at most two per shard)."""
    # New endpoints want what happens from now on, not the stream's last day.
    return pins_stream_source(
        settings,
        function,
        WEBHOOK_FILTER,
        "LATEST",
        failures=WEBHOOK_EVENT_FAILURES,
        BatchSize=WEBHOOK_EVENTS_BATCH_SIZE,
        MaximumRetryAttempts=WEBHOOK_EVENTS_RETRIES,
    )


def webhook_queues(settings: Settings, worker_timeout: int) -> Json:
    """The webhooks queue: FIFO, a message group per endpoint and request
    (their order), deduplicated per group, each group its own throughput; a
    delivery kept until its last attempt (MAX_ATTEMPTS receives, the backoff
    between them a visibility timeout) and then dead-lettered."""
    name = f"{settings.table_prefix}-webhooks"
    fifo = {"FifoQueue": True, "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"}
    return {
        WEBHOOK_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": f"{name}.fifo",
                **fifo,
                "VisibilityTimeout": VISIBILITY_FACTOR * worker_timeout,
                "MessageRetentionPeriod": WEBHOOK_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": arn(WEBHOOK_DEAD_LETTER_QUEUE),
                    "maxReceiveCount": MAX_ATTEMPTS,
                },
            },
        },
        WEBHOOK_DEAD_LETTER_QUEUE: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": f"{name}-dlq.fifo",
                **fifo,
                "MessageRetentionPeriod": DEAD_LETTER_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True,
            },
        },
        WEBHOOK_EVENT_FAILURES: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": f"{settings.table_prefix}-webhook-event-failures",
                "MessageRetentionPeriod": DEAD_LETTER_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True,
            },
        },
    }


def fold_stream_source(settings: Settings, function: str) -> Json:
    """The pins table's stream feeding `function` the insertions of count
    changes alone (CHANGE_FILTER), from the oldest record the stream keeps."""
    return pins_stream_source(
        settings,
        function,
        CHANGE_FILTER,
        "TRIM_HORIZON",
        failures=FOLD_FAILURES,
        BatchSize=FOLD_BATCH_SIZE,
        MaximumBatchingWindowInSeconds=FOLD_BATCHING_WINDOW_S,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=FOLD_RETRIES,
    )


def pins_stream_source(
    settings: Settings, function: str, pattern: Mapping[str, Any], position: str, failures: str, **options: Any
) -> Json:
    """A mapping of the pins table's stream to `function`, filtered by
    `pattern`, its failed batches to the `failures` queue. One batch at a
    time per stream shard (ParallelizationFactor 1, the default): a pin
    shard's records reach one invocation, in order."""
    return {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": {"Ref": function},
            "EventSourceArn": {"Fn::GetAtt": [table_id(settings, PinItem), "StreamArn"]},
            "StartingPosition": position,
            "FilterCriteria": {"Filters": [{"Pattern": json.dumps(pattern, separators=(",", ":"))}]},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            **options,
            "DestinationConfig": {"OnFailure": {"Destination": arn(failures)}},
        },
    }


def alarm(description: str, metric: Json, threshold: Any, **extra: Any) -> Json:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            **metric,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": ALARM_TOPIC}],
            "OKActions": [{"Ref": ALARM_TOPIC}],
            **extra,
        },
    }


def _metric(namespace: str, name: str, dimensions: Json, statistic: str, period: int = 60) -> Json:
    return {
        "Namespace": namespace,
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": value} for key, value in dimensions.items()],
        "Statistic": statistic,
        "Period": period,
    }


def alarms(settings: Settings, api_name: str, api_stage: str) -> Json:
    def queue_metric(queue: str, name: str, statistic: str) -> Json:
        return _metric("AWS/SQS", name, {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}}, statistic)

    def api_metric(id_: str, name: str) -> Json:
        return {
            "Id": id_,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/ApiGateway",
                    "MetricName": name,
                    "Dimensions": [{"Name": "ApiName", "Value": api_name}, {"Name": "Stage", "Value": api_stage}],
                },
                "Period": 300,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }

    resources: Json = {
        "DeadLettersAlarm": alarm(
            "Pin messages failed every delivery: their requests were failed by the dead-letter function.",
            _metric("AWS/Lambda", "Invocations", {"FunctionName": {"Ref": "PinDeadLetters"}}, "Sum", 300),
            0,
        ),
        "DeadLetterBacklogAlarm": alarm(
            "Messages wait in the dead-letter queue: the dead-letter function cannot handle them.",
            queue_metric(DEAD_LETTER_QUEUE, "ApproximateNumberOfMessagesVisible", "Maximum"),
            0,
            EvaluationPeriods=5,
        ),
        "ArchiveDeadLetterBacklogAlarm": alarm(
            "Archive messages wait in their dead-letter queue: the archive dead-letter function cannot handle them.",
            queue_metric(ARCHIVE_DEAD_LETTER_QUEUE, "ApproximateNumberOfMessagesVisible", "Maximum"),
            0,
            EvaluationPeriods=5,
        ),
        "OldestPinMessageAlarm": alarm(
            "Pin messages wait too long: workers are failing, throttled or too few.",
            queue_metric(PIN_QUEUE, "ApproximateAgeOfOldestMessage", "Maximum"),
            {"Ref": "OldestMessageAgeSeconds"},
            EvaluationPeriods=3,
        ),
        "Api5xxAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": "The API answers 5xx to too many requests.",
                "Metrics": [
                    api_metric("errors", "5XXError"),
                    api_metric("requests", "Count"),
                    {
                        "Id": "rate",
                        "Label": "5xx share of requests",
                        "Expression": "IF(requests >= 20, errors / requests, 0)",
                        "ReturnData": True,
                    },
                ],
                "Threshold": {"Ref": "Api5xxRate"},
                "ComparisonOperator": "GreaterThanThreshold",
                "EvaluationPeriods": 1,
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": ALARM_TOPIC}],
                "OKActions": [{"Ref": ALARM_TOPIC}],
            },
        },
        "FoldFailuresAlarm": alarm(
            "The count folder gave up on pins stream records after every retry (its log says why): their changes "
            "stay unfolded, counted exactly but at a higher read cost, until their shard's next change is folded.",
            queue_metric(FOLD_FAILURES, "NumberOfMessagesSent", "Sum"),
            0,
        ),
        "WebhookDeadLettersAlarm": alarm(
            "Webhook deliveries failed every attempt for more than a day and were dead-lettered (their "
            "endpoints' delivery logs say why): their tenants missed these events.",
            queue_metric(WEBHOOK_DEAD_LETTER_QUEUE, "ApproximateNumberOfMessagesVisible", "Maximum"),
            0,
        ),
        "WebhookEventFailuresAlarm": alarm(
            "The webhook fanout gave up on pins stream records after every retry (its log says why): "
            "their events were not sent.",
            queue_metric(WEBHOOK_EVENT_FAILURES, "NumberOfMessagesSent", "Sum"),
            0,
        ),
        "WebhookLagAlarm": alarm(
            "Pins' status changes wait to become webhook deliveries: the fanout is failing or throttled.",
            _metric("AWS/Lambda", "IteratorAge", {"FunctionName": {"Ref": WEBHOOK_EVENTS}}, "Maximum"),
            FOLD_LAG_MS,
            EvaluationPeriods=FOLD_LAG_MINUTES,
        ),
        "FoldLagAlarm": alarm(
            "Count changes wait to be folded: the count folder is failing or throttled, and counts read more items.",
            _metric("AWS/Lambda", "IteratorAge", {"FunctionName": {"Ref": FOLD_FUNCTION}}, "Maximum"),
            FOLD_LAG_MS,
            EvaluationPeriods=FOLD_LAG_MINUTES,
        ),
        # The health check runs every minute: missing data means it stopped.
        "UnhealthyNodesAlarm": alarm(
            "Fleet nodes fail the health check (unreachable, wrong peer ID), or the check stopped reporting.",
            _metric(METRIC_NAMESPACE, "UnhealthyNodes", {"Stage": settings.stage}, "Maximum"),
            0,
            EvaluationPeriods=3,
            TreatMissingData="breaching",
        ),
        # Emitted by the archiver (chalicelib.cold.archiver.emit_archive_failed).
        "ArchiveFailedAlarm": alarm(
            "An archive failed every attempt (its request's info.cold_error and the worker's log say why): "
            "the CID has no cold copy.",
            _metric(METRIC_NAMESPACE, "ArchiveFailed", {"Stage": settings.stage}, "Sum", 300),
            0,
        ),
        # Emitted by the restorer (chalicelib.cold.restorer.Restorer._refused):
        # the copy then falls back to the network, where nothing may provide the CID.
        "RestoreFailedAlarm": alarm(
            "A restore from the cold archive was refused (a block that does not match its CID, another root, "
            "a DAG not whole, a CAR too large for a turn): the archive is corrupt or unusable (the worker's or "
            "the reconciler's log names its key).",
            _metric(METRIC_NAMESPACE, "RestoreFailed", {"Stage": settings.stage}, "Sum", 300),
            0,
        ),
        # Emitted by GET /ipfs/{cid} (chalicelib.api.retrieval) when no stored
        # copy verified: the client got a 502 and a copy is corrupt.
        "RetrievalIntegrityAlarm": alarm(
            "A retrieval found no stored copy of a pinned CID that verifies against its CID (a node's blocks "
            "or the archive are corrupt); the client got a 502 (the API's log names the CID).",
            _metric(METRIC_NAMESPACE, "RetrievalIntegrityFailure", {"Stage": settings.stage}, "Sum", 300),
            0,
        ),
        **filecoin_alarms(settings),
        # Any repair means the fleet and the holds disagreed: a node lost
        # pins, or a release lost track of one (app.reconcile_fleet).
        "ReconcilerRepairsAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": "The fleet reconciler found pins missing from their nodes, unpinned pins no "
                "request held, corrected holder counts, or let go of holds whose request was gone or failed (its "
                "log names each node and CID).",
                "Metrics": [
                    *(
                        {
                            "Id": metric_id,
                            "MetricStat": {
                                "Metric": {
                                    "Namespace": METRIC_NAMESPACE,
                                    "MetricName": name,
                                    "Dimensions": [{"Name": "Stage", "Value": settings.stage}],
                                },
                                "Period": 900,
                                "Stat": "Sum",
                            },
                            "ReturnData": False,
                        }
                        for metric_id, name in RECONCILER_REPAIRS.items()
                    ),
                    {"Id": "repairs", "Label": "reconciler repairs", "Expression": " + ".join(RECONCILER_REPAIRS)},
                ],
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "EvaluationPeriods": 1,
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": ALARM_TOPIC}],
                "OKActions": [{"Ref": ALARM_TOPIC}],
            },
        },
    }
    for name, _access in FUNCTIONS.items():
        if name != "APIHandler":
            resources[f"{name}ErrorsAlarm"] = alarm(
                f"{name} failed (an exception or timeout ended an invocation).",
                _metric("AWS/Lambda", "Errors", {"FunctionName": {"Ref": name}}, "Sum", 300),
                0,
            )
    return resources


# The Filecoin tracker's metrics (chalicelib.filecoin.tracker.emit_copy_metrics, a run a minute).
FILECOIN_ALARMS = {
    "FilecoinSpendCapReached": "Filecoin copies wait: this month's spend reached FILECOIN_SPEND_CAP "
    "(requests' info.filecoin says 'waiting: spend cap reached'); raise the cap or wait for the month.",
    "FilecoinFundsLow": "Filecoin copies wait: the wallet's available funds in Filecoin Pay do not cover a "
    "copy's term (info.filecoin: 'waiting: wallet funds exhausted'); deposit USDFC (docs/deploy.md).",
    "FilecoinCopiesFailed": "Filecoin copies failed or were terminated (a refusal, a reverted transaction, "
    "a data set ended): the tracker repairs them with other providers (its log names each).",
    "FilecoinCopiesLapsed": "Filecoin copies missed their proving deadline: repaired with another provider "
    "if still lapsed after FILECOIN_LAPSE_GRACE_SECONDS (the tracker's log names each provider).",
}


def filecoin_alarms(settings: Settings) -> Json:
    resources: Json = {
        f"{name}Alarm": alarm(description, _metric(METRIC_NAMESPACE, name, {"Stage": settings.stage}, "Sum", 300), 0)
        for name, description in FILECOIN_ALARMS.items()
    }
    # One unreachable visit is retried the next minute; a quarter hour of them is an outage.
    resources["FilecoinBackendUnavailableAlarm"] = alarm(
        "The chain RPC or the storage providers could not be reached by the Filecoin tracker for 15 minutes: "
        "copies are neither followed nor made (FILECOIN_RPC_URL, the functions' egress).",
        _metric(METRIC_NAMESPACE, "FilecoinBackendUnavailable", {"Stage": settings.stage}, "Sum", 300),
        0,
        EvaluationPeriods=3,
    )
    return resources


def stage_config(stage: str, config: Json) -> tuple[Settings, int, int, str]:
    """The stage's Settings (table prefix) and its functions' timeouts, from .chalice/config.json."""
    stages = config["stages"]
    if stage not in stages:
        raise SystemExit(f"stage {stage!r} is not in {CHALICE_CONFIG}")
    merged = {**config, **stages[stage]}
    settings = Settings.from_env({**merged.get("environment_variables", {}), "STAGE": stage})
    return (
        settings,
        function_timeout(stage, config, "pin_worker"),
        function_timeout(stage, config, "pin_dead_letters"),
        merged.get("api_gateway_stage", "api"),
    )


def function_timeout(stage: str, config: Json, function: str) -> int:
    """A function's Lambda timeout in the stage: its own, else the stage's, else Chalice's default (60 s)."""
    merged = {**config, **config["stages"][stage]}
    own = merged.get("lambda_functions", {}).get(function, {})
    return int(own.get("lambda_timeout") or merged.get("lambda_timeout") or 60)


def render(stage: str, config: Json) -> Json:
    if stage not in STAGE_OPTIONS:
        raise SystemExit(f"stage {stage!r} has no StageOptions in {__file__}")
    options = STAGE_OPTIONS[stage]
    settings, worker_timeout, dead_letters_timeout, api_stage = stage_config(stage, config)
    if settings.tenant_invocations >= options.worker_max_concurrency:
        # Else one tenant's backlog could hold every pin worker invocation.
        raise SystemExit(
            f"stage {stage!r}: TENANT_INVOCATIONS {settings.tenant_invocations} must be below the pin worker's "
            f"MaximumConcurrency {options.worker_max_concurrency}"
        )
    api_name = f"pinning-{stage}"
    resources: Json = {table_id(settings, model): table(settings, model, options) for model in MODELS}
    resources.update(queues(settings, worker_timeout, dead_letters_timeout))
    resources.update(
        archive_queues(
            settings,
            function_timeout(stage, config, "archive_worker"),
            function_timeout(stage, config, "archive_dead_letters"),
        )
    )
    resources[SECRET] = secret(settings, options)
    resources[FILECOIN_SECRET] = filecoin_secret(settings, options)
    resources[ARCHIVE_BUCKET] = archive_bucket(settings, options)
    resources[f"{ARCHIVE_BUCKET}Policy"] = archive_bucket_policy()
    resources[ALARM_TOPIC] = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"pinning-{stage}-alarms"}}
    resources["AlarmEmailSubscription"] = {
        "Type": "AWS::SNS::Subscription",
        "Condition": "HasAlarmEmail",
        "Properties": {"TopicArn": {"Ref": ALARM_TOPIC}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}},
    }
    resources.update(webhook_queues(settings, function_timeout(stage, config, "webhook_worker")))
    resources.update(alarms(settings, api_name, api_stage))
    for name, access in FUNCTIONS.items():
        resources.update(function_overrides(settings, name, access, options))
    # The API's name keys its CloudWatch metrics: one per stage, not the app's.
    resources["RestAPI"] = {
        "Properties": {
            "Name": api_name,
            "DefinitionBody": {"info": {"title": api_name}},
            "MethodSettings": [api_throttle(options)],
        }
    }
    resources.update(json.loads(GATEWAY_RESPONSES.read_text(encoding="utf-8"))["Resources"])
    nodes = table_id(settings, NodeRecord)
    return {
        "Description": f"Serverless IPFS pinning service, stage {stage}: API, workers, tables, queues, "
        "alarms (rendered by infra/render.py; see infra/README.md).",
        "Parameters": PARAMETERS,
        "Conditions": {
            "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
            WORKER_VPC: {"Fn::Equals": [{"Ref": "WorkerVpc"}, "true"]},
            DEEP_ARCHIVE: {"Fn::Not": [{"Fn::Equals": [{"Ref": "ArchiveDeepArchiveDays"}, "0"]}]},
        },
        "Resources": resources,
        "Outputs": {
            "KuboRpcSecretArn": _export(stage, {"Ref": SECRET}, "KuboRpcSecretArn"),
            "FilecoinWalletSecretArn": {"Value": {"Ref": FILECOIN_SECRET}},
            "NodesTableName": _export(stage, {"Ref": nodes}, "NodesTableName"),
            "NodesTableArn": _export(stage, arn(nodes), "NodesTableArn"),
            "PinQueueUrl": {"Value": {"Ref": PIN_QUEUE}},
            "ArchiveQueueUrl": {"Value": {"Ref": ARCHIVE_QUEUE}},
            "WebhookQueueUrl": {"Value": {"Ref": WEBHOOK_QUEUE}},
            "ArchiveBucketName": {"Value": {"Ref": ARCHIVE_BUCKET}},
            "AlarmTopicArn": {"Value": {"Ref": ALARM_TOPIC}},
        },
    }


def api_throttle(options: StageOptions) -> Json:
    """Every method of the API stage throttled together: the backstop."""
    return {
        "ResourcePath": "/*",
        "HttpMethod": "*",
        "ThrottlingRateLimit": options.api_rate_per_second,
        "ThrottlingBurstLimit": options.api_burst,
    }


def _export(stage: str, value: Any, name: str) -> Json:
    return {"Value": value, "Export": {"Name": f"pinning-{stage}-{name}"}}


# API Gateway's own answers in the API's failure shape (hand-written; merged as is).
GATEWAY_RESPONSES = Path(__file__).resolve().parent / "gateway_responses.json"


def output_path(stage: str) -> Path:
    return Path(__file__).resolve().parent / f"service-{stage}.json"


def rendered_text(stage: str) -> str:
    config = json.loads(CHALICE_CONFIG.read_text(encoding="utf-8"))
    return json.dumps(render(stage, config), indent=2) + "\n"


def main() -> None:
    for stage in STAGE_OPTIONS:
        output_path(stage).write_text(rendered_text(stage), encoding="utf-8")
        print(f"wrote {output_path(stage).relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
