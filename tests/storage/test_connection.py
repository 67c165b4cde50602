"""A container builds one DynamoDB client, before its first request, whatever
its threads and tables (a botocore client takes seconds to build under load)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import botocore.session
import pytest

from chalicelib.config import Settings
from chalicelib.tenants.authenticator import Unauthenticated
from chalicelib.wiring import build_services


@pytest.fixture
def dynamodb_clients_built() -> Iterator[list[str]]:
    built: list[str] = []
    create_client = botocore.session.Session.create_client

    def counting(self: botocore.session.Session, service_name: str, *args: object, **kwargs: object) -> object:
        if service_name == "dynamodb":
            built.append(threading.current_thread().name)
        return create_client(self, service_name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session.Session, "create_client", counting)
        yield built


def test_one_client_is_built_with_the_services_and_shared_by_every_thread_and_table(
    settings: Settings, dynamodb_clients_built: list[str]
) -> None:
    # given a fresh container's services
    services = build_services(settings)
    assert len(dynamodb_clients_built) == 1

    # when ten threads make their first requests at once, on different tables
    start = threading.Barrier(10)
    errors: list[BaseException] = []

    def first_request(n: int) -> None:
        start.wait()
        try:
            if n % 3 == 0:
                services.store.get("alice", n)
            elif n % 3 == 1:
                services.registry.nodes()
            else:
                with pytest.raises(Unauthenticated):
                    services.authenticator.tenant_for(f"Bearer no-such-token-{n}")
        except BaseException as error:  # reported below, from the test's thread
            errors.append(error)

    threads = [threading.Thread(target=first_request, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then they all used the one client built up front
    assert errors == []
    assert len(dynamodb_clients_built) == 1
