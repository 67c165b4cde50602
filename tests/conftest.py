"""Shared fixtures: an emulated AWS (moto), the service wired to it, a fleet
of registered nodes and a tenant with a token."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from chalicelib.config import Settings  # noqa: E402
from chalicelib.storage.tables import create_tables  # noqa: E402
from chalicelib.wiring import Services, build_services  # noqa: E402
from devstack import moto_transactions  # noqa: E402

PEER_A = "12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N"
PEER_B = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"


moto_transactions.install()


@pytest.fixture(scope="session", autouse=True)
def one_botocore_session() -> Iterator[None]:
    """Speed only: each test binds the models anew, and every new PynamoDB
    connection or SQS publisher would parse the AWS service models again
    (over a second per test). One shared session parses them once."""
    import botocore.session
    import pynamodb.connection.base

    shared = botocore.session.get_session()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pynamodb.connection.base, "get_session", lambda: shared)
        patch.setattr(botocore.session, "get_session", lambda env_vars=None: shared)
        yield


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def settings(aws: None) -> Settings:
    import boto3

    queue_url = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="pins")["QueueUrl"]
    base = replace(Settings(), table_prefix="test", queue_url=queue_url, region="us-east-1")
    create_tables(base, wait=False)  # moto's tables are active at once
    return base


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    built.registry.register("node-a", "http://127.0.0.1:5101", PEER_A, ["/ip4/203.0.113.1/tcp/4001"])
    built.registry.register("node-b", "http://127.0.0.1:5102", PEER_B, ["/ip4/203.0.113.2/tcp/4001"])
    yield built


@pytest.fixture
def tenant_token(services: Services) -> str:
    admin = services.admin
    tenant = admin.create_tenant("alice")
    return admin.issue_token(tenant.tenant_id, "laptop").secret


@pytest.fixture
def api(services: Services, tenant_token: str):
    from chalice.test import Client

    import app as app_module
    from tests.support.api import ApiClient

    app_module.services.install(services)
    with Client(app_module.app) as client:
        yield ApiClient(client, tenant_token)
    app_module.services.install(None)
