"""Filecoin copies end to end on the local stack: a pinned request is
archived, 2 copies are made with 2 providers of a fake PDP network and
prove; one provider stops proving, its copy lapses and is ended, and the
third provider makes a new one. The fake network runs in this test's process
(its faults are the test's to drive) on a fast epoch clock and a short proving
period; the stack is told of it as of a real chain (FILECOIN_RPC_URL, a funded
FILECOIN_WALLET_KEY), with a short lapse grace and short check and tracker
intervals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account

from devstack.fake_chain import FakeChain
from devstack.fake_pdp_provider import FakePdpProvider, start_fake_network, stop_fake_network
from devstack.stack import FILECOIN_TRACKER_VAR
from tests.stack.stack_client import Stack, running_stack, wait_until
from tests.support.api import ApiClient

KEY = "0x" + "3f" * 32
EPOCH_SECONDS = 0.1
# A proof every 20 epochs (2 s), not 60: a copy whose provider stops proving
# is seen lapsed 30 epochs (period, window and grace) after its last proof.
PROVING_PERIOD_EPOCHS = 20
CHALLENGE_WINDOW_EPOCHS = 5
PIN_TIMEOUT_S = 60
COPIES_TIMEOUT_S = 120
POLL_S = 0.5
STACK_ENV = {
    "FILECOIN_BACKEND": "pdp",
    "FILECOIN_COPIES": "2",
    "FILECOIN_WALLET_KEY": KEY,
    "FILECOIN_CHECK_SECONDS": "1",
    "FILECOIN_ADDING_CHECK_SECONDS": "1",
    "FILECOIN_LAPSE_GRACE_SECONDS": "1",
    "FILECOIN_PROOF_GRACE_EPOCHS": "5",
    # The tracker every second, not 2: a copy takes a few of its runs to be made, lapse, end and be replaced.
    FILECOIN_TRACKER_VAR: "1",
}


@pytest.fixture(scope="module")
def network() -> Iterator[tuple[FakeChain, list[FakePdpProvider]]]:
    chain, providers = start_fake_network([("sp-a", "DE"), ("sp-b", "US"), ("sp-c", "SG")], EPOCH_SECONDS)
    # Before any data set exists, and before the stack reads the chain's PDP config
    chain.max_proving_period, chain.challenge_window = PROVING_PERIOD_EPOCHS, CHALLENGE_WINDOW_EPOCHS
    chain.fund(Account.from_key(KEY).address, 10**21)
    yield chain, providers
    stop_fake_network(chain, providers)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, network: tuple[FakeChain, list[FakePdpProvider]]
) -> Iterator[Stack]:
    env = {**STACK_ENV, "FILECOIN_RPC_URL": network[0].url}
    with running_stack(tmp_path_factory, [], env) as started:
        yield started


def receipts_until(
    api: ApiClient, request_id: str, done: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """GET the request's receipts until `done` holds; fails with the last ones after COPIES_TIMEOUT_S."""
    seen: dict[str, Any] = {}

    def check(_status: dict[str, Any]) -> bool:
        reply = api.request("GET", f"/pins/{request_id}/receipts")
        assert reply.status == 200, reply.body
        seen.update(reply.json)
        return done(reply.json)

    try:
        wait_until(api, [request_id], check, COPIES_TIMEOUT_S, what)
    except pytest.fail.Exception:
        pytest.fail(f"receipts not {what} within {COPIES_TIMEOUT_S} s: {seen}")
    return seen


def proving_providers(document: dict[str, Any]) -> set[str]:
    return {r["provider_id"] for r in document["receipts"] if r["state"] == "proving"}


def test_copies_prove_with_distinct_providers_and_a_lapsed_one_is_repaired_elsewhere(
    stack: Stack, network: tuple[FakeChain, list[FakePdpProvider]]
) -> None:
    _, providers = network
    # Given content pinned and archived
    cid, _ = stack.content()
    request_id = stack.pin(cid)["requestid"]
    stack.pinned(request_id, PIN_TIMEOUT_S)
    wait_until(stack.api, [request_id], lambda s: s["info"].get("cold") == "archived", PIN_TIMEOUT_S, "archived")

    # When the tracker runs, then 2 copies prove, with 2 distinct providers, each with its receipt
    first = receipts_until(
        stack.api, request_id, lambda d: d["copies_proving"] == 2 and len(proving_providers(d)) == 2, "2 proving"
    )
    assert first["copies_wanted"] == 2
    for receipt in first["receipts"]:
        assert receipt["data_set_id"] and receipt["piece_id"] is not None and receipt["transactions"], receipt
        assert receipt["last_proven_epoch"] is not None and receipt["provider"] in {p.name for p in providers}
    wait_until(stack.api, [request_id], lambda s: s["info"].get("filecoin_copies") == "2/2", 30, "shown 2/2")

    # When one of the two providers stops proving
    stopped_id = sorted(proving_providers(first))[0]
    (stopped,) = [p for p in providers if str(p.provider_id) == stopped_id]
    stopped.stop_proving()

    # Then its copy lapses and is ended, and the third provider's copy proves in its place
    third = {str(p.provider_id) for p in providers} - proving_providers(first)
    repaired = receipts_until(
        stack.api,
        request_id,
        lambda d: (
            d["copies_proving"] == 2 and proving_providers(d) == (proving_providers(first) - {stopped_id}) | third
        ),
        "repaired with the third provider",
    )
    (lapsed,) = [r for r in repaired["receipts"] if r["provider_id"] == stopped_id]
    assert lapsed["state"] == "ended" and lapsed["detail"].startswith("lapsed"), lapsed
    # And the request itself stays pinned, its info showing the copies
    final = wait_until(stack.api, [request_id], lambda s: s["info"].get("filecoin") == "proving", 30, "proving")
    assert final[request_id]["status"] == "pinned"
    assert final[request_id]["info"]["filecoin_copies"] == "2/2"
