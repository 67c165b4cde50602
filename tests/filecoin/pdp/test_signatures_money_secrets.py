"""The fake provider checks the wallet's signatures; funds and cost from the
chain; the wallet key never shows in logs, reprs or errors."""

from __future__ import annotations

import logging
import traceback

import pytest
import requests
from eth_abi.abi import encode

from chalicelib.filecoin.backend import BackendUnavailable, CopyRefused, CopyState, Provider
from chalicelib.filecoin.pdp import signing
from chalicelib.filecoin.pdp.backend import PdpBackend, PdpSettings
from chalicelib.filecoin.pdp.provider_api import ProviderApi
from devstack.fake_chain import EPOCHS_PER_MONTH, FakeChain
from devstack.fake_pdp_provider import FakePdpProvider
from tests.filecoin.pdp.conftest import KEY, later, make_piece

DATA = b"bytes of a CAR for signatures and money " * 200
OTHER_KEY = "0x" + "7a" * 32


def create_and_add(chain: FakeChain, fake: FakePdpProvider, piece_cid: str, key: str, payer: str) -> str:
    """Submits create-and-add to the fake provider with `key` signing for `payer`."""
    wallet = signing.Wallet(lambda: key, chain.network)
    payee = chain.providers[fake.provider_id].payee
    create_signature = signing.decode_create_extra(wallet.create_data_set_extra(7, payee, [])).signature
    add = wallet.add_pieces_extra(7, 11, [piece_cid], [[]])
    create = encode(signing.CREATE_EXTRA, [payer, 7, [], [], create_signature])
    extra = encode(signing.CREATE_AND_ADD_EXTRA, [create, add])
    return ProviderApi(fake.url, requests.Session(), 5).create_and_add(chain.network.fwss, extra, piece_cid)


def test_the_fake_provider_refuses_an_authorisation_not_signed_by_the_payer(
    chain: FakeChain, providers: list[FakePdpProvider]
) -> None:
    piece, data = make_piece(DATA)
    api = ProviderApi(providers[0].url, requests.Session(), 5)
    api.upload(piece.piece_cid, data.chunks())
    payer = signing.Wallet(lambda: KEY, chain.network).address
    # When another key signs for the payer, the provider refuses it (400), and nothing is submitted
    with pytest.raises(CopyRefused, match="400 CreateDataSet: signed by"):
        create_and_add(chain, providers[0], piece.piece_cid, OTHER_KEY, payer)
    assert chain.transactions == {}
    # And the payer's own signature is accepted (the check is not a blanket refusal)
    assert create_and_add(chain, providers[0], piece.piece_cid, KEY, payer) in chain.transactions


def test_funds_come_from_filecoin_pay_with_the_runway_of_the_lockup_rate(
    backend: PdpBackend, chain: FakeChain, provider: Provider
) -> None:
    payer = signing.Wallet(lambda: KEY, chain.network).address
    # Given a funded wallet with a lockup rate, and one piece held
    chain.fund(payer, 10**18, lockup_rate=10**12)
    backend.store(provider, *make_piece(DATA), later())
    chain.advance()
    locked = chain.locked(payer)
    assert locked > 0
    # When the funds are read
    funds = backend.funds()
    # Then available is what the held copies do not lock, and the runway follows the rate
    assert (funds.available, funds.locked) == (10**18 - locked, locked)
    assert funds.runway_epochs == (10**18 - locked) // 10**12


def test_funds_without_a_lockup_rate_have_no_runway(backend: PdpBackend, chain: FakeChain) -> None:
    chain.fund(signing.Wallet(lambda: KEY, chain.network).address, 5 * 10**18)
    assert backend.funds().runway_epochs is None
    assert backend.funds().available == 5 * 10**18


def test_the_cost_per_epoch_is_the_piece_share_of_the_price_per_tib_month(backend: PdpBackend) -> None:
    piece, _ = make_piece(DATA)
    # A 1 TiB piece costs the price per TiB-month spread over a month's epochs, rounded up
    tib = piece.__class__(piece.cid, piece.piece_cid, piece.piece_cid_v1, 1 << 40, 1 << 39)
    price = 2_500_000_000_000_000_000
    assert backend.cost_per_epoch(tib) == -(-price // EPOCHS_PER_MONTH)
    # And a small piece costs its share, never nothing
    assert backend.cost_per_epoch(piece) == -(-piece.padded_size * price // ((1 << 40) * EPOCHS_PER_MONTH))
    assert backend.cost_per_epoch(piece) > 0


def test_the_key_never_shows_in_logs_reprs_or_errors(
    chain: FakeChain, providers: list[FakePdpProvider], caplog: pytest.LogCaptureFixture
) -> None:
    secrets = (KEY, KEY.removeprefix("0x"))
    caplog.set_level(logging.DEBUG)
    backend = PdpBackend(PdpSettings(chain.network, chain.url, http_timeout=5), lambda: KEY)
    provider = backend.providers()[0]
    # Given a copy stored, proven and ended, with every logger at DEBUG
    receipt = backend.store(provider, *make_piece(DATA), later())
    chain.advance(1 + chain.challenge_window)
    ended = backend.end(backend.follow(receipt))
    assert ended.state == CopyState.ENDED
    # Then the key is in no log record, nor in the backend's repr
    assert caplog.records and not any(secret in caplog.text for secret in secrets)
    assert not any(secret in repr(backend) for secret in secrets)
    # When a key that is not a key (a secret all the same) is used
    broken = "0xnot-a-key-" + KEY.removeprefix("0x")
    bad = PdpBackend(PdpSettings(chain.network, chain.url, http_timeout=5), lambda: broken)
    with pytest.raises(BackendUnavailable) as raised:
        bad.store(provider, *make_piece(DATA + b"x"), later())
    # Then the error, its traceback and its chain carry none of it
    shown = "".join(traceback.format_exception(raised.value)) + repr(raised.value) + repr(bad)
    assert "could not be read" in shown
    assert broken not in shown and not any(secret in shown for secret in secrets)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
