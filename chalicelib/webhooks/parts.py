"""The webhooks' parts of one container, built from settings on first use
(chalicelib.wiring): registration (API, CLI), the stream's fanout and the
queue's deliveries."""

from __future__ import annotations

from chalicelib.config import Settings
from chalicelib.pins.timestamps import now_ms
from chalicelib.webhooks.addresses import AddressCheck
from chalicelib.webhooks.delivery import Deliverer
from chalicelib.webhooks.endpoints import EndpointRepository, Webhooks
from chalicelib.webhooks.fanout import Fanout, PinReader
from chalicelib.webhooks.queue import SqsWebhookQueue
from chalicelib.webhooks.sender import HttpPoster


class WebhookParts:
    def __init__(self, settings: Settings, repository: EndpointRepository, pins: PinReader) -> None:
        check = AddressCheck(allow_loopback=settings.allow_loopback_webhooks)
        self.queue = SqsWebhookQueue(settings)
        self.endpoints = Webhooks(repository, check, now_ms)
        self.fanout = Fanout(repository, pins, self.queue, now_ms)
        self.deliverer = Deliverer(repository, check, HttpPoster(), now_ms)
