"""A copy's life with the fakes: store, mined, proven; a retried store; end."""

from __future__ import annotations

from chalicelib.filecoin.backend import CopyState, Provider
from chalicelib.filecoin.pdp.backend import PdpBackend
from devstack.fake_chain import FakeChain
from devstack.fake_pdp_provider import FakePdpProvider
from tests.filecoin.pdp.conftest import later, make_piece

DATA = b"a pinned DAG's CAR, or near enough " * 300


def test_the_registry_lists_the_fake_providers_with_their_url_and_region(
    backend: PdpBackend, providers: list[FakePdpProvider]
) -> None:
    # Given two fake providers registered on the chain
    # When the backend lists providers
    listed = backend.providers()
    # Then both are there with the registry's service URL and location
    assert [(p.name, p.service_url, p.region) for p in listed] == [
        ("sp-eu", providers[0].url, "EU"),
        ("sp-us", providers[1].url, "US"),
    ]


def test_a_stored_piece_is_adding_until_mined_and_proven_then_proving(
    backend: PdpBackend, chain: FakeChain, providers: list[FakePdpProvider], provider: Provider
) -> None:
    piece, data = make_piece(DATA)
    # When the piece is stored with a provider the wallet has no data set with
    receipt = backend.store(provider, piece, data, later())
    # Then it is uploaded and submitted with a new data set: ADDING, with the transaction
    assert receipt.state == CopyState.ADDING
    assert receipt.data_set_id is None and len(receipt.transactions) == 1
    assert piece.piece_cid in providers[0].parked
    # And it stays ADDING while the transaction is pending
    assert backend.follow(receipt).detail == "transaction pending"
    # When the transaction is mined
    chain.advance()
    mined = backend.follow(receipt)
    # Then the ids come from the provider's status routes, and it waits for its first proof
    assert (mined.state, mined.data_set_id, mined.piece_id) == (CopyState.ADDING, "1", "0")
    # When the provider proves the data set at its challenge epoch
    chain.advance(chain.challenge_window)
    proving = backend.follow(mined)
    # Then the copy is PROVING, with the epoch of the proof
    assert proving.state == CopyState.PROVING
    assert proving.last_proven_epoch == chain.data_sets[1].last_proven_epoch


def test_a_second_piece_goes_into_the_existing_data_set(
    backend: PdpBackend, chain: FakeChain, provider: Provider
) -> None:
    # Given a first piece's copy mined in a new data set
    first = backend.store(provider, *make_piece(DATA), later())
    chain.advance()
    # When another piece is stored with the same provider
    second = backend.store(provider, *make_piece(DATA + b"more"), later())
    chain.advance()
    # Then it is added to that data set (no second one), under the next piece id
    assert second.data_set_id == "1"
    assert (backend.follow(first).piece_id, backend.follow(second).piece_id) == ("0", "1")
    assert list(chain.data_sets) == [1]


def test_a_retried_store_makes_no_second_copy(
    backend: PdpBackend, chain: FakeChain, providers: list[FakePdpProvider], provider: Provider
) -> None:
    # Given a piece stored and mined
    piece, data = make_piece(DATA)
    backend.store(provider, piece, data, later())
    chain.advance()
    uploads = providers[0].requests.count(("POST", "/pdp/piece/uploads"))
    # When the same store is retried (its caller lost the receipt)
    again = backend.store(provider, piece, data, later())
    # Then it finds the copy on chain: same ids, no upload, no transaction, one piece on chain
    assert (again.data_set_id, again.piece_id, again.transactions) == ("1", "0", ())
    assert providers[0].requests.count(("POST", "/pdp/piece/uploads")) == uploads
    assert len(chain.transactions) == 1 and len(chain.data_sets[1].pieces) == 1


def test_a_store_retried_while_its_transaction_is_pending_reverts_and_adopts_the_first(
    backend: PdpBackend, chain: FakeChain, provider: Provider
) -> None:
    # Given a piece stored, its transaction not mined yet
    piece, data = make_piece(DATA)
    first = backend.store(provider, piece, data, later())
    # When the store is retried before it is mined (the chain shows nothing yet)
    second = backend.store(provider, piece, data, later())
    chain.advance()
    # Then the second submission, reusing the first's nonces, reverts on chain
    assert chain.transactions[second.transactions[0]].status == 0
    # And following it finds the copy the first made: one copy, not FAILED
    adopted = backend.follow(second)
    assert (adopted.state, adopted.data_set_id, adopted.piece_id) == (CopyState.ADDING, "1", "0")
    assert backend.follow(first).piece_id == "0"
    assert len(chain.data_sets) == 1 and len(chain.data_sets[1].pieces) == 1


def test_end_schedules_the_removal_and_the_piece_leaves_the_data_set(
    backend: PdpBackend, chain: FakeChain, provider: Provider
) -> None:
    # Given a proving copy
    receipt = backend.store(provider, *make_piece(DATA), later())
    chain.advance(1 + chain.challenge_window)
    proving = backend.follow(receipt)
    assert proving.state == CopyState.PROVING
    # When it is ended
    ended = backend.end(proving)
    # Then the removal was submitted through the provider, signed by the wallet
    assert ended.state == CopyState.ENDED and len(ended.transactions) == 2
    chain.advance()
    assert chain.data_sets[1].pieces == {}
    # And an ended copy stays ended
    assert backend.follow(ended).state == CopyState.ENDED
