"""A fake Kubo node on loopback and the service's client of it, per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.kubo.client import KuboClient
from tests.support.fake_kubo import FakeKubo


@pytest.fixture
def kubo() -> Iterator[FakeKubo]:
    with FakeKubo() as node:
        yield node


@pytest.fixture
def client(kubo: FakeKubo) -> KuboClient:
    return KuboClient(kubo.url, timeout=2.0)
