"""Each fault of the fakes, injected by a method call, and what the backend makes of it."""

from __future__ import annotations

import time

import pytest

from chalicelib.filecoin.backend import BackendUnavailable, CopyRefused, CopyState, Piece, Provider, Receipt
from chalicelib.filecoin.pdp.backend import PdpBackend
from chalicelib.filecoin.pdp.contracts import MAX_UPLOAD_BYTES
from devstack.fake_chain import FakeChain
from devstack.fake_pdp_provider import FakePdpProvider
from tests.filecoin.pdp.conftest import later, make_piece

DATA = b"bytes of a CAR for the fault tests " * 200


def proving_copy(backend: PdpBackend, chain: FakeChain, provider: Provider) -> Receipt:
    receipt = backend.store(provider, *make_piece(DATA), later())
    chain.advance(1 + chain.challenge_window)
    proving = backend.follow(receipt)
    assert proving.state == CopyState.PROVING
    return proving


def test_a_provider_refusing_the_piece_is_a_refusal(
    backend: PdpBackend, chain: FakeChain, providers: list[FakePdpProvider], provider: Provider
) -> None:
    # Given a provider that refuses new pieces
    providers[0].refuse(403, "not accepting new pieces")
    # When a piece is stored with it
    with pytest.raises(CopyRefused, match="403 not accepting new pieces"):
        backend.store(provider, *make_piece(DATA), later())
    # Then nothing was submitted to the chain
    assert chain.transactions == {}


def test_a_cut_upload_is_unavailable_and_a_retry_completes_it(
    backend: PdpBackend, chain: FakeChain, providers: list[FakePdpProvider], provider: Provider
) -> None:
    piece, data = make_piece(DATA)
    # Given a provider that drops uploads after 1000 bytes
    providers[0].cut_uploads(1000)
    # When the piece is stored
    with pytest.raises(BackendUnavailable):
        backend.store(provider, piece, data, later())
    # Then the provider holds nothing and nothing was submitted
    assert piece.piece_cid not in providers[0].parked and chain.transactions == {}
    # When the connection holds again, a retry uploads the piece and submits it
    providers[0].cut_uploads(None)
    assert backend.store(provider, piece, data, later()).state == CopyState.ADDING
    assert piece.piece_cid in providers[0].parked


def test_a_reverted_transaction_fails_the_copy(backend: PdpBackend, chain: FakeChain, provider: Provider) -> None:
    # Given the next transaction mined reverts
    chain.revert_next()
    receipt = backend.store(provider, *make_piece(DATA), later())
    # When it is mined and the copy followed
    chain.advance()
    failed = backend.follow(receipt)
    # Then the copy FAILED, saying which transaction reverted
    assert failed.state == CopyState.FAILED
    assert receipt.transactions[0] in failed.detail


def test_a_provider_that_stops_proving_lapses_and_recovers_when_it_proves_again(
    backend: PdpBackend, chain: FakeChain, providers: list[FakePdpProvider], provider: Provider
) -> None:
    proving = proving_copy(backend, chain, provider)
    # Given the provider stops proving
    providers[0].stop_proving()
    # When the proving period, the challenge window and the grace pass without a proof
    chain.advance(chain.max_proving_period + chain.challenge_window + 60)
    # Then the copy is still PROVING right up to its deadline
    assert backend.follow(proving).state == CopyState.PROVING
    # And LAPSED one epoch later
    chain.advance()
    lapsed = backend.follow(proving)
    assert lapsed.state == CopyState.LAPSED
    # When the provider proves again, the copy is PROVING again
    providers[0].resume_proving()
    chain.advance()
    assert backend.follow(lapsed).state == CopyState.PROVING


def test_a_terminated_data_set_service_terminates_the_copy(
    backend: PdpBackend, chain: FakeChain, provider: Provider
) -> None:
    proving = proving_copy(backend, chain, provider)
    # Given the data set's service is terminated (its payment rail ends)
    chain.terminate(int(proving.data_set_id or 0))
    # When the copy is followed
    terminated = backend.follow(proving)
    # Then it is TERMINATED, with the epoch its service ends
    assert terminated.state == CopyState.TERMINATED
    assert terminated.ends_epoch == chain.data_sets[1].pdp_end_epoch


def test_the_chain_rpc_down_is_unavailable_everywhere(
    backend: PdpBackend, chain: FakeChain, provider: Provider
) -> None:
    receipt = backend.store(provider, *make_piece(DATA), later())
    # Given the chain's RPC answers 503
    chain.set_down(True)
    # Then following, listing, funds and storing are unavailable (try later), not refusals
    for attempt in (
        lambda: backend.follow(receipt),
        backend.providers,
        backend.funds,
        lambda: backend.store(provider, *make_piece(DATA + b"x"), later()),
    ):
        with pytest.raises(BackendUnavailable, match="HTTP 503"):
            attempt()
    # When it is back, the copy is followed again
    chain.set_down(False)
    assert backend.follow(receipt).state == CopyState.ADDING


def test_a_piece_too_large_for_pdp_is_refused_before_any_upload(
    backend: PdpBackend, providers: list[FakePdpProvider], provider: Provider
) -> None:
    piece, data = make_piece(DATA)
    # Given a piece larger than a PDP upload can be
    huge = Piece(piece.cid, piece.piece_cid, piece.piece_cid_v1, 1 << 31, MAX_UPLOAD_BYTES + 1)
    # When it is stored, it is refused without a request to the provider
    with pytest.raises(CopyRefused, match="too large"):
        backend.store(provider, huge, data, later())
    assert providers[0].requests == []


def test_a_provider_answering_garbage_is_unavailable(
    backend: PdpBackend, providers: list[FakePdpProvider], provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a provider whose find-piece answers 200 with a body that is not JSON
    monkeypatch.setattr(providers[0], "find_piece", lambda query: (200, "<html>busy</html>"))
    # When a piece is stored with it, the copy is unavailable (try later), not refused
    with pytest.raises(BackendUnavailable, match="not JSON"):
        backend.store(provider, *make_piece(DATA), later())


def test_a_store_past_its_deadline_uploads_nothing(
    backend: PdpBackend, chain: FakeChain, providers: list[FakePdpProvider], provider: Provider
) -> None:
    # Given a deadline already passed
    # When a piece is stored, it is unavailable (try later) and nothing reaches the provider's upload
    with pytest.raises(BackendUnavailable, match="deadline passed"):
        backend.store(provider, *make_piece(DATA), time.monotonic() - 1)
    assert ("POST", "/pdp/piece/uploads") not in providers[0].requests and chain.transactions == {}


def test_a_copy_whose_provider_left_the_registry_is_followed_from_the_chain(
    backend: PdpBackend, chain: FakeChain, providers: list[FakePdpProvider], provider: Provider
) -> None:
    # Given a piece submitted, then its provider deregistered before the transaction was mined
    receipt = backend.store(provider, *make_piece(DATA), later())
    chain.providers[providers[0].provider_id].active = False
    backend.providers()
    chain.advance()
    # When the copy is followed, its ids come from FWSS's record of its nonce
    followed = backend.follow(receipt)
    # Then it is on chain with its data set and piece ids, waiting for its first proof
    assert (followed.state, followed.data_set_id, followed.piece_id) == (CopyState.ADDING, "1", "0")


def test_a_transaction_replaced_by_fee_is_followed_under_the_hash_that_landed(
    backend: PdpBackend, chain: FakeChain, provider: Provider
) -> None:
    # Given the provider's transaction lands under another hash (replace-by-fee)
    chain.replace_next_by_fee()
    receipt = backend.store(provider, *make_piece(DATA), later())
    chain.advance()
    assert chain.answer("eth_getTransactionReceipt", [receipt.transactions[0]]) is None
    # When the copy is followed
    followed = backend.follow(receipt)
    # Then the replacement is found through the provider's status and recorded after the submitted hash
    replacement = chain.transactions[receipt.transactions[0]].confirmed_hash
    assert followed.transactions == (receipt.transactions[0], replacement)
    assert (followed.state, followed.data_set_id, followed.piece_id) == (CopyState.ADDING, "1", "0")
    # And it goes on to PROVING like any other
    chain.advance(chain.challenge_window)
    assert backend.follow(followed).state == CopyState.PROVING
