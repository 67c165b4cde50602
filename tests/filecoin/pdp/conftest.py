"""A fake chain with two fake PDP providers on loopback, and the PDP backend
pointed at them with a throwaway wallet key. The chain's clock only moves
when a test calls `chain.advance`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chalicelib.cold.commp import commp
from chalicelib.filecoin.backend import Piece, Provider
from chalicelib.filecoin.pdp.backend import PdpBackend, PdpSettings
from devstack.fake_chain import FakeChain
from devstack.fake_pdp_provider import FakePdpProvider, start_fake_network, stop_fake_network

# A throwaway key (never funded anywhere): tests look for it in logs, reprs and errors.
KEY = "0x" + "5e" * 32
ROOT_CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


@dataclass(frozen=True)
class CarBytes:
    """A piece's bytes, streamed in small chunks."""

    data: bytes

    def chunks(self) -> Iterator[bytes]:
        for at in range(0, len(self.data), 4096):
            yield self.data[at : at + 4096]


def make_piece(data: bytes, cid: str = ROOT_CID) -> tuple[Piece, CarBytes]:
    commitment = commp(data)
    piece = Piece(cid, commitment.cid_v2, commitment.cid_v1, commitment.padded_size, len(data))
    return piece, CarBytes(data)


def later() -> float:
    return time.monotonic() + 60


@pytest.fixture
def network() -> Iterator[tuple[FakeChain, list[FakePdpProvider]]]:
    chain, providers = start_fake_network([("sp-eu", "EU"), ("sp-us", "US")])
    yield chain, providers
    stop_fake_network(chain, providers)


@pytest.fixture
def chain(network: tuple[FakeChain, list[FakePdpProvider]]) -> FakeChain:
    return network[0]


@pytest.fixture
def providers(network: tuple[FakeChain, list[FakePdpProvider]]) -> list[FakePdpProvider]:
    return network[1]


@pytest.fixture
def backend(chain: FakeChain, providers: list[FakePdpProvider]) -> PdpBackend:
    return PdpBackend(PdpSettings(chain.network, chain.url, http_timeout=5, rpc_timeout=5), lambda: KEY)


@pytest.fixture
def provider(backend: PdpBackend) -> Provider:
    """The first fake provider as the backend's registry lists it."""
    return backend.providers()[0]
