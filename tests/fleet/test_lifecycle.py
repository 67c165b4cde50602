"""A node the fleet's Auto Scaling group terminates leaves the registry, and
the group is then told to go on (the termination lifecycle hook)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.fleet.lifecycle import TERMINATING, release_terminating_node
from chalicelib.wiring import Services


class FakeAutoScaling:
    """Records completed lifecycle actions; can answer like AWS does for a
    repeated or unauthorised completion."""

    def __init__(self, error_code: str = "") -> None:
        self.completed: list[dict[str, Any]] = []
        self._error_code = error_code

    def complete_lifecycle_action(self, **kwargs: Any) -> dict[str, Any]:
        if self._error_code:
            raise ClientError({"Error": {"Code": self._error_code, "Message": "refused"}}, "CompleteLifecycleAction")
        self.completed.append(kwargs)
        return {}


def termination_event(instance_id: str, group: str = "pinning-dev-nodes") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "4c1f4b2e-1d7b-4e3a-9a51-9c1e0c3f5d10",
        "detail-type": TERMINATING,
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2026-11-21T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:uuid:autoScalingGroupName/{group}"],
        "detail": {
            "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
            "AutoScalingGroupName": group,
            "LifecycleHookName": group.replace("-nodes", "-node-terminating"),
            "EC2InstanceId": instance_id,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
            "Origin": "AutoScalingGroup",
            "Destination": "EC2",
        },
    }


def registered(services: Services) -> list[str]:
    return [node.node_id for node in services.registry.nodes(fresh=True)]


@pytest.fixture
def handler(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Invokes the deployed handler, node_terminating, with a fake Auto Scaling API."""
    from chalice.test import Client

    import app as app_module

    autoscaling = FakeAutoScaling()
    monkeypatch.setattr(app_module, "aws_client", lambda settings, service: autoscaling)
    app_module.services.install(services)
    try:
        with Client(app_module.app) as client:
            yield lambda event: client.lambda_.invoke("node_terminating", event).payload, autoscaling
    finally:
        app_module.services.install(None)


def test_a_terminating_node_leaves_the_registry_before_the_group_lets_it_go(services, handler):
    # given node-a registered in the fleet
    invoke, autoscaling = handler
    assert registered(services) == ["node-a", "node-b"]

    # when its group announces that it terminates it
    result = invoke(termination_event("node-a"))

    # then the node is no longer registered and the lifecycle action is completed
    assert result == "node-a"
    assert registered(services) == ["node-b"]
    assert autoscaling.completed == [
        {
            "AutoScalingGroupName": "pinning-dev-nodes",
            "LifecycleHookName": "pinning-dev-node-terminating",
            "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
            "InstanceId": "node-a",
            "LifecycleActionResult": "CONTINUE",
        }
    ]


def test_another_stages_group_is_left_to_that_stage(services, handler):
    # given the dev service and a node of prod's fleet terminating
    invoke, autoscaling = handler

    # when the event reaches the dev service too
    result = invoke(termination_event("node-a", group="pinning-prod-nodes"))

    # then dev neither removes anything nor completes prod's action
    assert result is None
    assert registered(services) == ["node-a", "node-b"]
    assert autoscaling.completed == []


def test_an_instance_that_never_registered_is_still_let_go(services, handler):
    # given an instance that failed before registering
    invoke, autoscaling = handler

    # when it is terminated
    invoke(termination_event("i-0never"))

    # then its termination is not held up for the hook's whole timeout
    assert [action["InstanceId"] for action in autoscaling.completed] == ["i-0never"]
    assert registered(services) == ["node-a", "node-b"]


def test_a_repeated_event_after_the_action_completed_is_not_an_error(services):
    # given an action Auto Scaling no longer waits for (already completed, or timed out)
    autoscaling = FakeAutoScaling(error_code="ValidationError")

    # when the event comes again
    result = release_terminating_node(termination_event("node-a"), "dev", services.removal, autoscaling)

    # then the node is gone all the same and the handler succeeds
    assert result == "node-a"
    assert registered(services) == ["node-b"]


def test_a_refused_completion_fails_the_invocation_so_it_is_retried(services):
    # given a function whose role may not complete lifecycle actions
    autoscaling = FakeAutoScaling(error_code="AccessDenied")

    # when a node terminates, then the error surfaces (EventBridge retries, the alarm sees it)
    with pytest.raises(ClientError):
        release_terminating_node(termination_event("node-a"), "dev", services.removal, autoscaling)


def test_other_events_are_ignored(services):
    autoscaling = FakeAutoScaling()
    launch = termination_event("node-a")
    launch["detail-type"] = "EC2 Instance-launch Lifecycle Action"

    assert release_terminating_node(launch, "dev", services.removal, autoscaling) is None
    assert registered(services) == ["node-a", "node-b"]
    assert autoscaling.completed == []


def test_a_terminating_node_has_its_drain_queued_with_its_removal(services, handler):
    import boto3

    from chalicelib.queue.messages import DrainNode, decode

    # given node-a registered in the fleet
    invoke, _ = handler

    # when its group terminates it
    invoke(termination_event("node-a"))

    # then the workers are asked to move its pins elsewhere
    got = boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=services.settings.queue_url)
    (message,) = [decode(m["Body"]) for m in got["Messages"]]
    assert isinstance(message, DrainNode) and message.node_id == "node-a"
