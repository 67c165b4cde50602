"""The fake provider checks the wallet's signatures, which are the SDK's; funds and cost from the
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


def test_signatures_match_the_python_sdk_for_the_same_key_and_message() -> None:
    # Given the vectors pynapse 0.2.0 (synapse-filecoin-sdk, core/typed_data.py) signs with KEY on
    # calibration: CreateDataSet(9, 0x22..22, [k=v]), AddPieces(9, nonce 12345, [piece], [[ipfsRootCID=bafy]]),
    # SchedulePieceRemovals(9, [3, 4]); ECDSA over secp256k1 is deterministic (RFC 6979)
    piece_cid = "bafkzcibdxamar7boqlrvkexc3akzz72twv7aa2arpvh5kzg26ua2cqfiwqd374zx"
    assert make_piece(b"q" * 5000)[0].piece_cid == piece_cid
    wallet = signing.Wallet(lambda: KEY, FakeChain().network)
    # When the backend's wallet signs the same messages
    create = signing.decode_create_extra(wallet.create_data_set_extra(9, "0x" + "22" * 20, [("k", "v")]))
    add = signing.decode_add_extra(wallet.add_pieces_extra(9, 12345, [piece_cid], [[("ipfsRootCID", "bafy")]]))
    removal = signing.decode_removals_extra(wallet.schedule_removals_extra(9, [3, 4]))
    # Then the signatures are the SDK's, byte for byte
    assert create.signature.hex() == (
        "cc61c67d60d223f43b226c9851ac926ab67f14676586529ca19d4bc0e1b87cdc"
        "36f2d9230e475db97aadabd988a2720b5738020c13ee206e0b4aff1bba7c7e051b"
    )
    assert add.signature.hex() == (
        "7532b07c536a80cc7720cb991085303fc066880db10394dbbd6deda3ba8b2bb7"
        "782f8f0791f5a8009e699504b5fb83e92079ae92dbb1c04c3b80f4deeb7913fa1c"
    )
    assert removal.hex() == (
        "61bb22c32942faa570cb86de2cbd5cba7ad0e587f342fa7992b7b96ac1b4d76b"
        "4ad3b011fe3f7b5e40e2fb4618552b725d7395b233b100abadb195ff7c51377f1c"
    )
