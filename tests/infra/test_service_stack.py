"""The deployable template of each stage, as `make package` writes it:
valid CloudFormation, with the queues, event sources, alarms, secret and
least-privilege roles the service needs."""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from chalicelib.cold.archive_objects import ArchiveObjects
from chalicelib.cold.archive_repository import ArchivedCar
from chalicelib.cold.restorer import Restorer, RestoreRefused
from chalicelib.config import Settings
from chalicelib.kubo.client import KuboClient
from chalicelib.storage.change_stream import CHANGE_FILTER
from chalicelib.storage.tables import MODELS
from infra.package import PackagingError, package
from infra.render import FOLD_FAILURES, FUNCTIONS, STAGE_OPTIONS, STREAM_READS, VISIBILITY_FACTOR
from tests.cold.s3 import s3_client
from tests.support.memory.archives import MemoryArchives

REPO = Path(__file__).resolve().parents[2]
# The API's retrieval (GET /ipfs/{cid}) reads from the nodes too.
KUBO_FUNCTIONS = {
    "APIHandler",
    "PinWorker",
    "PinDeadLetters",
    "ArchiveWorker",
    "CheckFleetHealth",
    "ReconcileFleet",
    "CoolPins",
}
DATA_SERVICES = ("dynamodb", "sqs", "secretsmanager")


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """`make package` of every stage (in parallel: each takes seconds), offline as it is."""
    out = tmp_path_factory.mktemp("package")
    try:
        jobs = {stage: package(stage, out / stage, stderr=subprocess.PIPE) for stage in STAGE_OPTIONS}
    except PackagingError as error:
        pytest.fail(str(error))
    for _stage, job in jobs.items():
        _, errors = job.communicate(timeout=300)
        assert job.returncode == 0, errors.decode()
    yield {stage: out / stage / "sam.json" for stage in STAGE_OPTIONS}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == kind}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    (policy,) = role["Properties"]["Policies"]
    found = []
    for statement in policy["PolicyDocument"]["Statement"]:
        # Conditional statements (the worker VPC's) count as granted.
        found.append(statement["Fn::If"][1] if "Fn::If" in statement else statement)
    return found


def test_the_packaged_templates_and_the_other_stacks_pass_cfn_lint(packaged):
    templates = [*packaged.values(), *sorted((REPO / "infra").glob("*.yaml"))]
    problems = {str(t): [str(m) for m in lint_file(t, ManualArgs(regions=["us-east-1"]))] for t in templates}
    assert {t: p for t, p in problems.items() if p} == {}


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_tables_are_on_demand_recoverable_and_protected_in_prod(packaged, stage):
    tables = of_type(load(packaged[stage]), "AWS::DynamoDB::Table")
    assert len(tables) == len(MODELS)
    prod = stage == "prod"
    for table in tables.values():
        properties = table["Properties"]
        assert properties["TableName"].startswith(f"pinning-{stage}-")
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["DeletionProtectionEnabled"] is prod
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == ("Retain" if prod else "Delete")


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_the_worker_reads_an_encrypted_queue_that_dead_letters_after_repeated_receives(packaged, stage):
    template = load(packaged[stage])
    resources = template["Resources"]
    queue, dead = resources["PinQueue"]["Properties"], resources["PinDeadLetterQueue"]["Properties"]
    assert (queue["QueueName"], dead["QueueName"]) == (f"pinning-{stage}-pins", f"pinning-{stage}-pins-dlq")
    assert queue["SqsManagedSseEnabled"] and dead["SqsManagedSseEnabled"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["PinDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert template["Parameters"]["MaxReceiveCount"]["Default"] >= 2
    for function, queue_id in (
        ("PinWorker", "PinQueue"),
        ("PinDeadLetters", "PinDeadLetterQueue"),
        ("ArchiveWorker", "ArchiveQueue"),
        ("ArchiveDeadLetters", "ArchiveDeadLetterQueue"),
    ):
        properties = resources[function]["Properties"]
        (event,) = properties["Events"].values()
        assert event["Type"] == "SQS"
        assert event["Properties"]["Queue"] == {"Fn::Sub": f"${{{queue_id}.Arn}}"}
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 2 <= event["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= 10
        # A message is not redelivered while an invocation may still hold it.
        assert resources[queue_id]["Properties"]["VisibilityTimeout"] >= VISIBILITY_FACTOR * properties["Timeout"]


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_alarms_watch_dead_letters_queue_age_errors_api_5xx_and_nodes_and_notify_the_topic(packaged, stage):
    template = load(packaged[stage])
    alarms = of_type(template, "AWS::CloudWatch::Alarm")
    watched = set()
    for alarm in alarms.values():
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        metrics = [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m] or [
            properties
        ]
        watched |= {(m["Namespace"], m["MetricName"]) for m in metrics}
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/SQS", "NumberOfMessagesSent"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/ApiGateway", "5XXError"),
        ("PinningService", "UnhealthyNodes"),
        ("PinningService", "ArchiveFailed"),
    } <= watched
    errors = {
        a["Properties"]["Dimensions"][0]["Value"]["Ref"]
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "Errors"
    }
    assert errors == set(FUNCTIONS) - {"APIHandler"}
    assert "AlarmTopic" in of_type(template, "AWS::SNS::Topic")
    assert of_type(template, "AWS::SNS::Subscription")["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_only_the_functions_that_call_kubo_get_the_rpc_secret_and_the_worker_network(packaged, stage):
    template = load(packaged[stage])
    resources = template["Resources"]
    assert "GenerateSecretString" in resources["KuboRpcSecret"]["Properties"]
    assert template["Outputs"]["KuboRpcSecretArn"]["Export"]["Name"] == f"pinning-{stage}-KuboRpcSecretArn"
    for function in FUNCTIONS:
        properties = resources[function]["Properties"]
        variables = properties["Environment"]["Variables"]
        calls_kubo = function in KUBO_FUNCTIONS
        assert ("KUBO_RPC_SECRET_ARN" in variables) is calls_kubo
        assert "KUBO_RPC_SECRET" not in variables  # never a value in the template
        assert ("VpcConfig" in properties) is calls_kubo
        role = "ApiHandlerRole" if function == "APIHandler" else f"{function}Role"
        secret_readers = [
            s
            for s in statements(resources[role])
            if "secretsmanager:GetSecretValue" in as_list(s["Action"]) and s["Resource"] == {"Ref": "KuboRpcSecret"}
        ]
        assert bool(secret_readers) is calls_kubo
    vpc = resources["PinWorker"]["Properties"]["VpcConfig"]["Fn::If"][1]
    assert vpc["SecurityGroupIds"] == [{"Fn::ImportValue": f"pinning-{stage}-WorkerSecurityGroupId"}]
    assert vpc["SubnetIds"] == {"Fn::Split": [",", {"Fn::ImportValue": f"pinning-{stage}-WorkerSubnetIds"}]}


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_each_function_has_its_own_role_with_no_wildcard_on_data(packaged, stage):
    template = load(packaged[stage])
    functions = of_type(template, "AWS::Serverless::Function")
    # Every function's role policy comes from infra/render.py (Chalice's would be the base one).
    assert set(functions) == set(FUNCTIONS)
    roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()}
    assert len(roles) == len(functions)
    for role in roles:
        for statement in statements(template["Resources"][role]):
            actions = as_list(statement["Action"])
            assert not any("*" in action for action in actions), statement
            if any(action.split(":")[0] in DATA_SERVICES for action in actions):
                assert "*" not in json.dumps(statement["Resource"]), statement
            elif statement["Resource"] == "*":
                assert all(action.startswith("ec2:") for action in actions), statement


def fold_mapping(template: dict[str, Any]) -> dict[str, Any]:
    """The properties of the event source mapping of the count folder (the webhooks' fanout has the other)."""
    (mapping,) = [
        mapping
        for mapping in of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if mapping["Properties"]["FunctionName"] == {"Ref": "FoldCounts"}
    ]
    return mapping["Properties"]


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_the_pins_stream_feeds_the_count_folder_its_inserted_changes_in_batches(packaged, stage):
    template = load(packaged[stage])
    resources = template["Resources"]
    # Then the pins table has a stream of keys, read by one mapping into the folder, from its oldest record
    assert resources["PinsTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "KEYS_ONLY"}
    mapping = fold_mapping(template)
    assert mapping["FunctionName"] == {"Ref": "FoldCounts"}
    assert resources["FoldCounts"]["Properties"]["Handler"] == "app.fold_counts"
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["PinsTable", "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    # and only insertions of count changes invoke it
    (pattern,) = mapping["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"]) == CHANGE_FILTER
    prefixes = [{"prefix": f"s#{code}#~"} for code in "qgpf"]
    assert CHANGE_FILTER == {"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": prefixes}}}}
    # in batches that fold many changes of a shard at once
    assert mapping["BatchSize"] >= 100
    assert 1 <= mapping["MaximumBatchingWindowInSeconds"] <= 5


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_the_count_folder_reports_failed_records_retries_a_bounded_number_of_times_and_alarms(packaged, stage):
    template = load(packaged[stage])
    resources = template["Resources"]
    mapping = fold_mapping(template)
    # Then failed records are reported one by one, a failing batch halved and retried a bounded number of times
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 1 <= mapping["MaximumRetryAttempts"] <= 100
    # and records given up on are named in an encrypted queue that an alarm watches, as is the folds' lag
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [FOLD_FAILURES, "Arn"]}}}
    assert resources[FOLD_FAILURES]["Properties"]["SqsManagedSseEnabled"]
    alarms = [a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()]
    watched = {(a.get("MetricName"), json.dumps(a.get("Dimensions", [{}])[0].get("Value"))) for a in alarms}
    assert ("NumberOfMessagesSent", json.dumps({"Fn::GetAtt": [FOLD_FAILURES, "QueueName"]})) in watched
    assert ("IteratorAge", json.dumps({"Ref": "FoldCounts"})) in watched
    # and the folder's role reads that stream and sends to that queue, nothing else of either kind
    granted = statements(resources["FoldCountsRole"])
    assert [s["Resource"] for s in granted if set(as_list(s["Action"])) & set(STREAM_READS)] == [
        {"Fn::GetAtt": ["PinsTable", "StreamArn"]}
    ]
    assert [s["Resource"] for s in granted if "sqs:SendMessage" in as_list(s["Action"])] == [
        {"Fn::GetAtt": [FOLD_FAILURES, "Arn"]}
    ]


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_the_archive_bucket_is_private_encrypted_unversioned_and_moves_archives_to_glacier_ir(packaged, stage):
    template = load(packaged[stage])
    (bucket,) = of_type(template, "AWS::S3::Bucket").values()
    properties = bucket["Properties"]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(properties["PublicAccessBlockConfiguration"].values())
    assert len(properties["PublicAccessBlockConfiguration"]) == 4
    assert "VersioningConfiguration" not in properties  # never enabled: a deleted archive leaves no version
    rules = {rule["Id"]: rule for rule in properties["LifecycleConfiguration"]["Rules"]}
    cars = rules["ArchivesToGlacierInstantRetrieval"]
    # CARs alone move (tagged at upload): the block indexes stay in S3 Standard
    assert (cars["Prefix"], cars["TagFilters"]) == ("archives/", [{"Key": "archive", "Value": "car"}])
    # to Glacier IR after ArchiveColdAfterDays, then Deep Archive after ArchiveDeepArchiveDays unless 0
    assert cars["Transitions"] == [
        {"StorageClass": "GLACIER_IR", "TransitionInDays": {"Ref": "ArchiveColdAfterDays"}},
        {
            "Fn::If": [
                "HasDeepArchive",
                {"StorageClass": "DEEP_ARCHIVE", "TransitionInDays": {"Ref": "ArchiveDeepArchiveDays"}},
                {"Ref": "AWS::NoValue"},
            ]
        },
    ]
    assert template["Conditions"]["HasDeepArchive"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ArchiveDeepArchiveDays"}, "0"]}]
    }
    parameters = template["Parameters"]
    assert (parameters["ArchiveColdAfterDays"]["Default"], parameters["ArchiveDeepArchiveDays"]["Default"]) == (30, 0)
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert bucket["DeletionPolicy"] == ("Retain" if stage == "prod" else "Delete")


def _grants(role: dict[str, Any], service: str) -> set[str]:
    return {a for s in statements(role) for a in as_list(s["Action"]) if a.startswith(f"{service}:")}


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_archives_have_their_own_function_queue_and_dead_letters_and_only_it_writes_archive_objects(packaged, stage):
    # Given the packaged template
    resources = load(packaged[stage])["Resources"]
    archiver = resources["ArchiveWorker"]["Properties"]
    queue, dead = resources["ArchiveQueue"]["Properties"], resources["ArchiveDeadLetterQueue"]["Properties"]

    # Then the archive function has Lambda's longest timeout and one vCPU's memory, one message at a time
    assert (archiver["Timeout"], archiver["MemorySize"]) == (900, 1769)
    assert archiver["Events"]["ArchiveWorkerSqsEventSource"]["Properties"]["BatchSize"] == 1
    # and its queue hides a message 6 turns long and dead-letters it to its own queue
    assert queue["QueueName"] == f"pinning-{stage}-archives" and dead["QueueName"] == f"pinning-{stage}-archives-dlq"
    assert queue["VisibilityTimeout"] == 6 * 900
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ArchiveDeadLetterQueue", "Arn"]}
    # and the pin worker, the archive function and the reconciler send archive work there, the others not
    senders = {name for name, access in FUNCTIONS.items() if access.sends_archives}
    # (the reconciler: long restores; the Filecoin tracker: the copies it begins)
    assert senders == {"PinWorker", "ArchiveWorker", "ReconcileFleet", "TrackFilecoinCopies"}
    for name in FUNCTIONS:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert (variables.get("ARCHIVE_QUEUE_URL") == {"Ref": "ArchiveQueue"}) is (name in senders)
    # and only the archive function writes archive objects; the pin worker only reads them (its restores)
    assert _grants(resources["ArchiveWorkerRole"], "s3") == {
        "s3:PutObject",
        "s3:PutObjectTagging",
        "s3:AbortMultipartUpload",
        # restores too long for the other functions' turns
        "s3:GetObject",
        "s3:RestoreObject",
    }
    assert _grants(resources["PinWorkerRole"], "s3") == {"s3:GetObject", "s3:RestoreObject"}
    assert _grants(resources["ArchiveDeadLettersRole"], "s3") == set()


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_a_refused_restore_is_the_metric_its_alarm_watches(packaged, stage):
    # Given the stage's alarm on refused restores
    alarm = load(packaged[stage])["Resources"]["RestoreFailedAlarm"]["Properties"]
    metrics = io.StringIO()
    restorer = Restorer(
        replace(Settings(), stage=stage),
        MemoryArchives(),
        ArchiveObjects(s3_client(), "bucket"),
        lambda node: KuboClient(node.rpc_url),
        metrics,
    )
    # When the restorer refuses an archive (a CAR no turn could import)
    huge = ArchivedCar("k.car", "k.idx", 1 << 50, "", "", "", 0, 0)
    with pytest.raises(RestoreRefused):
        restorer.check_time(huge, time.monotonic() + 60)
    # Then the one metric it emits is the alarm's, in its namespace and with its dimensions
    (line,) = [json.loads(text) for text in metrics.getvalue().splitlines()]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert (directive["Namespace"], [m["Name"] for m in directive["Metrics"]]) == (
        alarm["Namespace"],
        [alarm["MetricName"]],
    )
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        name: line[name] for name in directive["Dimensions"][0]
    }
    # and any refusal within 5 minutes raises it, to the alarm topic
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 300, 0)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_the_filecoin_wallet_secret_is_created_empty_and_read_only_by_the_functions_that_sign(packaged, stage):
    # Given the packaged template
    template = load(packaged[stage])
    resources = template["Resources"]
    # Then the wallet's secret has no value of the template's (the operator puts the key) and survives in prod
    secret = resources["FilecoinWalletSecret"]
    assert "SecretString" not in secret["Properties"] and "GenerateSecretString" not in secret["Properties"]
    assert secret["DeletionPolicy"] == ("Retain" if stage == "prod" else "Delete")
    # and only the functions that sign (store, end) read it, told where it is
    signers = {name for name, access in FUNCTIONS.items() if access.signs_filecoin}
    assert signers == {"ArchiveWorker", "TrackFilecoinCopies", "SweepArchives"}
    for name in FUNCTIONS:
        role = "ApiHandlerRole" if name == "APIHandler" else f"{name}Role"
        readers = [s for s in statements(resources[role]) if s["Resource"] == {"Ref": "FilecoinWalletSecret"}]
        assert [s["Action"] for s in readers] == ([["secretsmanager:GetSecretValue"]] if name in signers else [])
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert (variables.get("FILECOIN_WALLET_SECRET_ARN") == {"Ref": "FilecoinWalletSecret"}) is (name in signers)


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_the_filecoin_tracker_runs_outside_the_workers_network_and_its_table_is_protected(packaged, stage):
    resources = load(packaged[stage])["Resources"]
    # Then the tracker runs outside the workers' network (it reaches the chain and the providers)
    tracker = resources["TrackFilecoinCopies"]["Properties"]
    assert tracker["Handler"] == "app.track_filecoin_copies" and "VpcConfig" not in tracker
    # and the copies table's due index holds keys only, its table protected in prod
    table = resources["FilecoinCopiesTable"]["Properties"]
    (due,) = table["GlobalSecondaryIndexes"]
    assert due["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert due["KeySchema"] == [
        {"AttributeName": "due", "KeyType": "HASH"},
        {"AttributeName": "due_ms", "KeyType": "RANGE"},
    ]
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["DeletionProtectionEnabled"] is (stage == "prod")


@pytest.mark.parametrize("stage", sorted(STAGE_OPTIONS))
def test_the_filecoin_metrics_have_alarms_that_notify_the_topic(packaged, stage):
    # Given the packaged template's alarms
    alarms = [a["Properties"] for a in of_type(load(packaged[stage]), "AWS::CloudWatch::Alarm").values()]
    watched = {a.get("MetricName"): a for a in alarms}
    # Then each metric the tracker emits for an operator is watched, per stage, and notifies the topic
    for name in (
        "FilecoinSpendCapReached",
        "FilecoinFundsLow",
        "FilecoinCopiesFailed",
        "FilecoinCopiesLapsed",
        "FilecoinBackendUnavailable",
    ):
        assert watched[name]["Dimensions"] == [{"Name": "Stage", "Value": stage}], name
        assert watched[name]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
