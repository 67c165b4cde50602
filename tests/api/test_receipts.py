"""GET /pins/{requestid}/receipts: a request's Filecoin copies, wanted and
proving, and every copy of its CID with its receipt, oldest first; read scope;
another tenant's request is 404 as an unknown one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.api.receipts import ProviderNames
from chalicelib.cold.archiver import merge_info
from chalicelib.filecoin.backend import CopyState, Receipt
from chalicelib.filecoin.repository import CopyRecord, Want
from chalicelib.pins.timestamps import format_ms
from tests.api.helpers import assert_failure
from tests.support.cids import cid_v1
from tests.support.memory.filecoin_backend import MemoryBackend

T0 = 1_790_000_000_000


def receipts(api: Any, request_id: str) -> Any:
    return api.request("GET", f"/pins/{request_id}/receipts")


def copy(cid_key: str, provider_id: str, state: CopyState, minute: int, **fields: Any) -> CopyRecord:
    receipt = Receipt(provider_id, "bafkzcib-piece", state, **fields)
    return CopyRecord(cid_key, 0, receipt, T0 + minute * 60_000, T0 + minute * 60_000 + 1)


def test_without_a_backend_a_request_wants_no_copies(api: Any) -> None:
    # Given a request on a stage with Filecoin copies off
    pin = api.pin(cid_v1("no-copies"), meta={"filecoin.copies": "2"})
    # When its receipts are read, then there are none, and copies are off
    reply = receipts(api, pin["requestid"])
    assert reply.status == 200, reply.body
    assert reply.json == {"copies_wanted": 0, "copies_proving": 0, "filecoin": "off", "receipts": []}


def test_every_copy_of_the_cid_is_shown_with_its_receipt_oldest_first(api: Any, services: Any, tenant_id: str) -> None:
    # Given a backend, a request wanting 2 copies and 3 copies of its CID: proving, ended after a lapse, adding
    services.filecoin_backend = MemoryBackend.with_providers("f01", "f02", "f03")
    pin = api.pin(cid_v1("copied"))
    cid_key = services.pins.get(tenant_id, pin["requestid"]).cid_key
    copies = services.filecoin_copies
    copies.want(cid_key, Want(tenant_id, pin["requestid"], 2), T0)
    proving = copy(
        cid_key,
        "f01",
        CopyState.PROVING,
        1,
        data_set_id="7",
        piece_id="3",
        transactions=("0xaa", "0xbb"),
        last_proven_epoch=1200,
        ends_epoch=90000,
    )
    ended = copy(cid_key, "f02", CopyState.ENDED, 2, detail="lapsed for longer than the grace (no proof)")
    adding = copy(cid_key, "f03", CopyState.ADDING, 3, transactions=("0xcc",))
    for version, record in enumerate((proving, ended, adding), start=1):
        assert copies.add_copy(record, version)
    # When its receipts are read
    reply = receipts(api, pin["requestid"])
    # Then it wants 2, 1 proves, and every copy is shown, oldest first, with its provider's name
    assert reply.status == 200, reply.body
    body = reply.json
    assert (body["copies_wanted"], body["copies_proving"], body["filecoin"]) == (2, 1, "pending")
    assert [(r["provider_id"], r["provider"], r["state"]) for r in body["receipts"]] == [
        ("f01", "sp f01", "proving"),
        ("f02", "sp f02", "ended"),
        ("f03", "sp f03", "adding"),
    ]
    assert body["receipts"][0] == {
        "provider_id": "f01",
        "provider": "sp f01",
        "piece_cid": "bafkzcib-piece",
        "state": "proving",
        "data_set_id": "7",
        "piece_id": "3",
        "transactions": ["0xaa", "0xbb"],
        "last_proven_epoch": 1200,
        "ends_epoch": 90000,
        "detail": "",
        "created": format_ms(T0 + 60_000),
        "updated": format_ms(T0 + 60_001),
    }
    assert body["receipts"][1]["detail"].startswith("lapsed")


def test_before_its_archive_a_request_shows_the_copies_it_will_want(api: Any, services: Any) -> None:
    # Given a backend and a request whose meta asks for 3 copies, not archived yet
    services.filecoin_backend = MemoryBackend.with_providers("f01")
    pin = api.pin(cid_v1("not-archived"), meta={"filecoin.copies": "3"})
    # When its receipts are read, then it wants 3, none begun
    reply = receipts(api, pin["requestid"])
    assert reply.json == {"copies_wanted": 3, "copies_proving": 0, "filecoin": "pending", "receipts": []}


def test_the_copies_wanted_are_as_the_tracker_last_showed_them(
    api: Any, services: Any, tenant_id: str, set_status: Callable[[str, str], None]
) -> None:
    # Given a pinned request whose recorded want (3) the tracker showed capped at 2 by its tenant's plan
    services.filecoin_backend = MemoryBackend.with_providers("f01")
    pin = api.pin(cid_v1("capped"))
    set_status(pin["requestid"], "pinned")
    record = services.pins.get(tenant_id, pin["requestid"])
    services.filecoin_copies.want(record.cid_key, Want(tenant_id, pin["requestid"], 3), T0)
    shown = {"filecoin_copies": "0/2", "filecoin": "pending", "filecoin_quota": "3 copies asked, capped at 2"}
    assert merge_info(services.store, tenant_id, record.created_ms, record.request_id, tuple(shown), shown)
    # When its receipts are read, then it wants what the tracker showed
    assert receipts(api, pin["requestid"]).json["copies_wanted"] == 2


def test_another_tenants_request_is_not_found(api: Any, other_tenant: Any) -> None:
    # Given a request of another tenant
    theirs = other_tenant.api.pin(cid_v1("theirs"))
    # When its receipts are read with this tenant's token, then 404 as for an unknown id
    assert_failure(receipts(api, theirs["requestid"]), 404, "NOT_FOUND")
    assert_failure(receipts(api, "01890000-0000-7000-8000-000000000000"), 404, "NOT_FOUND")


def test_a_read_token_may_read_them_a_retrieve_token_may_not(api: Any, services: Any, tenant_id: str) -> None:
    # Given a request and the tenant's read and retrieve tokens
    pin = api.pin(cid_v1("scoped-receipts"))
    reader = api.as_token(services.admin.issue_token(tenant_id, "reader", "read").secret)
    fetcher = api.as_token(services.admin.issue_token(tenant_id, "fetcher", "retrieve").secret)
    # When each reads the receipts, then the read token may, the retrieve token is refused
    assert receipts(reader, pin["requestid"]).status == 200
    assert_failure(receipts(fetcher, pin["requestid"]), 403, "FORBIDDEN")


def test_provider_names_are_read_again_after_their_time_and_kept_when_unreadable() -> None:
    # Given a backend's names read once
    backend = MemoryBackend.with_providers("f01")
    now = [0.0]
    names = ProviderNames(backend, seconds=10, clock=lambda: now[0])
    assert names() == {"f01": "sp f01"}
    # When a provider joins, then it shows only once the names' time passed
    backend.listed = MemoryBackend.with_providers("f01", "f02").listed
    now[0] = 9.0
    assert names() == {"f01": "sp f01"}
    now[0] = 10.0
    assert names() == {"f01": "sp f01", "f02": "sp f02"}
    # And when the registry cannot be read, the last names read are kept
    backend.down = True
    now[0] = 30.0
    assert names() == {"f01": "sp f01", "f02": "sp f02"}
