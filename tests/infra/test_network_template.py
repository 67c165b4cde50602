"""infra/network.yaml: who can reach the Kubo nodes, and how the workers
reach AWS without a NAT gateway (one only with FilecoinEgress=true)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfnlint.api import lint_file
from cfnlint.decode import decode_str

NETWORK = Path(__file__).resolve().parents[2] / "infra" / "network.yaml"
TEMPLATE, _ = decode_str(NETWORK.read_text())
RESOURCES = TEMPLATE["Resources"]


def of_type(kind: str) -> dict[str, Any]:
    return {name: resource for name, resource in RESOURCES.items() if resource["Type"] == kind}


def ingress_rules(group: str) -> list[dict[str, Any]]:
    """Inline and separate ingress rules of a security group."""
    rules = list(RESOURCES[group]["Properties"].get("SecurityGroupIngress", []))
    rules += [
        rule["Properties"]
        for rule in of_type("AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Ref": group}
    ]
    return rules


def on_port(rules: list[dict[str, Any]], port: Any) -> list[dict[str, Any]]:
    return [rule for rule in rules if rule["FromPort"] == port]


def test_the_template_passes_cfn_lint():
    assert [str(match) for match in lint_file(NETWORK)] == []


def test_the_kubo_rpc_is_reachable_from_the_workers_security_group_only():
    rpc = on_port(ingress_rules("NodeSecurityGroup"), {"Ref": "KuboRpcPort"})
    assert rpc == [
        {
            "GroupId": {"Ref": "NodeSecurityGroup"},
            "Description": "Kubo RPC, from the worker Lambdas only",
            "IpProtocol": "tcp",
            "FromPort": {"Ref": "KuboRpcPort"},
            "ToPort": {"Ref": "KuboRpcPort"},
            "SourceSecurityGroupId": {"Ref": "WorkerSecurityGroup"},
        }
    ]
    # and no rule opens a range that would include it
    for rule in ingress_rules("NodeSecurityGroup"):
        assert rule["FromPort"] == rule["ToPort"]


def test_the_swarm_is_open_to_the_internet_over_tcp_and_udp():
    swarm = on_port(ingress_rules("NodeSecurityGroup"), {"Ref": "KuboSwarmPort"})
    assert {(rule["IpProtocol"], rule["CidrIp"]) for rule in swarm} == {("tcp", "0.0.0.0/0"), ("udp", "0.0.0.0/0")}


def test_the_workers_subnets_have_no_way_to_the_internet_unless_filecoin_egress_is_on():
    # Given the routes and NAT gateways made whatever the parameters
    unconditional = {name: r for name, r in RESOURCES.items() if "Condition" not in r}
    routes = [r for r in unconditional.values() if r["Type"] == "AWS::EC2::Route"]
    # Then none but the public subnets' leads out, and there is no NAT gateway
    assert [route["Properties"]["RouteTableId"] for route in routes] == [{"Ref": "PublicRouteTable"}]
    assert not [r for r in unconditional.values() if r["Type"] in ("AWS::EC2::NatGateway", "AWS::EC2::EIP")]
    private = {
        a["Properties"]["SubnetId"]["Ref"]
        for a in of_type("AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["RouteTableId"] == {"Ref": "PrivateRouteTable"}
    }
    assert private == {"PrivateSubnetA", "PrivateSubnetB"}
    assert all(RESOURCES[subnet]["Properties"].get("MapPublicIpOnLaunch") is not True for subnet in private)


def test_with_filecoin_egress_one_nat_gateway_is_the_private_subnets_way_out():
    # Given the parameter, off by default
    assert TEMPLATE["Parameters"]["FilecoinEgress"]["Default"] == "false"
    # Then with it on, one NAT gateway in a public subnet is the private route table's way out
    (nat,) = of_type("AWS::EC2::NatGateway").values()
    (out,) = [
        r
        for r in of_type("AWS::EC2::Route").values()
        if r["Properties"]["RouteTableId"] == {"Ref": "PrivateRouteTable"}
    ]
    assert nat["Condition"] == out["Condition"] == "HasFilecoinEgress"
    assert nat["Properties"]["SubnetId"] == {"Ref": "PublicSubnetA"}
    assert out["Properties"]["NatGatewayId"] == {"Ref": "FilecoinEgressNat"}


def test_the_workers_reach_dynamodb_s3_sqs_and_secrets_manager_through_endpoints():
    endpoints = {
        endpoint["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1]: endpoint["Properties"]
        for endpoint in of_type("AWS::EC2::VPCEndpoint").values()
    }
    for service in ("dynamodb", "s3"):  # gateway endpoints: free, and no NAT to pay per GB
        assert endpoints[service]["VpcEndpointType"] == "Gateway"
        assert {"Ref": "PrivateRouteTable"} in endpoints[service]["RouteTableIds"]
    for service in ("sqs", "secretsmanager"):
        endpoint = endpoints[service]
        assert endpoint["VpcEndpointType"] == "Interface"
        assert endpoint["PrivateDnsEnabled"] is True
        assert endpoint["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    sources = {rule["SourceSecurityGroupId"]["Ref"] for rule in ingress_rules("EndpointSecurityGroup")}
    assert sources == {"WorkerSecurityGroup", "NodeSecurityGroup"}


def test_the_exports_the_service_and_fleet_stacks_import():
    exports = {output["Export"]["Name"]["Fn::Sub"] for output in TEMPLATE["Outputs"].values()}
    assert {
        "pinning-${Stage}-WorkerSubnetIds",
        "pinning-${Stage}-WorkerSecurityGroupId",
        "pinning-${Stage}-NodeSubnetIds",
        "pinning-${Stage}-NodeSecurityGroupId",
        "pinning-${Stage}-KuboRpcPort",
        "pinning-${Stage}-KuboSwarmPort",
    } <= exports
    assert TEMPLATE["Outputs"]["WorkerSubnetIds"]["Value"] == {
        "Fn::Join": [",", [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]]
    }


def test_the_fleet_imports_only_what_the_network_exports():
    fleet = (NETWORK.parent / "fleet.yaml").read_text()
    exports = {output["Export"]["Name"]["Fn::Sub"] for output in TEMPLATE["Outputs"].values()}
    imported = set(re.findall(r"ImportValue: !Sub (pinning-\$\{Stage\}-\w+)", fleet))
    # the secret comes from the service stack
    assert imported - {"pinning-${Stage}-KuboRpcSecretArn"} <= exports
    assert "pinning-${Stage}-NodeSecurityGroupId" in imported
