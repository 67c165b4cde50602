"""Filecoin bytes per tenant (a request's piece x the copies proving for it,
as the tracker shows them in its `info`), and the filecoin_copies quota
capping the copies of requests whose plan was lowered."""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.filecoin.tracker import Tracker
from chalicelib.pins.pin import Pin
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.usage.meter import UsageMeter
from chalicelib.usage.months import Month
from tests.filecoin.harness import Copies, build
from tests.support.memory.usage import MemoryUsagePins

PIECE = 128


@dataclass
class Metered(Copies):
    """The Filecoin harness on pins that record usage, its tracker capped by `quotas`."""

    quotas: dict[str, int] = field(default_factory=dict)

    @property
    def tracker(self) -> Tracker:
        return Tracker(
            self.copies,
            self.backend,
            self.archives,
            self.pins,
            self.queue.append,
            self.settings,
            self.clock,
            quota=self.quotas.get,
        )

    @property
    def meter(self) -> UsageMeter:
        assert isinstance(self.pins, MemoryUsagePins)
        return UsageMeter(self.pins, self.pins, self.clock)

    def archived(self) -> Pin:
        """alice's archived request, its piece's padded size recorded as the archiver records it."""
        pin = self.archived_request()
        stored = self.pins.get(pin.tenant_id, pin.created_ms)
        assert stored is not None
        return self.pins.update(stored, info={**stored.info, "padded_piece_size": str(PIECE)})


def metered() -> Metered:
    copies = build()
    fields = {**vars(copies), "pins": MemoryUsagePins(copies.clock)}
    return Metered(**fields)


def test_filecoin_bytes_follow_the_copies_proving():
    # given alice's archived request of a 128-byte piece, wanting the stage's 2 copies
    world = metered()
    pin = world.archived()
    assert world.meter.usage("alice").filecoin_bytes == 0
    # when both copies prove and the tracker shows them
    world.settle()
    # then she has 2 x 128 bytes in Filecoin, now and at the month's end so far
    assert world.info(pin)["filecoin_copies"] == "2/2"
    usage = world.meter.usage("alice")
    assert usage.filecoin_bytes == 2 * PIECE
    assert usage.filecoin_month is not None and usage.filecoin_month.ending == 2 * PIECE
    assert usage.as_dict()["filecoin_bytes"] == 2 * PIECE
    # and once the request is deleted, none (folded or not)
    stored = world.pins.get("alice", pin.created_ms)
    assert stored is not None
    world.pins.delete(stored, OutboxMessage("shard#0", f"{pin.created_ms}#d", "{}", pin.created_ms))
    assert world.meter.usage("alice").filecoin_bytes == 0
    assert isinstance(world.pins, MemoryUsagePins)
    world.pins.fold()
    assert world.meter.usage("alice", Month.of_ms(world.clock.ms)).filecoin_bytes == 0


def test_a_plan_lowered_later_caps_the_copies_and_says_so():
    # given alice's archived request with its 2 copies proving
    world = metered()
    pin = world.archived()
    world.settle()
    assert len(world.live()) == 2
    # when her plan lowers her filecoin_copies quota to 1, and the CID's next check comes
    world.quotas["alice"] = 1
    world.clock.advance(world.settings.check_seconds)
    world.settle()
    # then one copy is left, her request shows 1/1 and why, and her Filecoin bytes are one piece's
    assert len(world.live()) == 1
    info = world.info(pin)
    assert info["filecoin_copies"] == "1/1"
    assert info["filecoin_quota"] == "2 copies asked, capped at 1 by the plan's filecoin_copies quota"
    assert world.meter.usage("alice").filecoin_bytes == PIECE
    # and raised again, the request wants its 2 again and the note goes
    del world.quotas["alice"]
    world.clock.advance(world.settings.check_seconds)
    world.run()
    info = world.info(pin)
    assert info["filecoin_copies"] == "1/2" and "filecoin_quota" not in info
