"""FilecoinBackend for PDP on Filecoin Onchain Cloud.

A copy is one piece in the service wallet's data set with one provider:
the piece is uploaded to the provider, which submits the transaction adding
it (creating the data set with it when the wallet has none there) with the
wallet's signed authorisation, then proves possession every proving period.
The chain is the authority on what exists and whether it is proven; the
provider's status routes give the ids a transaction made.

States (CopyState) from what the chain says:
- the add transaction not mined -> ADDING; reverted -> FAILED (unless an
  earlier submission of the same authorisation made the copy: then that one);
- mined, data set and piece live, proven since it was added and within the
  proving period (+ grace) -> PROVING; not proven yet but before its first
  deadline -> ADDING; a deadline passed without a proof -> LAPSED;
- the data set or the piece not live, or its service ended (pdpEndEpoch set
  when the rail is terminated) -> TERMINATED; `end` -> ENDED.

Idempotence: the AddPieces nonce and the data set's clientDataSetId are
derived from (provider, piece) and (provider), and FWSS refuses a used one
and records what it added under it (`clientNonces`): `store` first looks the
nonces up, so a retry finds the copy an earlier call made instead of making
a second; a retry racing a pending transaction makes one that reverts, and
`follow` adopts the earlier copy.

Import this module lazily (wiring): it loads eth-abi and requests, and
signing loads eth-account only to sign.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import requests

from chalicelib.filecoin.backend import (
    BackendUnavailable,
    CopyRefused,
    CopyState,
    Funds,
    Piece,
    PieceBytes,
    Provider,
    Receipt,
)
from chalicelib.filecoin.pdp.contracts import (
    FOREVER,
    MAX_UPLOAD_BYTES,
    MIN_UPLOAD_BYTES,
    PDP_PRODUCT_TYPE,
    Network,
)
from chalicelib.filecoin.pdp.provider_api import ProviderApi
from chalicelib.filecoin.pdp.rpc import ChainRpc, TxReceipt
from chalicelib.filecoin.pdp.signing import Wallet, derived_nonce

log = logging.getLogger(__name__)

TIB = 1 << 40
_LOW_128 = (1 << 128) - 1
_REGISTRY_PAGE = 50
# Earlier copies of one piece with one provider (each ended or lost) a store looks past.
_MAX_ATTEMPTS = 32
# FWSS piece metadata key for the IPFS root CID the piece holds (synapse-core utils/metadata.ts).
IPFS_ROOT_CID = "ipfsRootCID"


@dataclass(frozen=True)
class PdpSettings:
    network: Network
    rpc_url: str
    http_timeout: float = 30.0
    rpc_timeout: float = 10.0
    # Epochs past a proving deadline before a copy counts as LAPSED (60 epochs: 30 minutes).
    grace_epochs: int = 60
    # Between checks that an uploaded piece is parked (Curio parks it asynchronously).
    park_poll_seconds: float = 2.0
    data_set_metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Listed:
    provider: Provider
    payee: str
    max_piece_bytes: int | None


@dataclass(frozen=True)
class _DataSet:
    data_set_id: int
    client_data_set_id: int


class PdpBackend:
    """Copies as pieces in the service wallet's PDP data sets (see the module docstring)."""

    name = "pdp"

    def __init__(
        self,
        settings: PdpSettings,
        key_source: Callable[[], str],
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._settings = settings
        self._network = settings.network
        self._session = session or requests.Session()
        self._rpc = ChainRpc(settings.rpc_url, settings.network, settings.rpc_timeout, self._session)
        self._wallet = Wallet(key_source, settings.network)
        self._sleep = sleep
        self._listed: dict[str, _Listed] = {}
        self._pdp_config: tuple[int, int] | None = None
        self._price: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"PdpBackend({self._network.name}, {self._rpc.url!r}, {self._wallet!r})"

    # -- providers -------------------------------------------------------------

    def providers(self) -> list[Provider]:
        listed: dict[str, _Listed] = {}
        offset = 0
        while True:
            ((entries, has_more),) = self._rpc.call(
                "getProvidersByProductType", PDP_PRODUCT_TYPE, True, offset, _REGISTRY_PAGE
            )
            for entry in entries:
                found = _listed_provider(entry)
                if found is not None:
                    listed[found.provider.provider_id] = found
            if not has_more or not entries:
                break
            offset += len(entries)
        self._listed = listed
        return [entry.provider for entry in listed.values()]

    def _provider(self, provider_id: str) -> _Listed:
        if provider_id not in self._listed:
            self.providers()
        if provider_id not in self._listed:
            raise CopyRefused(f"provider {provider_id} is not an active PDP provider in the registry")
        return self._listed[provider_id]

    def _api(self, provider_id: str, timeout: float | None = None) -> ProviderApi:
        url = self._provider(provider_id).provider.service_url
        return ProviderApi(url, self._session, timeout or self._settings.http_timeout)

    # -- store -----------------------------------------------------------------

    def store(self, provider: Provider, piece: Piece, data: PieceBytes, deadline: float) -> Receipt:
        listed = self._provider(provider.provider_id)
        _check_size(piece, listed)
        provider_id = int(provider.provider_id)
        earlier, nonce = self._earlier_copy(provider_id, piece.piece_cid)
        if earlier is not None:
            log.info("pdp: piece %s already added with provider %s", piece.piece_cid, provider_id)
            return self._on_chain(earlier, None)
        api = self._api(provider.provider_id, self._call_timeout(deadline, "upload"))
        if not api.has_piece(piece.piece_cid):
            api.upload(piece.piece_cid, _until(deadline, data.chunks()))
            self._wait_parked(api, piece.piece_cid, deadline)
        self._call_timeout(deadline, "adding the piece")
        metadata = [[(IPFS_ROOT_CID, piece.cid)]]
        data_set = self._live_data_set(provider_id)
        if data_set is not None:
            extra = self._wallet.add_pieces_extra(data_set.client_data_set_id, nonce, [piece.piece_cid], metadata)
            tx_hash = api.add_pieces(data_set.data_set_id, extra, piece.piece_cid)
        else:
            client_data_set_id = self._free_nonce("data-set", provider_id)
            extra = self._wallet.create_and_add_extra(
                client_data_set_id,
                listed.payee,
                self._settings.data_set_metadata,
                nonce,
                [piece.piece_cid],
                metadata,
            )
            tx_hash = api.create_and_add(self._network.fwss, extra, piece.piece_cid)
        log.info("pdp: piece %s submitted to provider %s in %s", piece.piece_cid, provider_id, tx_hash)
        return Receipt(
            provider_id=provider.provider_id,
            piece_cid=piece.piece_cid,
            state=CopyState.ADDING,
            data_set_id=str(data_set.data_set_id) if data_set else None,
            transactions=(tx_hash,),
            detail="submitted" if data_set else "submitted with a new data set",
        )

    def _call_timeout(self, deadline: float, what: str) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BackendUnavailable(f"the deadline passed before {what}")
        return min(left, self._settings.http_timeout)

    def _wait_parked(self, api: ProviderApi, piece_cid: str, deadline: float) -> None:
        while not api.has_piece(piece_cid):
            self._call_timeout(deadline, "the provider parked the piece")
            self._sleep(self._settings.park_poll_seconds)

    def _nonce(self, kind: str, provider_id: int, piece_cid: str, attempt: int) -> int:
        return derived_nonce("pinning-service", kind, self._network.chain_id, provider_id, piece_cid, attempt)

    def _free_nonce(self, kind: str, provider_id: int) -> int:
        """The first derived clientDataSetId FWSS has not seen from this payer."""
        for attempt in range(_MAX_ATTEMPTS):
            nonce = self._nonce(kind, provider_id, "", attempt)
            if self._rpc.call("clientNonces", self._wallet.address, nonce)[0] == 0:
                return nonce
        raise CopyRefused(f"{_MAX_ATTEMPTS} data sets were made with provider {provider_id} already")

    def _earlier_copy(self, provider_id: int, piece_cid: str) -> tuple[Receipt | None, int]:
        """A live copy an earlier store made of the piece with the provider, and the
        nonce a new one would use (the first never used)."""
        for attempt in range(_MAX_ATTEMPTS):
            nonce = self._nonce("piece", provider_id, piece_cid, attempt)
            (used,) = self._rpc.call("clientNonces", self._wallet.address, nonce)
            if used == 0:
                return None, nonce
            # FWSS keeps (next piece id << 128) | data set id under an AddPieces nonce.
            data_set_id, piece_id = used & _LOW_128, (used >> 128) - 1
            if self._live(data_set_id, piece_id):
                receipt = Receipt(
                    provider_id=str(provider_id),
                    piece_cid=piece_cid,
                    state=CopyState.ADDING,
                    data_set_id=str(data_set_id),
                    piece_id=str(piece_id),
                    detail="added by an earlier submission",
                )
                return receipt, nonce
        raise CopyRefused(f"{_MAX_ATTEMPTS} copies of {piece_cid} were made with provider {provider_id} already")

    def _live(self, data_set_id: int, piece_id: int) -> bool:
        return bool(
            self._rpc.call("dataSetLive", data_set_id)[0] and self._rpc.call("pieceLive", data_set_id, piece_id)[0]
        )

    def _live_data_set(self, provider_id: int) -> _DataSet | None:
        (infos,) = self._rpc.call("getClientDataSets", self._wallet.address)
        for info in infos:
            client_data_set_id, end_epoch, listed_provider, data_set_id = info[7], info[8], info[9], info[12]
            if listed_provider == provider_id and end_epoch == 0 and self._rpc.call("dataSetLive", data_set_id)[0]:
                return _DataSet(data_set_id, client_data_set_id)
        return None

    # -- follow ----------------------------------------------------------------

    def follow(self, receipt: Receipt) -> Receipt:
        if receipt.state in (CopyState.ENDED, CopyState.FAILED, CopyState.TERMINATED):
            return receipt
        if not receipt.transactions and (receipt.data_set_id is None or receipt.piece_id is None):
            return replace(receipt, state=CopyState.PENDING, detail="nothing submitted yet")
        added_block = None
        if receipt.transactions:
            receipt, mined = self._mined(receipt)
            if mined is None:
                return replace(receipt, state=CopyState.ADDING, detail="transaction pending")
            if not mined.succeeded:
                return self._reverted(receipt)
            added_block = mined.block
            if receipt.piece_id is None:
                # Curio keys its status routes by the hash it answered the submission with.
                found = self._ids_from_provider(receipt, receipt.transactions[0])
                if found is None:
                    return replace(
                        receipt, state=CopyState.ADDING, detail="mined; the provider has not recorded it yet"
                    )
                receipt = replace(receipt, data_set_id=str(found[0]), piece_id=str(found[1]))
        return self._on_chain(receipt, added_block)

    def _mined(self, receipt: Receipt) -> tuple[Receipt, TxReceipt | None]:
        """The receipt of the copy's last transaction; when it is not mined, whether
        the provider replaced it by fee (then the replacement's hash is appended)."""
        mined = self._rpc.receipt(receipt.transactions[-1])
        if mined is not None or receipt.piece_id is not None:
            return receipt, mined
        replacement = self._replacement(receipt)
        if replacement is None or replacement in receipt.transactions:
            return receipt, None
        log.info("pdp: transaction %s replaced by %s", receipt.transactions[-1], replacement)
        receipt = replace(receipt, transactions=(*receipt.transactions, replacement))
        return receipt, self._rpc.receipt(replacement)

    def _replacement(self, receipt: Receipt) -> str | None:
        try:
            api = self._api(receipt.provider_id)
        except CopyRefused:
            return None
        submitted = receipt.transactions[0]
        if receipt.data_set_id is None:
            created = api.creation_status(submitted)
            return created.confirmed_tx_hash if created else None
        added = api.addition_status(int(receipt.data_set_id), submitted)
        return added.confirmed_tx_hash if added else None

    def _reverted(self, receipt: Receipt) -> Receipt:
        earlier, _ = self._earlier_copy(int(receipt.provider_id), receipt.piece_cid)
        if earlier is None:
            return replace(receipt, state=CopyState.FAILED, detail=f"transaction {receipt.transactions[-1]} reverted")
        adopted = replace(earlier, transactions=receipt.transactions, detail="added by an earlier submission")
        return self._on_chain(adopted, None)

    def _ids_from_provider(self, receipt: Receipt, tx_hash: str) -> tuple[int, int] | None:
        try:
            api = self._api(receipt.provider_id)
        except CopyRefused:
            # Gone from the registry: the chain alone tells what its transaction added.
            earlier, _ = self._earlier_copy(int(receipt.provider_id), receipt.piece_cid)
            if earlier is None:
                return None
            return int(earlier.data_set_id or 0), int(earlier.piece_id or 0)
        if receipt.data_set_id is None:
            created = api.creation_status(tx_hash)
            if created is None or created.data_set_id is None:
                return None
            data_set_id = created.data_set_id
        else:
            data_set_id = int(receipt.data_set_id)
        added = api.addition_status(data_set_id, tx_hash)
        if added is None or not added.ok or not added.piece_ids:
            return None
        return data_set_id, added.piece_ids[0]

    def _config(self) -> tuple[int, int]:
        """(max proving period, challenge window) in epochs: FWSS's, fixed at deployment."""
        if self._pdp_config is None:
            max_period, window, _, _ = self._rpc.call("getPDPConfig")
            self._pdp_config = (max_period, window)
        return self._pdp_config

    def _on_chain(self, receipt: Receipt, added_block: int | None) -> Receipt:
        """The state of a copy whose data set and piece ids are known."""
        data_set_id, piece_id = int(receipt.data_set_id or 0), int(receipt.piece_id or 0)
        if not self._rpc.call("dataSetLive", data_set_id)[0]:
            return replace(receipt, state=CopyState.TERMINATED, detail="the data set is not live")
        if not self._rpc.call("pieceLive", data_set_id, piece_id)[0]:
            return replace(receipt, state=CopyState.TERMINATED, detail="the piece was removed from the data set")
        ((*_, end_epoch, _provider, _pending, _reserve, _id),) = self._rpc.call("getDataSet", data_set_id)
        if end_epoch != 0:
            return replace(
                receipt,
                state=CopyState.TERMINATED,
                ends_epoch=end_epoch,
                detail="the data set's service was terminated",
            )
        (last_proven,) = self._rpc.call("getDataSetLastProvenEpoch", data_set_id)
        now = self._rpc.block_number()
        max_period, window = self._config()
        allowed = max_period + window + self._settings.grace_epochs
        added = added_block or 0
        if last_proven > 0 and last_proven >= added:
            if now - last_proven <= allowed:
                return replace(receipt, state=CopyState.PROVING, last_proven_epoch=last_proven, detail="proven")
            return replace(
                receipt,
                state=CopyState.LAPSED,
                last_proven_epoch=last_proven,
                detail=f"no proof since epoch {last_proven} (now {now})",
            )
        if added_block is not None:
            # A piece is first challenged in the proving period after the one it was added in.
            first_deadline = added_block + max_period + allowed
        else:
            # Found through its nonce, when it was added is not known: the data set's next challenge bounds it.
            first_deadline = self._rpc.call("getNextChallengeEpoch", data_set_id)[0] + allowed
        if now <= first_deadline:
            return replace(receipt, state=CopyState.ADDING, detail="on chain, waiting for its first proof")
        return replace(receipt, state=CopyState.LAPSED, detail=f"not proven by epoch {first_deadline} (now {now})")

    # -- end -------------------------------------------------------------------

    def end(self, receipt: Receipt) -> Receipt:
        current = self.follow(receipt)
        if current.state == CopyState.ENDED:
            return current
        if current.data_set_id is None or current.piece_id is None:
            if current.state in (CopyState.ADDING, CopyState.PENDING) and current.transactions:
                raise BackendUnavailable("the copy's transaction is not final yet: end it once it is")
            return replace(current, state=CopyState.ENDED, detail="nothing on chain to remove")
        if current.state == CopyState.TERMINATED:
            return replace(current, state=CopyState.ENDED, detail=f"already gone: {current.detail}")
        data_set_id, piece_id = int(current.data_set_id), int(current.piece_id)
        ((*_, client_data_set_id, _end, _provider, _pending, _reserve, _id),) = self._rpc.call(
            "getDataSet", data_set_id
        )
        extra = self._wallet.schedule_removals_extra(client_data_set_id, [piece_id])
        try:
            tx_hash = self._api(current.provider_id).schedule_removal(data_set_id, piece_id, extra)
        except CopyRefused as refused:
            raise BackendUnavailable(f"the provider refused the removal: {refused}") from None
        log.info("pdp: removal of piece %s from data set %s submitted in %s", piece_id, data_set_id, tx_hash)
        return replace(
            current,
            state=CopyState.ENDED,
            transactions=(*current.transactions, tx_hash),
            detail="removal scheduled",
        )

    # -- money -----------------------------------------------------------------

    def funds(self) -> Funds:
        funded_until, current, available, rate = self._rpc.call(
            "getAccountInfoIfSettled", self._network.usdfc, self._wallet.address
        )
        runway = None
        if rate > 0 and funded_until < FOREVER:
            runway = max(0, funded_until - self._rpc.block_number())
        return Funds(available=available, locked=current - available, runway_epochs=runway)

    def cost_per_epoch(self, piece: Piece) -> int:
        """The piece's share of FWSS's storage price (per TiB-month, no CDN), rounded up; the
        per-data-set minimum and one-time fees are not a piece's."""
        if self._price is None:
            ((per_tib_month, _cdn, _miss, _token, epochs_per_month, _minimum),) = self._rpc.call("getServicePrice")
            self._price = (per_tib_month, epochs_per_month)
        per_tib_month, epochs_per_month = self._price
        return -(-piece.padded_size * per_tib_month // (TIB * epochs_per_month))


def _listed_provider(entry: tuple[Any, ...]) -> _Listed | None:
    """A registry entry (providerId, providerInfo, product, capability values), if it is usable."""
    provider_id, info, product, values = entry
    _address, payee, name, _description, active = info
    _type, keys, product_active = product
    capabilities: dict[str, bytes] = dict(zip(keys, values, strict=False))
    url = bytes(capabilities.get("serviceURL", b"")).decode("utf-8", "replace")
    if not (active and product_active and url):
        return None
    location = bytes(capabilities.get("location", b"")).decode("utf-8", "replace") or None
    max_piece = capabilities.get("maxPieceSizeInBytes")
    return _Listed(
        provider=Provider(provider_id=str(provider_id), name=str(name), service_url=url, region=location),
        payee=str(payee),
        max_piece_bytes=int.from_bytes(max_piece, "big") if max_piece else None,
    )


def _check_size(piece: Piece, listed: _Listed) -> None:
    if piece.car_bytes > MAX_UPLOAD_BYTES:
        raise CopyRefused(f"piece too large for PDP: {piece.car_bytes} > {MAX_UPLOAD_BYTES} bytes")
    if piece.car_bytes < MIN_UPLOAD_BYTES:
        raise CopyRefused(f"piece too small for PDP: {piece.car_bytes} < {MIN_UPLOAD_BYTES} bytes")
    if listed.max_piece_bytes is not None and piece.padded_size > listed.max_piece_bytes:
        raise CopyRefused(f"piece larger than provider {listed.provider.provider_id} takes: {piece.padded_size}")


def _until(deadline: float, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, stopping the upload when the deadline passes."""
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise BackendUnavailable("the deadline passed during the upload")
        yield chunk
