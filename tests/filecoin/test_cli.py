"""`cli.admin tenants filecoin` (a tenant's own copies) and `tenants filecoin-existing` (applied to requests
archived already), against emulated DynamoDB (moto)."""

from __future__ import annotations

import pytest

from chalicelib.cold.archive_repository import ArchivedCar, ArchiveHolder, ArchiveLease
from chalicelib.config import Settings
from chalicelib.filecoin.repository import Want
from chalicelib.filecoin.wanted import WantedCopies
from chalicelib.pins.cids import parse_cid
from chalicelib.pins.model import PinRequest
from chalicelib.pins.pin import Pin
from chalicelib.storage.archive_repository import DynamoArchiveRepository
from chalicelib.storage.filecoin_repository import DynamoCopyRepository
from chalicelib.storage.filecoin_tenants import DynamoTenantCopies
from chalicelib.wiring import Services
from tests.cli.test_admin_cli import run, run_json
from tests.support.memory.filecoin_backend import MemoryBackend

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def wanted(settings: Settings) -> WantedCopies:
    """What the archiver would read, on the tables the CLI wrote (stage: 2)."""
    return WantedCopies(DynamoTenantCopies(), stage_copies=2)


def test_a_tenant_set_to_n_copies_wants_n_until_it_follows_the_stage_again(settings: Settings) -> None:
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    # When the tenant is given 3 copies, then its requests want 3
    shown = run_json("tenants", "filecoin", tenant_id, "--copies", "3")
    assert (shown["filecoin_copies"], shown["filecoin_source"]) == (3, "tenant")
    assert wanted(settings).of_request(tenant_id, {}) == 3
    # When it follows the stage again, then the stage's
    result = run("tenants", "filecoin", tenant_id, "--default")
    assert result.exit_code == 0
    assert result.stdout == f"tenant {tenant_id}: Filecoin copies 0 (stage)\n"
    assert wanted(settings).of_request(tenant_id, {}) == 2


def test_bad_uses_are_one_line_errors(settings: Settings) -> None:
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    for args, fragment in [
        ((tenant_id,), "give --copies N or --default"),
        ((tenant_id, "--copies", "2", "--default"), "give --copies N or --default"),
        ((tenant_id, "--copies", "11"), "from 0 to 10"),
        (("tn_nobody", "--copies", "1"), "unknown tenant 'tn_nobody'"),
    ]:
        result = run("tenants", "filecoin", *args)
        assert result.exit_code == 1, args
        assert fragment in result.stderr
    assert DynamoTenantCopies().copies_of(tenant_id) is None


def archived_pin(services: Services, tenant_id: str) -> Pin:
    """A pinned request of the tenant whose CID is archived, as the archiver leaves it."""
    record = services.pins.create(tenant_id, PinRequest(parse_cid(CID)))
    pinned = services.store.update(services.store.get(tenant_id, record.created_ms), status="pinned")
    archives = DynamoArchiveRepository(services.dynamo)
    archives.hold(ArchiveHolder(pinned.cid_key, tenant_id, pinned.request_id))
    archives.take_lease(pinned.cid_key, ArchiveLease("m", 2**40), 0)
    car = ArchivedCar("archives/c.car", "archives/c.idx", 10, "ab", "baga", "bafkzcib", 128, 1)
    assert archives.record_archived(pinned.cid_key, "m", car)
    return pinned


def test_existing_archived_requests_get_the_copies_their_tenant_wants_now(
    settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stage with a Filecoin backend, and alice's request archived before she was given 3 copies
    backend = MemoryBackend.with_providers("f01")
    monkeypatch.setattr(Services, "filecoin_backend", property(lambda self: backend))
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    pin = archived_pin(services, tenant_id)
    run_json("tenants", "filecoin", tenant_id, "--copies", "3")
    assert DynamoCopyRepository(services.dynamo).records(pin.cid_key).wants == []

    # When the copies are applied to her existing requests
    shown = run_json("tenants", "filecoin-existing", tenant_id)

    # Then her archived request wants 3 copies, which the tracker makes at its next visit
    assert shown == [{"tenant_id": tenant_id, "pinned": 1, "archived": 1}]
    assert DynamoCopyRepository(services.dynamo).records(pin.cid_key).wants == [Want(tenant_id, pin.request_id, 3)]
    # and every tenant is applied when none is named
    table = run("tenants", "filecoin-existing")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[1].split() == [tenant_id, "1", "1"]


def test_applying_to_existing_requests_needs_a_backend_and_known_tenants(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    # When Filecoin is off on the stage, then it says so
    off = run("tenants", "filecoin-existing", tenant_id)
    assert off.exit_code == 1 and "Filecoin copies are off on this stage" in off.stderr
    # When a tenant named is unknown, then nothing is applied
    monkeypatch.setattr(Services, "filecoin_backend", property(lambda self: MemoryBackend.with_providers("f01")))
    unknown = run("tenants", "filecoin-existing", tenant_id, "tn_nobody")
    assert unknown.exit_code == 1 and "unknown tenant 'tn_nobody'" in unknown.stderr
