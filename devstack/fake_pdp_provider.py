"""A fake PDP storage provider (Curio's `/pdp` routes) for one provider, on
127.0.0.1, in front of a devstack.fake_chain.FakeChain.

Use:
    provider = FakePdpProvider(chain, name="sp-eu", location="EU")
    url = provider.start()      # registers it in the chain's registry, proves on the chain's epochs
    provider.stop()
or, for a chain with several providers at once (`make dev`):
    chain, providers = start_fake_network([("sp-eu", "EU"), ("sp-us", "US")], epoch_seconds=2)
    stop_fake_network(chain, providers)

What it does, as Curio does (routes, bodies, status codes in
docs/filecoin-pdp.md): takes a piece upload (create, PUT the bytes, finalize
with the piece CID: the bytes' CommP, computed with chalicelib.cold.commp,
must match or 400), answers find-piece, and submits create-and-add, add
pieces and piece removals to the chain, answering the status routes from the
chain's transactions. It proves each of its data sets when the data set's
challenge epoch comes (`FakeChain.advance`).

Unlike Curio, which leaves it to the contract, it checks every EIP-712
authorisation itself with eth-account (the signer recovered must be the
payer: the one in the CreateDataSet extraData, or the data set's) and
refuses a bad one with 400, so tests see a bad signature refused.

Faults (deterministic, by method): `refuse(status, message)` answers the
create-and-add and add routes with that status until `accept()`;
`cut_uploads(after_bytes)` drops the connection after that many bytes of a
piece upload; `stop_proving()` / `resume_proving()`.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalicelib.cold.commp import CommP, PieceCidError, decode_piece_cid_v2
from chalicelib.filecoin.pdp import signing
from devstack.fake_chain import FakeChain, Transaction

_HASH = r"(0x[0-9a-fA-F]{64})"


@dataclass
class _Upload:
    piece_cid: str | None = None  # the CommP of the bytes received, once complete


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class FakePdpProvider:
    """See the module docstring."""

    def __init__(self, chain: FakeChain, name: str = "fake-sp", location: str = "EU", max_piece_bytes: int = 1 << 30):
        self.chain = chain
        self.name = name
        self.location = location
        self.max_piece_bytes = max_piece_bytes
        self.provider_id = 0
        self.parked: set[str] = set()  # piece CIDs (v2) held
        self.requests: list[tuple[str, str]] = []  # (method, path) in order
        self._uploads: dict[str, _Upload] = {}
        self._creates: dict[str, Transaction] = {}
        self._refusal: tuple[int, str] | None = None
        self._cut_after: int | None = None
        self._proving = True
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        provider = self

        class Handler(_Handler):
            pass

        Handler.provider = provider
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.provider_id = self.chain.register_provider(self.name, self.url, self.location, self.max_piece_bytes)
        self.chain.on_epoch(self._prove_due)
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- faults ----------------------------------------------------------------

    def refuse(self, status: int = 403, message: str = "not accepting new pieces") -> None:
        self._refusal = (status, message)

    def accept(self) -> None:
        self._refusal = None

    def cut_uploads(self, after_bytes: int | None) -> None:
        self._cut_after = after_bytes

    def stop_proving(self) -> None:
        self._proving = False

    def resume_proving(self) -> None:
        self._proving = True

    def _prove_due(self, epoch: int) -> None:
        if not self._proving:
            return
        for data_set in list(self.chain.data_sets.values()):
            if data_set.provider_id == self.provider_id and data_set.live and data_set.pieces:
                if epoch >= data_set.next_challenge_epoch:
                    self.chain.prove(data_set.data_set_id)

    # -- routes ----------------------------------------------------------------

    def find_piece(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        piece_cid = (query.get("pieceCid") or [""])[0]
        _valid_piece_cid(piece_cid)
        return (200, {"pieceCid": piece_cid}) if piece_cid in self.parked else (404, "404 page not found")

    def create_upload(self) -> tuple[int, dict[str, str]]:
        upload_id = str(uuid.uuid4())
        with self._lock:
            self._uploads[upload_id] = _Upload()
        return 201, {"Location": f"/pdp/piece/uploads/{upload_id}"}

    def receive_upload(self, upload_id: str, read: Callable[[int], bytes], length: int | None) -> None:
        """Feeds the body to CommP; raises ConnectionAbortedError where a cut upload stops."""
        upload = self._upload(upload_id)
        hasher, received = CommP(), 0
        for chunk in _body_chunks(read, length):
            if self._cut_after is not None and received + len(chunk) > self._cut_after:
                raise ConnectionAbortedError("upload cut")
            hasher.update(chunk)
            received += len(chunk)
        if received > self.max_piece_bytes:
            raise HttpError(413, "piece data exceeds the maximum allowed size")
        upload.piece_cid = hasher.digest().cid_v2

    def finalize_upload(self, upload_id: str, body: dict[str, Any]) -> tuple[int, dict[str, str]]:
        upload = self._upload(upload_id)
        piece_cid = str(body.get("pieceCid", ""))
        _valid_piece_cid(piece_cid)
        if upload.piece_cid is None:
            raise HttpError(400, "upload not complete")
        if upload.piece_cid != piece_cid:
            raise HttpError(400, "Invalid request body: pieceCid does not match the calculated pieceCid")
        self.parked.add(piece_cid)
        return 200, {"pieceCid": piece_cid}

    def _upload(self, upload_id: str) -> _Upload:
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise HttpError(404, "Upload UUID not found")
        return upload

    def _pieces(self, body: dict[str, Any]) -> list[bytes]:
        pieces = body.get("pieces")
        if not isinstance(pieces, list) or not pieces:
            raise HttpError(400, "At least one piece must be provided")
        binaries = []
        for piece in pieces:
            piece_cid = str(piece.get("pieceCid", ""))
            subs = [str(sub.get("subPieceCid", "")) for sub in piece.get("subPieces") or []]
            if subs != [piece_cid]:
                raise HttpError(400, "the fake provider takes whole pieces only (subPieces = [the piece])")
            if piece_cid not in self.parked:
                raise HttpError(400, f"Failed to process request: piece {piece_cid} not found")
            binaries.append(signing.piece_cid_binary(piece_cid))
        return binaries

    def _check_refusal(self) -> None:
        if self._refusal is not None:
            raise HttpError(*self._refusal)

    def create_and_add(self, body: dict[str, Any]) -> tuple[int, dict[str, str]]:
        self._check_refusal()
        if str(body.get("recordKeeper", "")).lower() != self.chain.network.fwss.lower():
            raise HttpError(403, "recordKeeper address not allowed for public service")
        pieces = self._pieces(body)
        create, add = signing.decode_create_and_add_extra(_hex(body.get("extraData")))
        payee = self.chain.providers[self.provider_id].payee
        message = signing.create_data_set_message(create.client_data_set_id, payee, create.metadata)
        self._check_signer("CreateDataSet", message, create.signature, create.payer)
        self._check_add(create.client_data_set_id, add, pieces, create.payer)
        tx = self.chain.submit_create_and_add(
            self.provider_id, create.payer, create.client_data_set_id, add.nonce, pieces
        )
        self._creates[tx.tx_hash] = tx
        return 201, {"Location": f"/pdp/data-sets/created/{tx.tx_hash}"}

    def add_pieces(self, data_set_id: int, body: dict[str, Any]) -> tuple[int, dict[str, str]]:
        self._check_refusal()
        data_set = self._own_data_set(data_set_id)
        pieces = self._pieces(body)
        add = signing.decode_add_extra(_hex(body.get("extraData")))
        self._check_add(data_set.client_data_set_id, add, pieces, data_set.payer)
        tx = self.chain.submit_add(data_set_id, add.nonce, pieces)
        return 201, {"Location": f"/pdp/data-sets/{data_set_id}/pieces/added/{tx.tx_hash}"}

    def _check_add(self, client_data_set_id: int, add: signing.AddPiecesExtra, pieces: list[bytes], payer: str) -> None:
        cids = [signing.piece_cid_text(piece) for piece in pieces]
        message = signing.add_pieces_message(client_data_set_id, add.nonce, cids, add.metadata)
        self._check_signer("AddPieces", message, add.signature, payer)

    def _check_signer(self, primary_type: str, message: dict[str, Any], signature: bytes, payer: str) -> None:
        try:
            signer = signing.recover_signer(self.chain.network, primary_type, message, signature)
        except ValueError as error:
            raise HttpError(400, f"{primary_type}: {error}") from None
        if signer.lower() != payer.lower():
            raise HttpError(400, f"{primary_type}: signed by {signer}, not by the payer {payer}")

    def _own_data_set(self, data_set_id: int) -> Any:
        data_set = self.chain.data_sets.get(data_set_id)
        if data_set is None or data_set.provider_id != self.provider_id:
            raise HttpError(404, "Data set not found")
        return data_set

    def creation_status(self, tx_hash: str) -> tuple[int, Any]:
        tx = self._creates.get(tx_hash.lower())
        if tx is None:
            return 404, "Data set creation not found for given txHash"
        body: dict[str, Any] = {
            "createMessageHash": tx.tx_hash,
            "dataSetCreated": tx.status == 1,
            "service": "public",
            "txStatus": _tx_status(tx),
            "ok": None if tx.status is None else tx.status == 1,
        }
        if tx.status == 1:
            body["dataSetId"] = tx.data_set_id
        if tx.status is not None:
            body["confirmedTxHash"] = tx.confirmed_hash or tx.tx_hash
        return 200, body

    def addition_status(self, data_set_id: int, tx_hash: str) -> tuple[int, Any]:
        self._own_data_set(data_set_id)
        tx = self.chain.transactions.get(tx_hash.lower())
        if tx is None or (tx.status == 1 and tx.data_set_id != data_set_id):
            return 404, "Piece addition not found for given transaction"
        body: dict[str, Any] = {
            "txHash": tx.tx_hash,
            "txStatus": _tx_status(tx),
            "dataSetId": data_set_id,
            "pieceCount": max(1, len(tx.piece_ids)),
            "addMessageOk": None if tx.status is None else tx.status == 1,
            "piecesAdded": tx.status == 1,
        }
        if tx.status == 1:
            body["confirmedPieceIds"] = list(tx.piece_ids)
        if tx.status is not None:
            body["confirmedTxHash"] = tx.confirmed_hash or tx.tx_hash
        return 200, body

    def delete_piece(self, data_set_id: int, piece_id: int, body: dict[str, Any]) -> tuple[int, Any]:
        data_set = self._own_data_set(data_set_id)
        piece_ids = [int(p) for p in body.get("pieceIds") or [piece_id]]
        if any(p not in data_set.pieces for p in piece_ids):
            raise HttpError(404, "One or more piece not found")
        signature = signing.decode_removals_extra(_hex(body.get("extraData")))
        message = signing.schedule_removals_message(data_set.client_data_set_id, piece_ids)
        self._check_signer("SchedulePieceRemovals", message, signature, data_set.payer)
        tx = self.chain.submit_removal(data_set_id, piece_ids)
        return 200, {"txHash": tx.tx_hash}


def start_fake_network(
    providers: list[tuple[str, str]], epoch_seconds: float | None = None
) -> tuple[FakeChain, list[FakePdpProvider]]:
    """A started fake chain with a started fake provider per (name, location), in registry order."""
    chain = FakeChain()
    chain.start(epoch_seconds)
    started = [FakePdpProvider(chain, name, location) for name, location in providers]
    for provider in started:
        provider.start()
    return chain, started


def stop_fake_network(chain: FakeChain, providers: list[FakePdpProvider]) -> None:
    for provider in providers:
        provider.stop()
    chain.stop()


def _tx_status(tx: Transaction) -> str:
    return {None: "pending", 1: "confirmed", 0: "rejected"}[tx.status]


def _valid_piece_cid(piece_cid: str) -> None:
    try:
        decode_piece_cid_v2(piece_cid)
    except PieceCidError as error:
        raise HttpError(400, f"Failed to parse CID: {error}") from None


def _hex(value: Any) -> bytes:
    try:
        return bytes.fromhex(str(value).removeprefix("0x"))
    except ValueError:
        raise HttpError(400, "Invalid extraData format (must be hex encoded)") from None


def _body_chunks(read: Callable[[int], bytes], length: int | None) -> Any:
    """The request body: Content-Length bytes, or the chunks of a chunked transfer encoding."""
    if length is not None:
        left = length
        while left > 0:
            chunk = read(min(left, 1 << 16))
            if not chunk:
                raise ConnectionAbortedError("body ended early")
            left -= len(chunk)
            yield chunk
        return
    while True:
        size = int(read_line(read).split(b";")[0], 16)
        if size == 0:
            read_line(read)
            return
        yield read(size)
        read(2)


def read_line(read: Callable[[int], bytes]) -> bytes:
    line = b""
    while not line.endswith(b"\r\n"):
        byte = read(1)
        if not byte:
            raise ConnectionAbortedError("body ended early")
        line += byte
    return line[:-2]


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"/pdp/piece"), "find"),
    ("POST", re.compile(r"/pdp/piece/uploads"), "create_upload"),
    ("PUT", re.compile(r"/pdp/piece/uploads/([0-9a-f-]+)"), "upload"),
    ("POST", re.compile(r"/pdp/piece/uploads/([0-9a-f-]+)"), "finalize"),
    ("POST", re.compile(r"/pdp/data-sets/create-and-add"), "create_and_add"),
    ("GET", re.compile(r"/pdp/data-sets/created/" + _HASH), "created"),
    ("POST", re.compile(r"/pdp/data-sets/(\d+)/pieces"), "add"),
    ("GET", re.compile(r"/pdp/data-sets/(\d+)/pieces/added/" + _HASH), "added"),
    ("DELETE", re.compile(r"/pdp/data-sets/(\d+)/pieces/(\d+)"), "delete"),
]


class _Handler(BaseHTTPRequestHandler):
    provider: FakePdpProvider
    protocol_version = "HTTP/1.1"
    # Headers and body are written apart: without this, Nagle and delayed ACKs add ~40 ms per request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else (json.dumps(body) if isinstance(body, dict) else str(body)).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json_body(self) -> dict[str, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise HttpError(400, "Invalid JSON in request body") from None
        if not isinstance(body, dict):
            raise HttpError(400, "Invalid JSON in request body")
        return body

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.provider.requests.append((self.command, split.path))
        for method, pattern, action in _ROUTES:
            match = pattern.fullmatch(split.path)
            if method == self.command and match:
                try:
                    self._serve(action, match.groups(), parse_qs(split.query))
                except HttpError as error:
                    # The body may be unread: this connection cannot carry another request.
                    self.close_connection = True
                    self._reply(error.status, str(error))
                except ConnectionAbortedError:
                    self.close_connection = True
                return
        self._reply(404, "404 page not found")

    def _serve(self, action: str, groups: tuple[str, ...], query: dict[str, list[str]]) -> None:
        provider = self.provider
        if action == "find":
            self._reply(*provider.find_piece(query))
        elif action == "create_upload":
            status, headers = provider.create_upload()
            self._reply(status, "Created", headers)
        elif action == "upload":
            length = self.headers.get("Content-Length")
            provider.receive_upload(groups[0], self.rfile.read, int(length) if length is not None else None)
            self._reply(204)
        elif action == "finalize":
            self._reply(*provider.finalize_upload(groups[0], self._json_body()))
        elif action in ("create_and_add", "add"):
            body = self._json_body()
            status, headers = (
                provider.create_and_add(body)
                if action == "create_and_add"
                else provider.add_pieces(int(groups[0]), body)
            )
            self._reply(status, None, headers)
        elif action == "created":
            self._reply(*provider.creation_status(groups[0]))
        elif action == "added":
            self._reply(*provider.addition_status(int(groups[0]), groups[1]))
        else:
            self._reply(*provider.delete_piece(int(groups[0]), int(groups[1]), self._json_body()))

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch
