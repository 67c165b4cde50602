"""The local stack's worker takes its tenants' invocation slots as the stage's Lambda does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.config import Settings
from chalicelib.wiring import build_services
from chalicelib.worker.invocation_slots import Refused, Slot
from devstack.stack import stage_environment
from devstack.worker import pin_pollers
from infra.render import STAGE_OPTIONS


@pytest.mark.parametrize(("stage", "slots"), [("dev", 1), ("prod", 9)])
def test_each_stage_leaves_one_invocation_free_of_any_one_tenant(stage: str, slots: int) -> None:
    # given: the stage's settings, as the local stack's worker reads them (service.env)
    settings = Settings.from_env(stage_environment(stage))
    # then: a tenant may hold its MaximumConcurrency less one
    assert settings.tenant_invocations == slots == STAGE_OPTIONS[stage].worker_max_concurrency - 1


def test_the_dev_stacks_worker_bounds_each_tenant_to_one_invocation(settings: Settings) -> None:
    # given: the services a worker of `make dev` builds (the dev stage's settings)
    stage = Settings.from_env(stage_environment("dev"))
    services = build_services(replace(settings, tenant_invocations=stage.tenant_invocations))

    # when: a batch of tenant alice takes her slot, and another batch asks for one
    slots = services.invocation_slots
    assert slots is not None
    first, second = slots.take("alice", 10.0), slots.take("alice", 10.0)

    # then: the first holds it, in the emulated DynamoDB, and the second is refused
    assert isinstance(first, Slot) and isinstance(second, Refused)


def test_the_local_worker_runs_as_many_pin_batches_at_once_as_the_stages_lambda() -> None:
    # then: one poller per invocation MaximumConcurrency allows (dev 2, prod 10)
    assert [pin_pollers(stage) for stage in ("dev", "prod")] == [
        STAGE_OPTIONS[stage].worker_max_concurrency for stage in ("dev", "prod")
    ]
    assert pin_pollers("dev") == 2
