"""A fake Filecoin chain for the PDP backend: a JSON-RPC server on 127.0.0.1
answering what chalicelib.filecoin.pdp reads (eth_blockNumber, eth_chainId,
eth_getTransactionReceipt, eth_call of the view functions in
chalicelib.filecoin.pdp.contracts.CALLS, ABI-encoded with eth-abi), and
holding the state those calls read: the provider registry, data sets and
their pieces, proofs, FWSS's replay-protection nonces, Filecoin Pay funds.

Use:
    chain = FakeChain()                 # calibration's addresses and chain id
    url = chain.start()                 # http://127.0.0.1:<port>/rpc/v1
    chain.fund(payer, 10**21)           # USDFC in Filecoin Pay
    chain.advance(epochs)               # mines pending transactions, runs provers
    chain.stop()
`start(epoch_seconds=...)` also advances the chain on a timer (for `make
dev`); tests leave it off and call `advance`, so every step is theirs.

Transactions come from fake providers (devstack.fake_pdp_provider), which
call `submit_*` in-process as Curio sends them to the chain; each is mined
at the next epoch with the effects FWSS and PDPVerifier would have (a used
nonce or clientDataSetId reverts it, as FWSS's replay protection does).
Proofs come from the providers too (`prove`), on their schedule.

Faults (deterministic, by method): `set_down(True)` answers every RPC with
HTTP 503; `revert_next()` makes the next mined transaction revert;
`replace_next_by_fee()` makes it land under another hash (Curio's
replace-by-fee: the submitted hash never gets a receipt);
`terminate(data_set_id)` ends a data set's service (pdpEndEpoch set, as when
its payment rail is terminated).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eth_abi.abi import decode, encode

from chalicelib.cold.commp import decode_piece_cid_v2
from chalicelib.filecoin.pdp.contracts import CALIBRATION, CALLS, FOREVER, Network
from chalicelib.filecoin.pdp.rpc import selector
from chalicelib.filecoin.pdp.signing import piece_cid_text

_TIB = 1 << 40
# FWSS's price list (FilOzone/filecoin-services service_contracts/src/lib/PriceListUSDFC.sol):
# 2.5 USDFC (18 decimals) per TiB-month, a month of 86,400 epochs, 30 days of rate locked up.
DEFAULT_PRICE_PER_TIB_MONTH = 2_500_000_000_000_000_000
EPOCHS_PER_MONTH = 86_400
LOCKUP_EPOCHS = 86_400


@dataclass
class ProviderRecord:
    provider_id: int
    name: str
    service_url: str
    address: str
    payee: str
    location: str
    max_piece_bytes: int = 1 << 30
    active: bool = True


@dataclass
class DataSet:
    data_set_id: int
    provider_id: int
    payer: str
    payee: str
    client_data_set_id: int
    pieces: dict[int, bytes] = field(default_factory=dict)  # live piece id -> binary piece CID
    next_piece_id: int = 0
    live: bool = True
    last_proven_epoch: int = 0
    next_challenge_epoch: int = 0
    pdp_end_epoch: int = 0


@dataclass
class Transaction:
    tx_hash: str
    apply: Callable[[], None]
    status: int | None = None  # None while pending, then 1 (success) or 0 (reverted)
    block: int | None = None
    # Set when the provider replaced it by fee: the hash that landed (this one never does).
    confirmed_hash: str | None = None
    data_set_id: int | None = None
    piece_ids: tuple[int, ...] = ()


@dataclass
class _Account:
    funds: int = 0
    lockup_rate: int = 0


class Reverted(Exception):
    """What a contract's require() would do: the transaction reverts, nothing changes."""


class FakeChain:
    """See the module docstring."""

    def __init__(
        self,
        network: Network = CALIBRATION,
        *,
        epoch: int = 1_000,
        max_proving_period: int = 60,
        challenge_window: int = 10,
        price_per_tib_month: int = DEFAULT_PRICE_PER_TIB_MONTH,
    ):
        self.network = network
        self.epoch = epoch
        self.max_proving_period = max_proving_period
        self.challenge_window = challenge_window
        self.price_per_tib_month = price_per_tib_month
        self.providers: dict[int, ProviderRecord] = {}
        self.data_sets: dict[int, DataSet] = {}
        self.transactions: dict[str, Transaction] = {}
        self.nonces: dict[tuple[str, int], int] = {}
        self.accounts: dict[str, _Account] = {}
        self.calls: list[str] = []  # eth_call names and other methods, in order
        self._lock = threading.RLock()
        self._pending: list[Transaction] = []
        self._provers: list[Callable[[int], None]] = []
        self._tx_counter = itertools.count(1)
        self._data_set_ids = itertools.count(1)
        self._down = False
        self._revert_next = False
        self._replace_next = False
        self._server: ThreadingHTTPServer | None = None
        self._ticker: threading.Event | None = None
        self._views = {
            (getattr(network, call.contract).lower(), selector(call.signature)): name for name, call in CALLS.items()
        }

    # -- server ----------------------------------------------------------------

    def start(self, epoch_seconds: float | None = None) -> str:
        """Serves JSON-RPC on a free loopback port; with `epoch_seconds`, one epoch passes every so often."""
        chain = self

        class Handler(_RpcHandler):
            pass

        Handler.chain = chain
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        if epoch_seconds is not None:
            self._ticker = threading.Event()
            threading.Thread(target=self._tick, args=(epoch_seconds, self._ticker), daemon=True).start()
        return self.url

    def _tick(self, seconds: float, stop: threading.Event) -> None:
        while not stop.wait(seconds):
            self.advance()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/rpc/v1"

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- faults ----------------------------------------------------------------

    def set_down(self, down: bool) -> None:
        self._down = down

    @property
    def down(self) -> bool:
        return self._down

    def revert_next(self) -> None:
        self._revert_next = True

    def replace_next_by_fee(self) -> None:
        """The next mined transaction lands under another hash, as when Curio bumps its fee."""
        self._replace_next = True

    def terminate(self, data_set_id: int) -> None:
        with self._lock:
            self.data_sets[data_set_id].pdp_end_epoch = self.epoch + self.max_proving_period

    # -- registry and money ----------------------------------------------------

    def register_provider(self, name: str, service_url: str, location: str, max_piece_bytes: int = 1 << 30) -> int:
        with self._lock:
            provider_id = len(self.providers) + 1
            address = _address(f"provider {provider_id}")
            self.providers[provider_id] = ProviderRecord(
                provider_id, name, service_url, address, _address(f"payee {provider_id}"), location, max_piece_bytes
            )
            return provider_id

    def fund(self, payer: str, amount: int, lockup_rate: int = 0) -> None:
        with self._lock:
            account = self.accounts.setdefault(payer.lower(), _Account())
            account.funds += amount
            account.lockup_rate = lockup_rate

    def on_epoch(self, prover: Callable[[int], None]) -> None:
        """Calls `prover(epoch)` after each epoch's transactions are mined."""
        self._provers.append(prover)

    # -- time and transactions -------------------------------------------------

    def advance(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            with self._lock:
                self.epoch += 1
                pending, self._pending = self._pending, []
                for tx in pending:
                    self._mine(tx)
            for prover in list(self._provers):
                prover(self.epoch)

    def _mine(self, tx: Transaction) -> None:
        tx.block = self.epoch
        if self._revert_next:
            self._revert_next, tx.status = False, 0
        else:
            try:
                tx.apply()
                tx.status = 1
            except Reverted:
                tx.status = 0
        if self._replace_next:
            self._replace_next = False
            tx.confirmed_hash = "0x" + hashlib.sha256(f"{tx.tx_hash} replaced".encode()).hexdigest()
            self.transactions[tx.confirmed_hash] = replace(tx, tx_hash=tx.confirmed_hash, confirmed_hash=None)

    def _submit(self, apply: Callable[[Transaction], None]) -> Transaction:
        with self._lock:
            tx_hash = "0x" + hashlib.sha256(f"tx {next(self._tx_counter)}".encode()).hexdigest()
            tx = Transaction(tx_hash, lambda: None)
            tx.apply = lambda: apply(tx)
            self.transactions[tx_hash] = tx
            self._pending.append(tx)
            return tx

    def _use_nonce(self, payer: str, nonce: int, value: int) -> None:
        if self.nonces.get((payer.lower(), nonce), 0) != 0:
            raise Reverted("ClientDataSetAlreadyRegistered")
        self.nonces[(payer.lower(), nonce)] = value

    def _add(self, tx: Transaction, data_set: DataSet, nonce: int, pieces: list[bytes]) -> None:
        if not data_set.live or data_set.pdp_end_epoch:
            raise Reverted("data set not live")
        first = data_set.next_piece_id
        self._use_nonce(data_set.payer, nonce, ((first + len(pieces)) << 128) | data_set.data_set_id)
        for offset, piece in enumerate(pieces):
            data_set.pieces[first + offset] = piece
        data_set.next_piece_id = first + len(pieces)
        tx.data_set_id, tx.piece_ids = data_set.data_set_id, tuple(range(first, first + len(pieces)))

    def submit_create_and_add(
        self, provider_id: int, payer: str, client_data_set_id: int, nonce: int, pieces: list[bytes]
    ) -> Transaction:
        def apply(tx: Transaction) -> None:
            data_set_id = next(self._data_set_ids)
            data_set = DataSet(
                data_set_id,
                provider_id,
                payer,
                self.providers[provider_id].payee,
                client_data_set_id,
                next_challenge_epoch=self.epoch + self.challenge_window,
            )
            self._use_nonce(payer, client_data_set_id, data_set_id)
            self._add(tx, data_set, nonce, pieces)
            self.data_sets[data_set_id] = data_set

        return self._submit(apply)

    def submit_add(self, data_set_id: int, nonce: int, pieces: list[bytes]) -> Transaction:
        return self._submit(lambda tx: self._add(tx, self.data_sets[data_set_id], nonce, pieces))

    def submit_removal(self, data_set_id: int, piece_ids: list[int]) -> Transaction:
        def apply(tx: Transaction) -> None:
            data_set = self.data_sets[data_set_id]
            for piece_id in piece_ids:
                data_set.pieces.pop(piece_id, None)
            tx.data_set_id, tx.piece_ids = data_set_id, tuple(piece_ids)

        return self._submit(apply)

    def prove(self, data_set_id: int) -> None:
        """A proof of possession for the data set at this epoch (PDPVerifier.provePossession)."""
        with self._lock:
            data_set = self.data_sets[data_set_id]
            data_set.last_proven_epoch = self.epoch
            data_set.next_challenge_epoch = self.epoch + self.max_proving_period

    # -- views (each returns the values of CALLS[name].returns) ---------------

    def view(self, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        with self._lock:
            result: tuple[Any, ...] = getattr(self, f"_view_{name}")(*args)
            return result

    def _data_set(self, data_set_id: int) -> DataSet | None:
        return self.data_sets.get(data_set_id)

    def _view_dataSetLive(self, data_set_id: int) -> tuple[bool]:
        data_set = self._data_set(data_set_id)
        return (data_set is not None and data_set.live,)

    def _view_pieceLive(self, data_set_id: int, piece_id: int) -> tuple[bool]:
        data_set = self._data_set(data_set_id)
        return (data_set is not None and data_set.live and piece_id in data_set.pieces,)

    def _view_getDataSetLastProvenEpoch(self, data_set_id: int) -> tuple[int]:
        data_set = self._data_set(data_set_id)
        return (data_set.last_proven_epoch if data_set else 0,)

    def _view_getNextChallengeEpoch(self, data_set_id: int) -> tuple[int]:
        data_set = self._data_set(data_set_id)
        return (data_set.next_challenge_epoch if data_set else 0,)

    def _info(self, data_set: DataSet | None) -> tuple[Any, ...]:
        if data_set is None:
            zero = "0x" + "00" * 20
            return (0, 0, 0, zero, zero, zero, 0, 0, 0, 0, 0, 0, 0)
        provider = self.providers[data_set.provider_id]
        return (
            data_set.data_set_id,  # pdpRailId: one rail per data set here
            0,
            0,
            data_set.payer,
            data_set.payee,
            provider.address,
            0,
            data_set.client_data_set_id,
            data_set.pdp_end_epoch,
            data_set.provider_id,
            0,
            0,
            data_set.data_set_id,
        )

    def _view_getDataSet(self, data_set_id: int) -> tuple[Any, ...]:
        return (self._info(self._data_set(data_set_id)),)

    def _view_getClientDataSets(self, payer: str) -> tuple[Any, ...]:
        mine = [self._info(d) for d in self.data_sets.values() if d.payer.lower() == payer.lower()]
        return (mine,)

    def _view_clientNonces(self, payer: str, nonce: int) -> tuple[int]:
        return (self.nonces.get((payer.lower(), nonce), 0),)

    def _view_getPDPConfig(self) -> tuple[int, int, int, int]:
        return (self.max_proving_period, self.challenge_window, 5, self.challenge_window)

    def _view_getServicePrice(self) -> tuple[Any, ...]:
        return ((self.price_per_tib_month, 0, 0, self.network.usdfc, EPOCHS_PER_MONTH, 0),)

    def _view_getProvidersByProductType(self, product_type: int, only_active: bool, offset: int, limit: int) -> Any:
        listed = [p for p in self.providers.values() if p.active or not only_active]
        page = listed[offset : offset + limit]
        entries = [
            (
                p.provider_id,
                (p.address, p.payee, p.name, "fake PDP provider", p.active),
                (product_type, ["serviceURL", "location", "maxPieceSizeInBytes"], p.active),
                [p.service_url.encode(), p.location.encode(), p.max_piece_bytes.to_bytes(8, "big")],
            )
            for p in page
        ]
        return ((entries, offset + limit < len(listed)),)

    def _view_getAccountInfoIfSettled(self, token: str, owner: str) -> tuple[int, int, int, int]:
        account = self.accounts.get(owner.lower(), _Account())
        locked = self.locked(owner)
        available = max(0, account.funds - locked)
        until = FOREVER if account.lockup_rate == 0 else self.epoch + available // account.lockup_rate
        return (until, account.funds, available, account.lockup_rate)

    def locked(self, owner: str) -> int:
        """What the payer's live pieces lock up: FWSS's DEFAULT_LOCKUP_PERIOD (30 days) of
        each piece's storage rate (its per-data-set minimum and one-time fees left out)."""
        padded = sum(
            decode_piece_cid_v2(piece_cid_text(piece)).padded_size
            for data_set in self.data_sets.values()
            if data_set.payer.lower() == owner.lower() and data_set.live
            for piece in data_set.pieces.values()
        )
        return -(-padded * self.price_per_tib_month // (_TIB * EPOCHS_PER_MONTH)) * LOCKUP_EPOCHS

    # -- JSON-RPC --------------------------------------------------------------

    def answer(self, method: str, params: list[Any]) -> Any:
        """The result of one JSON-RPC method; ValueError for what the node would refuse."""
        if method == "eth_blockNumber":
            return hex(self.epoch)
        if method == "eth_chainId":
            return hex(self.network.chain_id)
        if method == "eth_getTransactionReceipt":
            return self._receipt(str(params[0]).lower())
        if method == "eth_call":
            return self._call(params[0])
        raise ValueError(f"the method {method} does not exist/is not available")

    def _receipt(self, tx_hash: str) -> dict[str, Any] | None:
        tx = self.transactions.get(tx_hash)
        if tx is None or tx.status is None or tx.block is None or tx.confirmed_hash is not None:
            return None
        return {"transactionHash": tx_hash, "status": hex(tx.status), "blockNumber": hex(tx.block), "logs": []}

    def _call(self, call: dict[str, Any]) -> str:
        data = bytes.fromhex(str(call.get("data") or call.get("input", "0x"))[2:])
        name = self._views.get((str(call.get("to", "")).lower(), data[:4]))
        if name is None:
            raise ValueError("execution reverted: no such function on this contract")
        view = CALLS[name]
        args = tuple(decode(list(view.arg_types), data[4:]))
        self.calls.append(name)
        return "0x" + encode(list(view.returns), list(self.view(name, args))).hex()


class _RpcHandler(BaseHTTPRequestHandler):
    chain: FakeChain
    protocol_version = "HTTP/1.1"
    # Headers and body are written apart: without this, Nagle and delayed ACKs add ~40 ms per request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: dict[str, Any] | None) -> None:
        payload = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.chain.down:
            self._reply(503, None)
            return
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
        try:
            reply["result"] = self.chain.answer(request.get("method", ""), request.get("params") or [])
        except ValueError as error:
            reply["error"] = {"code": -32000, "message": str(error)}
        self._reply(200, reply)


def _address(seed: str) -> str:
    """A stable, checksummed fake address."""
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(hashlib.sha256(seed.encode()).digest()[:20]))
