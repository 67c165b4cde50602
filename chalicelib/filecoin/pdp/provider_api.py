"""A storage provider's PDP HTTP API (Curio's `/pdp` routes), as the SDKs call it.

Routes (filecoin-project/curio pdp/handlers*.go; FilOzone/synapse-sdk
packages/synapse-core/src/sp/*.ts; details in docs/filecoin-pdp.md):
- GET  /pdp/piece?pieceCid=         200 {"pieceCid"} when the provider holds it, 404 if not
- POST /pdp/piece/uploads           201, Location: /pdp/piece/uploads/{uuid}
- PUT  /pdp/piece/uploads/{uuid}    the bytes (application/octet-stream) -> 204
- POST /pdp/piece/uploads/{uuid}    {"pieceCid"} -> 200 once the bytes' CommP matches
- POST /pdp/data-sets/create-and-add  {"recordKeeper", "extraData", "pieces"} -> 201,
       Location: /pdp/data-sets/created/{txHash}
- POST /pdp/data-sets/{id}/pieces   {"pieces", "extraData"} -> 201,
       Location: /pdp/data-sets/{id}/pieces/added/{txHash}
- GET  /pdp/data-sets/created/{txHash}          {"txStatus", "ok", "dataSetCreated", "dataSetId"?, "confirmedTxHash"?, ...}
- GET  /pdp/data-sets/{id}/pieces/added/{txHash} {"txStatus", "addMessageOk", "piecesAdded", "confirmedPieceIds"?,
       "confirmedTxHash"?, ...}; the status routes stay keyed by the submitted hash after a replace-by-fee
- DELETE /pdp/data-sets/{id}/pieces/{pieceId}   {"extraData", "pieceIds"} -> 200 {"txHash"}

Errors: no connection, a timeout, a 5xx, 429 or an answer that does not
parse -> BackendUnavailable (try later); another 4xx -> CopyRefused (choose
another provider). Every call has a timeout; the upload's is per read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from chalicelib.filecoin.backend import BackendUnavailable, CopyRefused

_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_UPLOAD = re.compile(r"/pdp/piece/uploads/([0-9a-fA-F-]+)$")
# Curio answers these while busy; not a refusal.
_RETRYABLE = {408, 425, 429}


@dataclass(frozen=True)
class CreationStatus:
    tx_status: str  # "pending", "confirmed" or "rejected"
    ok: bool | None
    data_set_id: int | None
    # The hash that landed on chain: not the one submitted when Curio replaced it by fee.
    confirmed_tx_hash: str | None = None


@dataclass(frozen=True)
class AdditionStatus:
    tx_status: str
    ok: bool | None
    piece_ids: tuple[int, ...]
    confirmed_tx_hash: str | None = None


def _raise_for(response: requests.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    reason = response.text.strip()[:200]
    if status >= 500 or status in _RETRYABLE:
        raise BackendUnavailable(f"{what}: HTTP {status} {reason}")
    raise CopyRefused(f"{what}: HTTP {status} {reason}")


class ProviderApi:
    """One provider's PDP routes under its service URL."""

    def __init__(self, service_url: str, session: requests.Session, timeout: float = 30.0):
        self.service_url = service_url.rstrip("/")
        self._session = session
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ProviderApi({self.service_url!r})"

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        try:
            response = self._session.request(method, self.service_url + path, **kwargs)
        except requests.RequestException as error:
            raise BackendUnavailable(f"{what}: {type(error).__name__}") from None
        _raise_for(response, what)
        return response

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise BackendUnavailable(f"{what}: not JSON") from None
        if not isinstance(body, dict):
            raise BackendUnavailable(f"{what}: not a JSON object")
        return body

    def has_piece(self, piece_cid: str) -> bool:
        """Whether the provider already holds the piece (parked), so it need not be uploaded again."""
        what = "find piece"
        try:
            response = self._session.get(
                f"{self.service_url}/pdp/piece", params={"pieceCid": piece_cid}, timeout=self._timeout
            )
        except requests.RequestException as error:
            raise BackendUnavailable(f"{what}: {type(error).__name__}") from None
        if response.status_code == 404:
            return False
        _raise_for(response, what)
        return response.status_code == 200 and self._json(response, what).get("pieceCid") == piece_cid

    def upload(self, piece_cid: str, chunks: Iterator[bytes]) -> None:
        """Creates an upload, streams the bytes (chunked), finalizes it with the piece CID."""
        created = self._send("POST", "/pdp/piece/uploads", "create upload")
        match = _UPLOAD.search(created.headers.get("Location", ""))
        if created.status_code != 201 or match is None:
            raise BackendUnavailable(f"create upload: HTTP {created.status_code} without an upload Location")
        path = f"/pdp/piece/uploads/{match.group(1)}"
        headers = {"Content-Type": "application/octet-stream"}
        sent = self._send("PUT", path, "upload piece", data=chunks, headers=headers)
        if sent.status_code != 204:
            raise BackendUnavailable(f"upload piece: HTTP {sent.status_code}, expected 204")
        self._send("POST", path, "finalize upload", json={"pieceCid": piece_cid})

    def _submitted(self, response: requests.Response, what: str) -> str:
        match = _TX_HASH.search(response.headers.get("Location", "").rsplit("/", 1)[-1])
        if response.status_code not in (201, 202) or match is None:
            raise BackendUnavailable(f"{what}: HTTP {response.status_code} without a transaction Location")
        return match.group(0).lower()

    def create_and_add(self, record_keeper: str, extra_data: bytes, piece_cid: str) -> str:
        """Submits the transaction creating a data set with the piece in it; its hash."""
        body = {"recordKeeper": record_keeper, "extraData": "0x" + extra_data.hex(), "pieces": [_piece(piece_cid)]}
        what = "create data set and add piece"
        return self._submitted(self._send("POST", "/pdp/data-sets/create-and-add", what, json=body), what)

    def add_pieces(self, data_set_id: int, extra_data: bytes, piece_cid: str) -> str:
        body = {"pieces": [_piece(piece_cid)], "extraData": "0x" + extra_data.hex()}
        what = "add piece"
        return self._submitted(self._send("POST", f"/pdp/data-sets/{data_set_id}/pieces", what, json=body), what)

    def creation_status(self, tx_hash: str) -> CreationStatus | None:
        """The data set creation's status, or None if the provider does not know the transaction."""
        what = "data set creation status"
        body = self._status(f"/pdp/data-sets/created/{quote(tx_hash)}", what)
        if body is None:
            return None
        data_set_id = body.get("dataSetId")
        return CreationStatus(
            tx_status=str(body.get("txStatus", "")),
            ok=_optional_bool(body.get("ok"), what),
            data_set_id=data_set_id if isinstance(data_set_id, int) else None,
            confirmed_tx_hash=_optional_hash(body.get("confirmedTxHash"), what),
        )

    def addition_status(self, data_set_id: int, tx_hash: str) -> AdditionStatus | None:
        what = "piece addition status"
        body = self._status(f"/pdp/data-sets/{data_set_id}/pieces/added/{quote(tx_hash)}", what)
        if body is None:
            return None
        ids = body.get("confirmedPieceIds") or []
        if not isinstance(ids, list) or not all(isinstance(piece_id, int) for piece_id in ids):
            raise BackendUnavailable(f"{what}: confirmedPieceIds is not a list of ids")
        return AdditionStatus(
            tx_status=str(body.get("txStatus", "")),
            ok=_optional_bool(body.get("addMessageOk"), what),
            piece_ids=tuple(ids),
            confirmed_tx_hash=_optional_hash(body.get("confirmedTxHash"), what),
        )

    def _status(self, path: str, what: str) -> dict[str, Any] | None:
        try:
            response = self._session.get(self.service_url + path, timeout=self._timeout)
        except requests.RequestException as error:
            raise BackendUnavailable(f"{what}: {type(error).__name__}") from None
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            # A status route refusing is the provider misbehaving, not a refusal of the copy.
            raise BackendUnavailable(f"{what}: HTTP {response.status_code}")
        return self._json(response, what)

    def schedule_removal(self, data_set_id: int, piece_id: int, extra_data: bytes) -> str:
        """Asks the provider to submit the piece's removal; the transaction's hash."""
        body = {"extraData": "0x" + extra_data.hex(), "pieceIds": [piece_id]}
        what = "schedule piece removal"
        response = self._send("DELETE", f"/pdp/data-sets/{data_set_id}/pieces/{piece_id}", what, json=body)
        tx_hash = self._json(response, what).get("txHash")
        if not isinstance(tx_hash, str) or not _TX_HASH.fullmatch(tx_hash):
            raise BackendUnavailable(f"{what}: no transaction hash in the answer")
        return tx_hash.lower()


def _piece(piece_cid: str) -> dict[str, Any]:
    # One piece made of itself: the service adds whole pieces, not aggregates.
    return {"pieceCid": piece_cid, "subPieces": [{"subPieceCid": piece_cid}]}


def _optional_hash(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _TX_HASH.fullmatch(value):
        return value.lower()
    raise BackendUnavailable(f"{what}: not a transaction hash: {value!r}")


def _optional_bool(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise BackendUnavailable(f"{what}: not a boolean: {value!r}")
