"""Builds the service's objects from settings, once per container."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

from chalicelib.config import Settings
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.pins.service import PinService
from chalicelib.queue.outbox import Outbox
from chalicelib.queue.publisher import SqsPublisher
from chalicelib.storage.pin_store import PinStore
from chalicelib.storage.tables import bind_models
from chalicelib.tenants.authenticator import Authenticator


@dataclass
class Services:
    settings: Settings
    authenticator: Authenticator
    registry: NodeRegistry
    outbox: Outbox
    pins: PinService


def build_services(settings: Settings) -> Services:
    bind_models(settings)
    registry = NodeRegistry(settings.node_cache_seconds)
    outbox = Outbox(SqsPublisher(settings), settings.outbox_shards)
    return Services(
        settings=settings,
        authenticator=Authenticator(settings.token_cache_seconds),
        registry=registry,
        outbox=outbox,
        pins=PinService(PinStore(), registry, outbox, settings.replication_factor),
    )


class ServiceProvider:
    """Lazily builds the services on first use (not at import: Chalice sets a
    stage's environment only when a handler runs); tests may install their own."""

    def __init__(self, factory: Callable[[], Services] = lambda: build_services(Settings.from_env())) -> None:
        self._factory = factory
        self._services: Optional[Services] = None
        self._lock = threading.Lock()

    def __call__(self) -> Services:
        if self._services is None:
            with self._lock:
                if self._services is None:
                    self._services = self._factory()
        return self._services

    def install(self, services: Optional[Services]) -> None:
        self._services = services
