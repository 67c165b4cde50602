"""Each function's role grants exactly what its code uses.

The service runs on emulated AWS whose tables, queues and secret are created
from the dev stage's merge template (so it also proves the template's tables
fit the code); every AWS call a handler makes is recorded as an IAM action on
a resource, and compared with that function's policy in the template.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import pytest
from eth_account import Account

from chalicelib.cold.archive_repository import ArchivedCar, ArchiveHolder, ArchiveLease
from chalicelib.cold.car import write_car
from chalicelib.config import Settings
from chalicelib.fleet.lifecycle import TERMINATING, fleet_group_name
from chalicelib.pins.request_ids import new_request_id
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import ArchiveRequested, RestoreRequested, UnpinRequested, decode, encode
from chalicelib.storage.archive_record import STATE, ArchiveRecord
from chalicelib.storage.archive_repository import DynamoArchiveRepository
from chalicelib.storage.change_stream import is_change
from chalicelib.storage.outbox_entry import OutboxEntry
from chalicelib.storage.slot_repository import DynamoSlotRepository
from chalicelib.webhooks.endpoints import PIN_EVENTS, new_secret
from chalicelib.webhooks.events import pin_event
from chalicelib.wiring import build_services
from chalicelib.worker.batch import QueuedMessage
from cli.webhook_receiver import Receiver, ReceiverServer
from devstack.fake_chain import FakeChain
from devstack.fake_pdp_provider import start_fake_network, stop_fake_network
from infra.render import FUNCTIONS, STREAM_READS
from tests.cold.dags import unixfs_file
from tests.cold.s3 import s3_client
from tests.storage.test_change_stream import stream_records
from tests.support.cids import cid_v1
from tests.support.fake_kubo import FakeKubo
from tests.worker.conftest import PEERS, sqs_event

TEMPLATE = json.loads((Path(__file__).resolve().parents[2] / "infra" / "service-dev.json").read_text())
RESOURCES = TEMPLATE["Resources"]
REGION, ACCOUNT = "us-east-1", "123456789012"  # moto's
Grant = tuple[str, str]  # (IAM action, resource ARN)
CAR, RAW = "application/vnd.ipld.car", "application/vnd.ipld.raw"
# The Filecoin wallet's key (funded only on the test's fake chain).
WALLET_KEY = "0x" + "4b" * 32
# The IAM action of each S3 call (a multipart upload's steps are PutObject's).
S3_ACTIONS = {
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "PutObject": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "GetObject": "GetObject",
    # An object's metadata is read with GetObject's permission.
    "HeadObject": "GetObject",
    "RestoreObject": "RestoreObject",
    "DeleteObject": "DeleteObject",
}
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


class Recorder:
    """The (action, resource) of every AWS call made while a function runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.function: str | None = None
        self.used: dict[str, set[Grant]] = defaultdict(set)
        self.s3 = s3_client()

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        """In a container of its own: nothing cached by another function; with
        ARCHIVE_QUEUE_URL only where the template sets it."""
        import app as app_module

        sends_archives = FUNCTIONS[function].sends_archives
        services = build_services(self.settings if sends_archives else replace(self.settings, archive_queue_url=None))
        services.__dict__["s3"] = self.s3  # see tests/cold/s3.py
        app_module.services.install(services)
        self.function = function
        try:
            yield
        finally:
            self.function = None
            app_module.services.install(None)

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if self.function is not None:
            self.used[self.function].update(grants_of(service, operation, params))


def table_arn(name: str, index: str | None = None) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}" + (f"/index/{index}" if index else "")


def grants_of(service: str, operation: str, params: dict[str, Any]) -> list[Grant]:
    if service == "dynamodb" and operation == "TransactWriteItems":
        return [
            (f"dynamodb:{TRANSACT_ACTIONS[kind]}", table_arn(item[kind]["TableName"]))
            for item in params["TransactItems"]
            for kind in item
        ]
    if service == "dynamodb" and operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", table_arn(name)) for name in params["RequestItems"]]
    if service == "dynamodb":
        return [(f"dynamodb:{operation}", table_arn(params["TableName"], params.get("IndexName")))]
    if service == "autoscaling":
        group = params["AutoScalingGroupName"]
        return [
            (
                f"autoscaling:{operation}",
                f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:uuid:autoScalingGroupName/{group}",
            )
        ]
    if service == "sqs":
        # A batch is authorized by its single action's permission.
        action = operation.removesuffix("Batch")
        return [(f"sqs:{action}", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{params['QueueUrl'].rsplit('/', 1)[-1]}")]
    if service == "s3":
        resource = f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"
        # Tags given with the object are PutObjectTagging's too.
        tagging = [("s3:PutObjectTagging", resource)] if params.get("Tagging") else []
        return [(f"s3:{S3_ACTIONS[operation]}", resource), *tagging]
    return [(f"{service}:{operation}", params["SecretId"])]


def resolve(value: Any, names: dict[str, str]) -> Any:
    """The template's intrinsic functions, as far as role policies use them."""
    if isinstance(value, list):
        return [resolve(item, names) for item in value]
    if not isinstance(value, dict):
        return value
    if "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return names[resource if attribute == "Arn" else f"{resource}.{attribute}"]
    if "Ref" in value:
        return names[value["Ref"]]
    if "Fn::Sub" in value:
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1).removesuffix(".Arn")], value["Fn::Sub"])
    if "Fn::If" in value:  # conditions: the worker VPC is on
        return resolve(value["Fn::If"][1], names)
    return {key: resolve(item, names) for key, item in value.items()}


def policy_of(function: str, names: dict[str, str]) -> list[dict[str, Any]]:
    role = "ApiHandlerRole" if function == "APIHandler" else f"{function}Role"
    (policy,) = RESOURCES[role]["Properties"]["Policies"]
    statements = resolve(policy["PolicyDocument"]["Statement"], names)
    return [s for s in statements if s != "AWS::NoValue"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allows(statements: list[dict[str, Any]], grant: Grant) -> bool:
    action, resource = grant
    return any(
        action in as_list(s["Action"]) and any(fnmatch.fnmatchcase(resource, r) for r in as_list(s["Resource"]))
        for s in statements
    )


def granted_on_data(statements: list[dict[str, Any]]) -> set[Grant]:
    return {
        (action, resource)
        for s in statements
        for action in as_list(s["Action"])
        if action.split(":")[0] in ("dynamodb", "sqs", "secretsmanager", "s3")
        for resource in as_list(s["Resource"])
    }


def event_source_grants(function: str, names: dict[str, str]) -> set[Grant]:
    """What Lambda's pollers do as the function: read its queue, or read its
    stream and name the records given up on in the mapping's destination."""
    events = RESOURCES[function]["Properties"].get("Events", {})
    grants = {
        (action, resolve(event["Properties"]["Queue"], names))
        for event in events.values()
        for action in EVENT_SOURCE_READS
    }
    for mapping in of_type("AWS::Lambda::EventSourceMapping").values():
        if mapping["FunctionName"] == {"Ref": function}:
            grants |= {(action, resolve(mapping["EventSourceArn"], names)) for action in STREAM_READS}
            grants.add(("sqs:SendMessage", resolve(mapping["DestinationConfig"]["OnFailure"]["Destination"], names)))
    return grants


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in RESOURCES.items() if r.get("Type") == kind}


@pytest.fixture
def stack(aws, monkeypatch) -> Iterator[tuple[Settings, dict[str, str], Recorder, dict[str, FakeKubo]]]:
    """The template's tables, queues and secret on moto; three fake Kubo nodes."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    names: dict[str, str] = {
        f"AWS::{k}": v
        for k, v in (
            ("Region", REGION),
            ("AccountId", ACCOUNT),
            ("Partition", "aws"),
            ("StackName", "pinning-dev-service"),
        )
    }
    for logical, table in of_type("AWS::DynamoDB::Table").items():
        wanted = (
            "TableName",
            "AttributeDefinitions",
            "KeySchema",
            "BillingMode",
            "LocalSecondaryIndexes",
            "GlobalSecondaryIndexes",
        )
        arguments = {key: table[key] for key in wanted if key in table}
        if "StreamSpecification" in table:  # CloudFormation's spelling lacks the API's StreamEnabled
            arguments["StreamSpecification"] = {"StreamEnabled": True, **table["StreamSpecification"]}
        created = dynamodb.create_table(**arguments)["TableDescription"]
        names[logical] = table_arn(table["TableName"])
        if "LatestStreamArn" in created:
            names[f"{logical}.StreamArn"] = created["LatestStreamArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    urls = {}
    for logical, queue in of_type("AWS::SQS::Queue").items():
        fifo = {"FifoQueue": "true"} if queue.get("FifoQueue") else {}
        urls[logical] = sqs.create_queue(QueueName=queue["QueueName"], Attributes=fifo)["QueueUrl"]
        names[logical] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue['QueueName']}"
    ((bucket_id, bucket),) = of_type("AWS::S3::Bucket").items()
    bucket_name = resolve(bucket["BucketName"], names)
    s3_client().create_bucket(Bucket=bucket_name)
    names[bucket_id] = f"arn:aws:s3:::{bucket_name}"
    values = {"KuboRpcSecret": "rpc-token", "FilecoinWalletSecret": WALLET_KEY}
    for logical, secret in of_type("AWS::SecretsManager::Secret").items():
        names[logical] = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=secret["Name"], SecretString=values[logical]
        )["ARN"]
    # Filecoin copies on a fake PDP network (its epochs advanced by the test), the wallet funded there.
    chain, providers = start_fake_network([("sp-a", "DE"), ("sp-b", "US"), ("sp-c", "SG")])
    chain.fund(Account.from_key(WALLET_KEY).address, 10**21)
    settings = replace(
        Settings.from_env({"STAGE": "dev"}),
        region=REGION,
        queue_url=urls["PinQueue"],
        archive_queue_url=urls["ArchiveQueue"],
        kubo_rpc_secret_arn=names["KuboRpcSecret"],
        archive_bucket=bucket_name,
        continue_delay_seconds=0,
        stall_seconds=1,
        # The pins made here are enough for the planner to raise a plan.
        shard_pins_per_second=0.001,
        webhook_queue_url=urls["WebhookQueue"],
        allow_loopback_webhooks=True,  # the receiver is on this machine
        filecoin_backend="pdp",
        filecoin_network="calibration",
        filecoin_rpc_url=chain.url,
        filecoin_wallet_secret_arn=names["FilecoinWalletSecret"],
        filecoin_spend_cap=10**21,
        # Copies followed at every run (the chain's epochs are the test's).
        filecoin_adding_check_seconds=0,
        filecoin_check_seconds=0,
    )
    recorder = Recorder(settings)
    original = botocore.client.BaseClient._make_api_call

    def recording(client: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        recorder.record(service, operation, params)
        # moto has no Auto Scaling lifecycle actions: the call is answered here.
        return {} if service == "autoscaling" else original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    kubos = {f"node-{i}": FakeKubo(peer_id=PEERS[i]).start() for i in range(3)}
    yield settings, names, recorder, kubos, chain
    for kubo in kubos.values():
        kubo.stop()
    stop_fake_network(chain, providers)


# Reads of a function's own event source queue, which Lambda's poller makes for it.
EVENT_SOURCE_READS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def take(queue_url: str | None) -> list[QueuedMessage]:
    """What SQS holds in the queue now (deleted from it), as the worker's batch sees it."""
    assert queue_url is not None  # the stack's settings name every queue
    sqs = boto3.client("sqs", region_name=REGION)
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    for message in got:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [QueuedMessage(m["MessageId"], m["Body"]) for m in got]


def a_user_pins_lists_every_way_replaces(api: Any, recorder: Recorder, pinned: str, failing: str) -> tuple[str, str]:
    """Returns the ids of the replacing request and of the request whose pin fails."""
    with recorder.running("APIHandler"):
        first = api.pin(pinned, name="Report", meta={"app": "x"})["requestid"]
        doomed = api.pin(failing)["requestid"]
        for query in (
            {},
            {"status": "queued"},
            {"cid": pinned},
            {"name": "Report"},
            {"name": "report", "match": "iexact"},
            {"name": "epo", "match": "partial"},
            {"meta": json.dumps({"app": "x"})},
            {
                "status": "queued,pinning,pinned,failed",
                "before": "2999-01-01T00:00:00Z",
                "after": "2000-01-01T00:00:00Z",
            },
        ):
            api.list(**query)
        api.request("GET", f"/pins/{first}")
        replaced = api.request("POST", f"/pins/{first}", json_body={"cid": pinned, "name": "v2"}).json["requestid"]
    return replaced, doomed


def workers_pin_and_a_failing_message_dead_letters(
    client: Any, recorder: Recorder, queue_url: str, doomed: str
) -> None:
    for _ in range(6):
        batch = take(queue_url)
        doomed_messages = [m for m in batch if decode(m.body).request_id == doomed]
        with recorder.running("PinWorker"):
            client.lambda_.invoke("pin_worker", sqs_event([m for m in batch if m not in doomed_messages]))
        if doomed_messages:
            with recorder.running("PinWorker"):  # it pins where it can, holding the CID there
                client.lambda_.invoke("pin_worker", sqs_event(doomed_messages))
            # when a message failed every delivery
            with recorder.running("PinDeadLetters"):
                client.lambda_.invoke("pin_dead_letters", sqs_event(doomed_messages, "pinning-dev-pins-dlq"))


def workers_run(client: Any, recorder: Recorder, queue_url: str, rounds: int) -> None:
    for _ in range(rounds):
        with recorder.running("PinWorker"):
            client.lambda_.invoke("pin_worker", sqs_event(take(queue_url)))


def a_tenant_holding_its_slot_elsewhere_is_deferred(client: Any, recorder: Recorder, cid: str) -> None:
    """Every invocation slot of a tenant's (the dev stage's one) held by
    another invocation: a batch's take of it fails, reads the tenant's slots
    and defers the tenant's message (sent again), giving back nothing."""
    slots, now = DynamoSlotRepository(), now_ms()
    assert recorder.settings.tenant_invocations == 1
    assert slots.take("dave", 0, now + 60_000, now)
    message = QueuedMessage("dave-1", encode(UnpinRequested("dave", new_request_id(1), cid, ())))
    with recorder.running("PinWorker"):
        assert client.lambda_.invoke("pin_worker", sqs_event([message])).payload == {"batchItemFailures": []}
    assert slots.leases("dave") == {0: now + 60_000}
    slots.give_back("dave", 0, now + 60_000)


def an_archive_is_made(
    client: Any, recorder: Recorder, kubos: dict[str, FakeKubo], tenant_id: str, request_id: str, cid: str
) -> None:
    """The request's archive message, on the archive queue: first while
    another worker holds the archive's lease (sent again for later), then,
    that worker's attempt failed, the first node's export fails (its upload
    aborted) and the next node's is archived. The turn has all of the test
    context's 3 s (no margin)."""
    settings = recorder.settings
    services = build_services(settings)
    archives = DynamoArchiveRepository(services.dynamo)
    created_ms = services.pins.get(tenant_id, request_id).created_ms
    kubos["node-0"].fail("dag/export", "ipld: could not find node", cid=cid)
    body = encode(ArchiveRequested(tenant_id, request_id, created_ms, cid, ("node-0", "node-1")))
    archives.hold(ArchiveHolder(cid, tenant_id, request_id))
    archives.take_lease(cid, ArchiveLease("elsewhere", now_ms() + 60_000), now_ms())
    recorder.settings = replace(settings, invocation_margin_seconds=0)
    with recorder.running("ArchiveWorker"):
        client.lambda_.invoke("archive_worker", sqs_event([QueuedMessage("archive-1", body)], "pinning-dev-archives"))
    # (beside the archive messages of the requests the pin workers pinned)
    assert decode(body) in [decode(m.body) for m in take(settings.archive_queue_url)]
    archives.record_failure(cid, "elsewhere", "cut off", failed=False)
    with recorder.running("ArchiveWorker"):
        result = client.lambda_.invoke(
            "archive_worker", sqs_event([QueuedMessage("archive-1", body)], "pinning-dev-archives")
        ).payload
    assert result == {"batchItemFailures": []}
    assert archives.state(cid).state == "archived"
    # and a message of a request deleted before its hold was taken lets the hold go
    gone = encode(ArchiveRequested(tenant_id, new_request_id(1), 1, cid, ("node-1",)))
    with recorder.running("ArchiveWorker"):
        client.lambda_.invoke("archive_worker", sqs_event([QueuedMessage("archive-2", gone)], "pinning-dev-archives"))
    recorder.settings = settings


def an_archive_fails_and_dead_letters(
    client: Any, recorder: Recorder, api: Any, kubos: dict[str, FakeKubo], cid: str
) -> None:
    """A request of `cid` pinned (its turn has the test context's 3 s); the
    export of its archive fails on every node, and the message, having
    failed every delivery, dead-letters."""
    settings = recorder.settings
    with recorder.running("APIHandler"):
        api.pin(cid)
    recorder.settings = replace(settings, invocation_margin_seconds=0)
    with recorder.running("PinWorker"):
        mine = [m for m in take(settings.queue_url) if getattr(decode(m.body), "cid", None) == cid]
        client.lambda_.invoke("pin_worker", sqs_event(mine))
    # (beside the restore the drain handed off: its turn had no time left for the CAR)
    (message,) = [m for m in take(settings.archive_queue_url) if decode(m.body).kind == "archive"]
    for kubo in kubos.values():
        kubo.fail("dag/export", "ipld: could not find node", cid=cid)
    with recorder.running("ArchiveWorker"):
        failed = client.lambda_.invoke("archive_worker", sqs_event([message], "pinning-dev-archives")).payload
    recorder.settings = settings
    assert failed == {"batchItemFailures": [{"itemIdentifier": message.message_id}]}
    with recorder.running("ArchiveDeadLetters"):
        client.lambda_.invoke("archive_dead_letters", sqs_event([message], "pinning-dev-archives-dlq"))
    assert DynamoArchiveRepository(build_services(settings).dynamo).state(cid).state == "failed"


def pinned_and_archived(
    client: Any, recorder: Recorder, api: Any, kubos: dict[str, FakeKubo], data: bytes
) -> tuple[str, str]:
    """`data` held by every node, pinned by a request through the API, the pin
    worker and the archive function (their turns have no margin): its CID and
    the request's id. `recorder.settings` is left with no margin."""
    settings = recorder.settings
    root, blocks = unixfs_file(data)
    cid = str(root)
    for kubo in kubos.values():
        kubo.add_car(cid, b"".join(write_car([root], blocks)))
    with recorder.running("APIHandler"):
        request_id = api.pin(cid)["requestid"]
    recorder.settings = replace(settings, invocation_margin_seconds=0)
    with recorder.running("PinWorker"):
        client.lambda_.invoke("pin_worker", sqs_event([m for m in take(settings.queue_url) if cid in m.body]))
    (archive,) = [m for m in take(settings.archive_queue_url) if cid in m.body]
    with recorder.running("ArchiveWorker"):
        client.lambda_.invoke("archive_worker", sqs_event([archive], "pinning-dev-archives"))
    return cid, str(request_id)


def a_cold_only_tenant_cools_retrieves_and_pins_again(
    client: Any, recorder: Recorder, kubos: dict[str, FakeKubo]
) -> None:
    """A cold-only tenant's request pinned and archived (its turns have the
    test context's 3 s); made due, as days passing would; cooled by the
    schedule (its pin removed from the nodes); retrieved (from the archive:
    a restore is sent) and pinned again by a new request."""
    from tests.support.api import ApiClient

    settings = recorder.settings
    services = build_services(settings)
    tenant = services.admin.create_tenant("carol")
    services.admin.set_tier(tenant.tenant_id, "cold-only", 1)
    api = ApiClient(client, services.admin.issue_token(tenant.tenant_id, "laptop").secret)
    cid, request_id = pinned_and_archived(client, recorder, api, kubos, b"iam-cold" * 1000)
    archives = DynamoArchiveRepository(services.dynamo)
    holder = ArchiveHolder(cid, tenant.tenant_id, request_id)
    assert archives.set_cooling(holder, archives.hold_of(holder).cools_at_ms, 1)
    ArchiveRecord(cid, STATE).update(actions=[ArchiveRecord.archived_ms.set(1)])
    with recorder.running("CoolPins"):
        report = client.lambda_.invoke("cool_pins", client.events.generate_cw_event("aws.events", "", {}, []))
    assert report.payload["cooled"] == 1
    with recorder.running("APIHandler"):
        assert api.request("GET", f"/ipfs/{cid}", headers={"Accept": "application/vnd.ipld.car"}).status == 200
        api.pin(cid)
    with recorder.running("PinWorker"):
        mine = [m for m in take(settings.queue_url) if cid in m.body]
        assert sorted(decode(m.body).kind for m in mine) == ["pin", "restore"]
        client.lambda_.invoke("pin_worker", sqs_event(mine))
    # (the restore messages, the retrieval's forwarded and the new request's, are the archive function's: the long turns)
    restores = [m for m in take(settings.archive_queue_url) if cid in m.body and decode(m.body).kind == "restore"]
    assert restores
    for restore in restores:
        with recorder.running("ArchiveWorker"):
            client.lambda_.invoke("archive_worker", sqs_event([restore], "pinning-dev-archives"))
    recorder.settings = settings


def an_archived_pin_is_retrieved_every_way(
    client: Any, recorder: Recorder, api: Any, kubos: dict[str, FakeKubo]
) -> tuple[str, str, ArchivedCar]:
    """A request pinned and archived (its turns have the test context's 3 s),
    retrieved hot; then, lost by every node, from its archive: its root block
    by a ranged read, and its CAR, over RETRIEVAL_MAX_BYTES, by a redirect.
    Returns the CID, the request's id and its archive."""
    settings = recorder.settings
    cid, request_id = pinned_and_archived(client, recorder, api, kubos, b"iam-restored" * 1000)
    state = DynamoArchiveRepository(build_services(settings).dynamo).state(cid)
    assert state is not None and state.car is not None
    with recorder.running("APIHandler"):
        assert retrieved(api, cid, CAR).headers["X-Served-From"] == "hot"
    for kubo in kubos.values():
        kubo.lose(cid)
    with recorder.running("APIHandler"):
        assert retrieved(api, cid, RAW).headers["X-Served-From"] == "archive"
    recorder.settings = replace(settings, retrieval_max_bytes=state.car.car_bytes - 1)
    with recorder.running("APIHandler"):
        assert retrieved(api, cid, CAR).status == 307
    recorder.settings = settings
    return cid, request_id, state.car


def retrieved(api: Any, cid: str, accept: str) -> Any:
    return api.request("GET", f"/ipfs/{cid}", headers={"Accept": accept})


def it_is_restored_then_thawed_for_each_reader(
    client: Any,
    recorder: Recorder,
    api: Any,
    kubos: dict[str, FakeKubo],
    tenant_id: str,
    archived: tuple[str, str, ArchivedCar],
) -> None:
    """The reconciler restores the lost CID from its archive. Lost again, its
    CAR in Deep Archive: a retrieval, the reconciler, a restore message
    (the archive function's, as a pin worker's is forwarded there) and a new
    request's pin message each ask
    S3 for a thaw (moto thaws at once: the CAR is moved back before each)."""
    settings = recorder.settings
    cid, request_id, car = archived
    scheduled = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    recorder.settings = replace(settings, invocation_margin_seconds=0, reconcile_grace_seconds=0)
    with recorder.running("ReconcileFleet"):
        client.lambda_.invoke("reconcile_fleet", scheduled)
    pins = build_services(settings).pins
    pin = pins.get(tenant_id, request_id)
    assert pin.info["status_details"].startswith("restored from the cold archive to ")
    # Lost again, a restore too long for the reconciler's run goes to the archive function's long turns
    for kubo in kubos.values():
        kubo.lose(cid)
    # (10 minutes of import: within the archive function's 15, beyond the reconciler's run)
    recorder.settings = replace(recorder.settings, restore_bytes_per_second=max(1, car.car_bytes // 600))
    with recorder.running("ReconcileFleet"):
        client.lambda_.invoke("reconcile_fleet", scheduled)
    (handed,) = [m for m in take(settings.archive_queue_url) if json.loads(m.body)["kind"] == "restore"]
    recorder.settings = replace(settings, invocation_margin_seconds=0, reconcile_grace_seconds=0)
    with recorder.running("ArchiveWorker"):
        client.lambda_.invoke("archive_worker", sqs_event([handed], "pinning-dev-archives"))
    assert pins.get(tenant_id, request_id).info["status_details"].startswith("restored from the cold archive to ")
    s3 = s3_client()
    key = {"Bucket": settings.archive_bucket, "Key": car.car_key}

    def thaw_asked() -> bool:
        """Whether S3 was asked for a readable copy of the CAR (moto makes it at once)."""
        return "ongoing-request" in s3.head_object(**key).get("Restore", "")

    def frozen() -> None:
        """The CAR in Deep Archive, as the lifecycle rule moves it, and lost by every node."""
        s3.copy_object(**key, CopySource=key, StorageClass="DEEP_ARCHIVE")
        assert not thaw_asked()
        for kubo in kubos.values():
            kubo.lose(cid)

    def details() -> str:
        return str(pins.get(tenant_id, request_id).info["status_details"])

    # Each reader of the CAR in Deep Archive asks S3 for a readable copy, and waits for it
    frozen()
    with recorder.running("APIHandler"):
        assert retrieved(api, cid, CAR).reason == "ARCHIVE_THAWING"
    assert thaw_asked()
    frozen()
    with recorder.running("ReconcileFleet"):
        client.lambda_.invoke("reconcile_fleet", scheduled)
    # (its request's note is not asserted: the two nodes' runs race, and moto's
    # thaw at once may let the later one restore)
    assert thaw_asked()
    frozen()
    restore = [QueuedMessage("restore-1", encode(RestoreRequested(tenant_id, request_id, pin.created_ms, cid, "x")))]
    with recorder.running("PinWorker"):
        client.lambda_.invoke("pin_worker", sqs_event(restore))
    (forwarded,) = take(settings.archive_queue_url)
    assert not thaw_asked() and forwarded.body == restore[0].body  # forwarded, untouched
    with recorder.running("ArchiveWorker"):
        client.lambda_.invoke("archive_worker", sqs_event([forwarded], "pinning-dev-archives"))
    assert thaw_asked() and details().startswith("waiting for the cold archive to thaw (DEEP_ARCHIVE")
    # and a new request's pin message (its CAR fits the pin worker's turn)
    frozen()
    with recorder.running("APIHandler"):
        api.pin(cid)
    with recorder.running("PinWorker"):
        client.lambda_.invoke("pin_worker", sqs_event([m for m in take(settings.queue_url) if cid in m.body]))
    assert thaw_asked()
    recorder.settings = settings


def the_schedules_run(client: Any, recorder: Recorder, kubos: dict[str, FakeKubo], pinned: str) -> None:
    """A health check, a sweep that finds a message left behind, a
    reconciler that finds a pin lost, one leaked and a hold whose request is
    gone: a second run, with no wait, unpins the leak and lets the hold go;
    and an archive sweep that finds an archive orphaned past the grace."""
    scheduled = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    with recorder.running("CheckFleetHealth"):
        client.lambda_.invoke("check_fleet_health", scheduled)
    OutboxEntry(shard="shard#0", entry_id="0000000000001#left", body="{}", created_ms=1).save()
    with recorder.running("SweepOutbox"):
        client.lambda_.invoke("sweep_outbox", scheduled)
    for kubo in kubos.values():
        kubo.pinned.discard(pinned)
        kubo.pinned.add(cid_v1("iam-leaked"))
    orphan = cid_v1("iam-orphan")
    kubos["node-0"].pinned.add(orphan)
    gone = new_request_id(1)
    assert build_services(recorder.settings).holds.hold("node-0", orphan, "alice", gone)
    archives = DynamoArchiveRepository(build_services(recorder.settings).dynamo)
    archives.hold(ArchiveHolder(orphan, "alice", gone))  # let go with the orphaned hold
    settings = recorder.settings
    recorder.settings = replace(settings, reconcile_grace_seconds=0, pin_deadline_seconds=0)
    for _ in range(2):
        with recorder.running("ReconcileFleet"):
            assert client.lambda_.invoke("reconcile_fleet", scheduled).payload["skipped"] == 0
    recorder.settings = settings
    assert orphan not in kubos["node-0"].pinned
    assert archives.state(orphan).holders == 0
    forgotten = ArchiveHolder(cid_v1("iam-archive-orphan"), "alice", new_request_id(1))
    archives.hold(forgotten)
    archives.leave(forgotten, 1, now_ms=1)
    with recorder.running("SweepArchives"):
        assert client.lambda_.invoke("sweep_archives", scheduled).payload == 1
    # and the 1st's export of the month's usage records, to the bucket the template names
    recorder.settings = replace(settings, usage_bucket=settings.archive_bucket)
    with recorder.running("ExportUsage"):
        assert client.lambda_.invoke("export_usage", scheduled).payload.startswith("usage/")
    recorder.settings = settings


def the_fleet_terminates_a_node(client: Any, recorder: Recorder) -> None:
    termination = {
        "AutoScalingGroupName": fleet_group_name("dev"),
        "EC2InstanceId": "node-2",
        "LifecycleHookName": "pinning-dev-node-terminating",
        "LifecycleActionToken": "c613620e-07e2-4ed2-a9e2-ef8258911ade",
    }
    with recorder.running("NodeTerminating"):
        client.lambda_.invoke(
            "node_terminating", client.events.generate_cw_event("aws.autoscaling", TERMINATING, termination, [])
        )


def the_pins_stream_feeds_the_folder(client: Any, recorder: Recorder, names: dict[str, str]) -> None:
    """Every record of the pins table's stream so far, filtered as the event source mapping does."""
    stream = names["PinsTable.StreamArn"]
    records = stream_records(RESOURCES["PinsTable"]["Properties"]["TableName"])
    changes = [{**record, "eventSourceARN": stream} for record in records if is_change(record)]
    assert changes
    with recorder.running("FoldCounts"):
        assert client.lambda_.invoke("fold_counts", {"Records": changes}).payload == {"batchItemFailures": []}


def a_user_registers_webhooks(api: Any, recorder: Recorder) -> ReceiverServer:
    """An endpoint for every pin event (its receiver answers 500 once), and
    one registered, listed, read and removed; returns the receiver."""
    answers = [500]
    server = ReceiverServer(Receiver(new_secret())).start()
    with recorder.running("APIHandler"):
        kept = api.request("POST", "/webhooks", json_body={"url": server.url, "events": list(PIN_EVENTS)}).json
        gone = api.request("POST", "/webhooks", json_body={"url": server.url, "events": ["pin.failed"]}).json
        assert len(api.request("GET", "/webhooks").json["results"]) == 2
        api.request("GET", f"/webhooks/{gone['id']}")
        assert api.request("DELETE", f"/webhooks/{gone['id']}").status == 204
    server.receiver = Receiver(kept["secret"], lambda event: answers.pop() if answers else 200)
    return server


def the_pins_stream_feeds_webhooks(
    client: Any, recorder: Recorder, api: Any, names: dict[str, str], receiver: ReceiverServer
) -> None:
    """Every record of the pins stream so far, as the webhook mapping filters
    them; the deliveries made (the first held for its backoff, then made)."""
    stream = names["PinsTable.StreamArn"]
    records = stream_records(RESOURCES["PinsTable"]["Properties"]["TableName"])
    events = [{**record, "eventSourceARN": stream} for record in records if pin_event(record, 0) is not None]
    with recorder.running("WebhookEvents"):
        assert client.lambda_.invoke("webhook_events", {"Records": events}).payload == {"batchItemFailures": []}
    sqs = boto3.client("sqs", region_name=REGION)
    for _ in range(2):  # the first delivery fails, held for its backoff (cut short here, unrecorded)
        (message,) = sqs.receive_message(
            QueueUrl=recorder.settings.webhook_queue_url, MaxNumberOfMessages=1, AttributeNames=["All"]
        )["Messages"]
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message["Attributes"],
            "eventSource": "aws:sqs",
            "eventSourceARN": names["WebhookQueue"],
        }
        with recorder.running("WebhookWorker"):
            failed = client.lambda_.invoke("webhook_worker", {"Records": [record]}).payload["batchItemFailures"]
        handle = {"QueueUrl": recorder.settings.webhook_queue_url, "ReceiptHandle": message["ReceiptHandle"]}
        if failed:
            sqs.change_message_visibility(**handle, VisibilityTimeout=0)
        else:
            sqs.delete_message(**handle)
    assert receiver.receiver.events
    (endpoint,) = api.request("GET", "/webhooks").json["results"]
    with recorder.running("APIHandler"):
        assert len(api.request("GET", f"/webhooks/{endpoint['id']}/deliveries").json["results"]) == 2
    receiver.stop()


def filecoin_copies_are_made_proven_shown_and_ended(
    client: Any, recorder: Recorder, api: Any, kubos: dict[str, FakeKubo], chain: FakeChain
) -> None:
    """A request wanting 2 copies, pinned and archived: the tracker begins
    them, the archive function makes them (the wallet's key read, the
    authorisations signed), the chain proves them, the tracker follows them
    and shows them in the request's info, the API reads their receipts; a
    copy message that failed every delivery is given up; the request deleted,
    the archive sweep ends its copies as it deletes the archive, and the
    tracker finds none wanted."""
    settings = recorder.settings
    scheduled = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    root, blocks = unixfs_file(b"iam-filecoin" * 500)
    cid = str(root)
    for kubo in kubos.values():
        kubo.add_car(cid, b"".join(write_car([root], blocks)))
    with recorder.running("APIHandler"):
        request_id = api.pin(cid, meta={"filecoin.copies": "2"})["requestid"]
    recorder.settings = replace(settings, invocation_margin_seconds=0)
    with recorder.running("PinWorker"):
        client.lambda_.invoke("pin_worker", sqs_event([m for m in take(settings.queue_url) if cid in m.body]))
    (archive,) = [m for m in take(settings.archive_queue_url) if cid in m.body]
    with recorder.running("ArchiveWorker"):
        client.lambda_.invoke("archive_worker", sqs_event([archive], "pinning-dev-archives"))
    with recorder.running("TrackFilecoinCopies"):
        assert client.lambda_.invoke("track_filecoin_copies", scheduled).payload["made"] == 2
    copies = [m for m in take(settings.archive_queue_url) if decode(m.body).kind == "filecoin_copy"]
    assert len(copies) == 2
    for message in copies:
        with recorder.running("ArchiveWorker"):
            done = client.lambda_.invoke("archive_worker", sqs_event([message], "pinning-dev-archives")).payload
        assert done == {"batchItemFailures": []}
    filecoin_copies_prove_are_read_given_up_and_ended(client, recorder, api, chain, cid, request_id, copies[0])
    recorder.settings = settings


def filecoin_copies_prove_are_read_given_up_and_ended(
    client: Any, recorder: Recorder, api: Any, chain: FakeChain, cid: str, request_id: str, copy: QueuedMessage
) -> None:
    settings = recorder.settings  # the caller's: turns with no margin
    scheduled = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    chain.advance(20)  # the additions mined, and proven at their first challenge
    with recorder.running("TrackFilecoinCopies"):
        client.lambda_.invoke("track_filecoin_copies", scheduled)
    with recorder.running("APIHandler"):
        assert api.request("GET", f"/pins/{request_id}/receipts").json["copies_proving"] == 2
        assert api.request("GET", f"/pins/{request_id}").json["info"]["filecoin_copies"] == "2/2"
    with recorder.running("ArchiveDeadLetters"):
        client.lambda_.invoke("archive_dead_letters", sqs_event([copy], "pinning-dev-archives-dlq"))
    with recorder.running("APIHandler"):
        api.request("DELETE", f"/pins/{request_id}")
    workers_run(client, recorder, settings.queue_url, rounds=2)
    recorder.settings = replace(settings, archive_grace_seconds=0)
    with recorder.running("SweepArchives"):
        assert client.lambda_.invoke("sweep_archives", scheduled).payload >= 1
    with recorder.running("TrackFilecoinCopies"):
        client.lambda_.invoke("track_filecoin_copies", scheduled)
    recorder.settings = settings
    states = {record.receipt.state.value for record in build_services(settings).filecoin_copies.copies(cid)}
    assert states == {"ended"}, states


def unused_grants(
    function: str, used: set[Grant], statements: list[dict[str, Any]], names: dict[str, str]
) -> set[Grant]:
    """What `function` may do on data that its code never did (its event source's part aside);
    a grant on objects by a pattern (the archives') is used by a call on any of them."""
    unused = {
        (action, pattern)
        for action, pattern in granted_on_data(statements)
        if not any(done == action and fnmatch.fnmatchcase(resource, pattern) for done, resource in used)
    }
    return unused - event_source_grants(function, names)


def test_every_function_is_granted_exactly_what_its_code_uses(stack):
    settings, names, recorder, kubos, chain = stack
    from chalice.test import Client

    import app as app_module
    from tests.support.api import ApiClient

    services = build_services(settings)
    for i, (node_id, kubo) in enumerate(kubos.items()):
        services.registry.register(node_id, kubo.url, PEERS[i], [f"/ip4/8.8.8.{i}/tcp/4001"])
    tenant = services.admin.create_tenant("alice")
    token = services.admin.issue_token(tenant.tenant_id, "laptop").secret
    # on a plan with every quota: creates read the counts and the ledger, the pin worker the ledger
    services.plan_admin.set_quotas(tenant.tenant_id, {"pins": 10**6, "in_flight": 10**6, "bytes": 10**12})

    with Client(app_module.app) as client:
        root, blocks = unixfs_file(b"iam-pinned" * 1000)
        pinned, failing = str(root), cid_v1("iam-failing")
        other_root, other_blocks = unixfs_file(b"iam-unarchived" * 100)
        unarchived = str(other_root)
        for kubo in kubos.values():
            kubo.add_car(pinned, b"".join(write_car([root], blocks)), held=True)
            kubo.add_car(unarchived, b"".join(write_car([other_root], other_blocks)), held=True)
            kubo.add_content(failing, blocks=2)
            kubo.fail("pin/add", "disk I/O error", cid=failing, times=100)
        api = ApiClient(client, token)
        # Given a user with a webhook endpoint
        receiver = a_user_registers_webhooks(api, recorder)
        # who pins, lists every way, replaces and deletes
        replaced, doomed = a_user_pins_lists_every_way_replaces(api, recorder, pinned, failing)
        # and reads its usage, its container writing the minute's request counts as a later request would
        with recorder.running("APIHandler"):
            assert api.request("GET", "/usage").status == 200
            app_module.services().request_meter.flush()
        # and workers that pin, then unpin the replaced and deleted requests
        workers_pin_and_a_failing_message_dead_letters(client, recorder, settings.queue_url, doomed)
        # and the replacing request's archive, let go when it is deleted
        an_archive_is_made(client, recorder, kubos, tenant.tenant_id, replaced, pinned)
        with recorder.running("APIHandler"):
            api.request("DELETE", f"/pins/{replaced}")
        workers_run(client, recorder, settings.queue_url, rounds=3)
        # and a request pinned again (for the reconciler to find its pin lost on a node)
        with recorder.running("APIHandler"):
            api.pin(pinned)
        workers_run(client, recorder, settings.queue_url, rounds=2)
        # and the schedules
        the_schedules_run(client, recorder, kubos, pinned)
        # and the fleet's Auto Scaling group terminating a node, and workers draining it
        the_fleet_terminates_a_node(client, recorder)
        workers_run(client, recorder, settings.queue_url, rounds=3)
        # and a tenant whose invocation slot another invocation holds: its message deferred
        a_tenant_holding_its_slot_elsewhere_is_deferred(client, recorder, pinned)
        # and an archive that failed every delivery
        an_archive_fails_and_dead_letters(client, recorder, api, kubos, unarchived)
        # and a cold-only tenant whose request cools, is retrieved and pinned again
        a_cold_only_tenant_cools_retrieves_and_pins_again(client, recorder, kubos)
        # and an archived request retrieved every way, lost by every node and restored, then thawed
        archived = an_archived_pin_is_retrieved_every_way(client, recorder, api, kubos)
        it_is_restored_then_thawed_for_each_reader(client, recorder, api, kubos, tenant.tenant_id, archived)
        # and the count changes all this recorded, folded as the pins stream reports them
        the_pins_stream_feeds_the_folder(client, recorder, names)
        # and the status changes delivered to the user's endpoint
        the_pins_stream_feeds_webhooks(client, recorder, api, names, receiver)
        # and a request wanting 2 Filecoin copies: made, proven, shown, read, given up, ended
        filecoin_copies_are_made_proven_shown_and_ended(client, recorder, api, kubos, chain)

    assert set(recorder.used) == set(FUNCTIONS)
    for function, used in recorder.used.items():
        statements = policy_of(function, names)
        # Then every call its code made is allowed
        assert [grant for grant in sorted(used) if not allows(statements, grant)] == [], function
        # and it may touch nothing else
        assert unused_grants(function, used, statements, names) == set(), function
