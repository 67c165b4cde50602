"""Fleet nodes leave the registry when their Auto Scaling group terminates them.

The fleet stack (infra/fleet.yaml) names each stage's group
`pinning-<stage>-nodes` and gives it a termination lifecycle hook. The group
holds a terminating instance until the hook's action is completed; EventBridge
brings the hook's event here, and the node (registered under its instance id)
is removed from the registry before the instance is let go, so no new pin is
placed on it, and the drain of its pins is queued in the same transaction
(chalicelib/fleet/removal.py): the handler does no more than that, quickly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.fleet.removal import NodeRemoval

if TYPE_CHECKING:
    from types_boto3_autoscaling import AutoScalingClient

logger = logging.getLogger("pinning.fleet")

TERMINATING = "EC2 Instance-terminate Lifecycle Action"

# Matches every stage's groups; each stage's handler keeps only its own.
TERMINATION_EVENTS = {
    "source": ["aws.autoscaling"],
    "detail-type": [TERMINATING],
    "detail": {"AutoScalingGroupName": [{"prefix": "pinning-"}]},
}


def fleet_group_name(stage: str) -> str:
    """The stage's Auto Scaling group of Kubo nodes (infra/fleet.yaml)."""
    return f"pinning-{stage}-nodes"


@dataclass(frozen=True)
class Termination:
    group_name: str
    instance_id: str
    hook_name: str
    token: str

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Termination | None:
        """The termination an EventBridge event announces; None for any other event."""
        if event.get("detail-type") != TERMINATING:
            return None
        detail = event.get("detail") or {}
        try:
            return cls(
                detail["AutoScalingGroupName"],
                detail["EC2InstanceId"],
                detail["LifecycleHookName"],
                detail["LifecycleActionToken"],
            )
        except KeyError:
            return None


def release_terminating_node(
    event: Mapping[str, Any], stage: str, removal: NodeRemoval, autoscaling: AutoScalingClient
) -> str | None:
    """Removes a terminating fleet node from the registry (queuing its
    drain), then lets its group terminate it. Returns the node id; None for
    an event that is not about this stage's fleet."""
    termination = Termination.from_event(event)
    if termination is None or termination.group_name != fleet_group_name(stage):
        return None
    registered = removal.remove(termination.instance_id)
    logger.info(
        "fleet node terminating",
        extra={"node_id": termination.instance_id, "was_registered": registered},
    )
    try:
        autoscaling.complete_lifecycle_action(
            AutoScalingGroupName=termination.group_name,
            LifecycleHookName=termination.hook_name,
            LifecycleActionToken=termination.token,
            InstanceId=termination.instance_id,
            LifecycleActionResult="CONTINUE",
        )
    except ClientError as error:
        # A repeated event: the action was completed, or timed out, already.
        if error.response.get("Error", {}).get("Code") != "ValidationError":
            raise
        logger.info("no lifecycle action left to complete", extra={"node_id": termination.instance_id})
    return termination.instance_id
