"""The PDP backend as the wiring builds it from the stage's settings: off by
default, PDP on the network and RPC URL configured, the wallet key read from
Secrets Manager at the first signature, once per container, and never shown."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest

import chalicelib.config as config
import chalicelib.wiring as wiring
from chalicelib.config import Settings
from chalicelib.filecoin.backend import BackendUnavailable, CopyState
from chalicelib.filecoin.pdp.backend import PdpBackend
from chalicelib.wiring import PUBLIC_RPC_URLS, build_services
from devstack.fake_chain import FakeChain
from devstack.fake_pdp_provider import FakePdpProvider, start_fake_network, stop_fake_network
from tests.filecoin.pdp.conftest import later, make_piece

# A throwaway key (funded only on the fake chain).
KEY = "0x" + "7c" * 32


@pytest.fixture
def network() -> Iterator[tuple[FakeChain, list[FakePdpProvider]]]:
    chain, providers = start_fake_network([("sp-eu", "EU")])
    yield chain, providers
    stop_fake_network(chain, providers)


def secret(value: str) -> str:
    created = boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name="wallet", SecretString=value)
    return str(created["ARN"])


def pdp_settings(settings: Settings, chain: FakeChain, arn: str) -> Settings:
    return replace(
        settings,
        filecoin_backend="pdp",
        filecoin_network="calibration",
        filecoin_rpc_url=chain.url,
        filecoin_wallet_secret_arn=arn,
    )


def test_without_filecoin_backend_there_is_none(settings: Settings) -> None:
    # Given the defaults, when the backend is asked for, then there is none (copies off)
    assert Settings().filecoin_backend == "off"
    assert build_services(settings).filecoin_backend is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"filecoin_backend": "boost"}, "FILECOIN_BACKEND"), ({"filecoin_network": "devnet"}, "FILECOIN_NETWORK")],
)
def test_an_unknown_backend_or_network_is_refused_by_name(
    settings: Settings, changes: dict[str, str], named: str
) -> None:
    # Given a stage naming a backend or a network there is none of
    staged = Settings.from_env({"FILECOIN_BACKEND": "pdp", **{name.upper(): value for name, value in changes.items()}})
    # When the backend is built, then the error names the setting
    with pytest.raises(ValueError, match=named):
        build_services(staged).filecoin_backend  # noqa: B018


def test_the_network_public_rpc_is_used_unless_one_is_set(settings: Settings) -> None:
    # Given PDP on calibration without an RPC URL
    services = build_services(replace(settings, filecoin_backend="pdp", filecoin_network="calibration"))
    # When the backend is built, then it reads calibration's public endpoint, no key read yet
    backend = services.filecoin_backend
    assert isinstance(backend, PdpBackend)
    assert PUBLIC_RPC_URLS["calibration"] in repr(backend) and "calibration" in repr(backend)
    assert services._wallet_key is None


def test_the_key_is_read_once_at_the_first_signature_and_never_shown(
    settings: Settings,
    network: tuple[FakeChain, list[FakePdpProvider]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain, _ = network
    from eth_account import Account

    chain.fund(Account.from_key(KEY).address, 10**20)
    reads: list[str] = []
    read_secret = config.read_secret

    def counted(staged: Settings, arn: str) -> str:
        reads.append(arn)
        return read_secret(staged, arn)

    monkeypatch.setattr(wiring, "read_secret", counted)
    # Given a stage with PDP and the wallet key in Secrets Manager
    arn = secret(KEY)
    caplog.set_level(logging.DEBUG)  # from here: the test's own CreateSecret logs it
    services = build_services(pdp_settings(settings, chain, arn))
    backend = services.filecoin_backend
    assert backend is not None
    assert reads == []  # built without the key
    # When two copies are stored (each signs)
    (provider,) = backend.providers()
    for content in (b"a" * 300, b"b" * 300):
        piece, data = make_piece(content)
        assert backend.store(provider, piece, data, later()).state is CopyState.ADDING
    # Then the secret was read once, and the key is in no log line nor repr
    assert reads == [arn]
    assert KEY not in caplog.text and KEY[2:] not in caplog.text
    assert KEY[2:] not in repr(backend) and KEY[2:] not in repr(services.__dict__)


def test_a_bad_key_fails_without_saying_it(
    settings: Settings, network: tuple[FakeChain, list[FakePdpProvider]], caplog: pytest.LogCaptureFixture
) -> None:
    chain, _ = network
    # Given a secret that is not a key
    wrong = "not-a-key-" + "9d" * 20
    services = build_services(pdp_settings(settings, chain, secret(wrong)))
    caplog.set_level(logging.DEBUG)
    backend = services.filecoin_backend
    assert backend is not None
    (provider,) = backend.providers()
    piece, data = make_piece(b"c" * 300)
    # When a copy is stored, then the backend is unavailable, and nothing shows the secret
    with pytest.raises(BackendUnavailable) as raised:
        backend.store(provider, piece, data, later())
    shown = "".join(traceback.format_exception(raised.value)) + caplog.text
    assert "could not" in shown and wrong not in shown and "9d9d9d" not in shown


def test_without_a_key_anywhere_a_signature_fails_as_unavailable(
    settings: Settings, network: tuple[FakeChain, list[FakePdpProvider]]
) -> None:
    chain, _ = network
    # Given PDP with neither a secret nor a key
    services = build_services(replace(pdp_settings(settings, chain, ""), filecoin_wallet_secret_arn=None))
    backend = services.filecoin_backend
    assert backend is not None
    (provider,) = backend.providers()
    piece, data = make_piece(b"d" * 300)
    # When a copy is stored, then it fails as the backend unavailable (tried again later)
    with pytest.raises(BackendUnavailable):
        backend.store(provider, piece, data, later())
