"""infra/fleet.yaml: the Kubo nodes' launch template, group and user data.

The user data cannot run here (it installs Kubo on Amazon Linux), so these
tests render it as CloudFormation would and check what it would do: the
registry item it writes is the one NodeRegistry writes, the RPC secret
admits every call the workers make, and its scripts parse."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import decode_str

from chalicelib.fleet.lifecycle import TERMINATING, fleet_group_name
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.storage.node_record import FLEET_PARTITION, NodeRecord
from chalicelib.storage.node_repository import DynamoNodeRepository
from chalicelib.storage.tables import bind_models

FLEET = Path(__file__).resolve().parents[2] / "infra" / "fleet.yaml"
KUBO_CLIENT = Path(__file__).resolve().parents[2] / "chalicelib" / "kubo" / "client.py"
TEMPLATE, _ = decode_str(FLEET.read_text())
RESOURCES = TEMPLATE["Resources"]

# What CloudFormation and the instance would fill in.
STACK = {
    "Stage": "prod",
    "AWS::StackName": "pinning-prod-fleet",
    "AWS::Region": "us-east-1",
    "SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:pinning-prod-kubo-rpc-AbCdEf",
    "RpcPort": "5001",
    "SwarmPort": "4001",
    "StorageMaxGB": "450",
    "EnableGateway": "false",
    "GatewayPort": "8080",
    "KuboVersion": "v0.39.0",
    "KuboSha512": "0" * 128,
}
NODE = {
    "INSTANCE_ID": "i-0123456789abcdef0",
    "PRIVATE_IP": "10.40.0.17",
    "PUBLIC_IP": "198.51.100.23",
    "PEER_ID": "12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N",
    "AZ": "us-east-1a",
    "NOW_MS": "1795000000000",
    "RPC_PORT": "5001",
    "SWARM_PORT": "4001",
}


def user_data() -> str:
    """The user data as CloudFormation's Fn::Sub renders it."""
    script, _variables = RESOURCES["NodeLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"][
        "Fn::Sub"
    ]

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        return "${" + name[1:] + "}" if name.startswith("!") else STACK[name]

    return re.sub(r"\$\{([^}]+)\}", substitute, script)


def heredoc(text: str, opening: str) -> str:
    """The body of the here-document opened by the line starting with `opening`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(opening))
    terminator = re.search(r"<<'?(\w+)'?", lines[start]).group(1)
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == terminator)
    return "\n".join(lines[start + 1 : end]) + "\n"


def script(path: str) -> str:
    return heredoc(user_data(), f"cat > {path} ")


def test_the_template_passes_cfn_lint():
    assert [str(match) for match in lint_file(FLEET)] == []


@pytest.mark.parametrize(
    "name",
    ["user data", "/usr/local/sbin/kubo-install", "/usr/local/sbin/kubo-configure", "/usr/local/sbin/kubo-register"],
)
def test_the_node_scripts_are_valid_bash(name):
    text = user_data() if name == "user data" else script(name)
    checked = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_config_step_is_valid_python():
    compile(heredoc(script("/usr/local/sbin/kubo-configure"), "python3 - "), "kubo-configure", "exec")


def test_the_registration_writes_exactly_what_the_registry_would(settings):
    # given the item the node's kubo-register script puts into the nodes table
    body = heredoc(script("/usr/local/sbin/kubo-register"), 'cat > "$ITEM_FILE"')
    item = json.loads(re.sub(r"\$(\w+)", lambda match: NODE[match.group(1)], body))

    # when the registry registers the same node (as `cli.admin nodes register` does)
    nodes = DynamoNodeRepository(bind_models(settings))
    registry = NodeRegistry(nodes, clock=lambda: int(NODE["NOW_MS"]))
    expected = registry.register(
        NODE["INSTANCE_ID"],
        f"http://{NODE['PRIVATE_IP']}:{NODE['RPC_PORT']}",
        NODE["PEER_ID"],
        [
            f"/ip4/{NODE['PUBLIC_IP']}/tcp/{NODE['SWARM_PORT']}",
            f"/ip4/{NODE['PUBLIC_IP']}/udp/{NODE['SWARM_PORT']}/quic-v1",
        ],
        tags=[NODE["AZ"]],
    )

    # then both write the same attributes, of the same types, but the
    # version: the script's item has none, which reads as version 0
    stored = NodeRecord.get(FLEET_PARTITION, expected.node_id).serialize()
    assert stored.pop("version") == {"N": "1"}
    assert item == stored
    NodeRecord.from_raw_data(item).save()
    assert nodes.get(expected.node_id) == replace(expected, version=0)


def test_the_rpc_secret_admits_every_endpoint_the_workers_call():
    # given the endpoints the Kubo client posts to
    called = set(re.findall(r'_(?:call|post)\(\s*"([a-z/]+)"', KUBO_CLIENT.read_text()))
    assert {"pin/add", "pin/ls", "id", "repo/stat"} <= called

    # when the node's config step writes API.Authorizations
    config_step = script("/usr/local/sbin/kubo-configure")
    allowed = json.loads(re.search(r'"AllowedPaths": (\[[^\]]*\])', config_step).group(1))

    # then every call is under an allowed path (Kubo answers 403 otherwise), and the token is a bearer secret
    assert not [path for path in called if not any(f"/api/v0/{path}".startswith(prefix) for prefix in allowed)]
    assert '"AuthSecret": "bearer:" + env["RPC_SECRET"]' in config_step


def test_the_release_tarball_is_checked_before_it_is_installed():
    install = script("/usr/local/sbin/kubo-install")
    assert install.index("sha512sum --check") < install.index("tar -x") < install.index("install -m 0755")
    assert "/usr/local/sbin/kubo-install v0.39.0 " + "0" * 128 in user_data()


def test_the_rpc_listens_on_the_private_address_and_the_gateway_only_when_asked():
    config_step = script("/usr/local/sbin/kubo-configure")
    assert 'addresses["API"] = ["/ip4/%s/tcp/%s" % (env["PRIVATE_IP"], env["RPC_PORT"])]' in config_step
    assert "if gateway else []" in config_step
    assert RESOURCES["GatewayIngress"]["Condition"] == "GatewayEnabled"
    assert "ipfs init --profile server" in config_step


def test_the_group_holds_terminating_nodes_for_the_service_and_never_drops_one_on_its_own():
    group = RESOURCES["NodeGroup"]["Properties"]
    assert group["AutoScalingGroupName"] == {"Fn::Sub": fleet_group_name("${Stage}")}
    (hook,) = group["LifecycleHookSpecificationList"]
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook["DefaultResult"] == "CONTINUE"
    assert TERMINATING == "EC2 Instance-terminate Lifecycle Action"
    assert group["NewInstancesProtectedFromScaleIn"] is True


def _statements(role: dict[str, Any]) -> list:
    found = []
    for policy in role["Properties"]["Policies"]:
        if "Fn::If" in policy:
            policy = policy["Fn::If"][1]
        found += policy["PolicyDocument"]["Statement"]
    return found


def test_the_node_role_touches_only_its_secret_and_the_nodes_table():
    statements = _statements(RESOURCES["NodeRole"])
    data = [
        s
        for s in statements
        if any(a.split(":")[0] in ("dynamodb", "secretsmanager", "s3", "sqs", "kms") for a in _list(s["Action"]))
    ]
    assert {s["Sid"] for s in data} == {"RpcSecret", "RegisterInNodeRegistry"}
    for statement in data:
        assert "*" not in json.dumps(statement["Resource"])
        assert "*" not in json.dumps(statement["Action"])
    register = next(s for s in data if s["Sid"] == "RegisterInNodeRegistry")
    assert register["Action"] == "dynamodb:PutItem"
    assert register["Resource"]["Fn::Sub"].endswith(":table/pinning-${Stage}-nodes")


def _list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def test_nodes_use_imdsv2_and_encrypted_volumes():
    data = RESOURCES["NodeLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert all(mapping["Ebs"]["Encrypted"] for mapping in data["BlockDeviceMappings"])
