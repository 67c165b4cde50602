"""The service wallet's EIP-712 authorisations for FilecoinWarmStorageService
(FWSS), and the `extraData` FWSS decodes them from.

The storage provider submits the transaction; the payer authorises it by
signing typed data whose domain is FWSS on the network's chain
(`FilecoinWarmStorageService`, version `1`). What each extraData holds (FWSS
`abi.decode`s it; see docs/filecoin-pdp.md for the sources):
- CreateDataSet: (address payer, uint256 clientDataSetId, string[] keys, string[] values, bytes signature)
- AddPieces: (uint256 nonce, string[][] keys, string[][] values, bytes signature)
- create-and-add: (bytes createDataSetExtraData, bytes addPiecesExtraData)
- SchedulePieceRemovals: (bytes signature)

FWSS keeps one replay-protection map per payer for CreateDataSet's
clientDataSetId and AddPieces' nonce; the backend derives both from what
they are for (`derived_nonce`), which makes a repeated submission revert
instead of making a second copy.

The key comes from a callable on every signature and is never kept, logged,
shown in a repr or carried by an exception (eth-account's own errors are
replaced, not chained). eth-account costs ~0.5 s to import, so it is loaded
only when something is signed or checked.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

from chalicelib.cold.cids import cid_from_bytes
from chalicelib.cold.commp import decode_piece_cid_v2
from chalicelib.filecoin.backend import BackendUnavailable
from chalicelib.filecoin.pdp.contracts import Network

DOMAIN_NAME = "FilecoinWarmStorageService"
DOMAIN_VERSION = "1"

TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "MetadataEntry": [{"name": "key", "type": "string"}, {"name": "value", "type": "string"}],
    "CreateDataSet": [
        {"name": "clientDataSetId", "type": "uint256"},
        {"name": "payee", "type": "address"},
        {"name": "metadata", "type": "MetadataEntry[]"},
    ],
    "Cid": [{"name": "data", "type": "bytes"}],
    "PieceMetadata": [
        {"name": "pieceIndex", "type": "uint256"},
        {"name": "metadata", "type": "MetadataEntry[]"},
    ],
    "AddPieces": [
        {"name": "clientDataSetId", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "pieceData", "type": "Cid[]"},
        {"name": "pieceMetadata", "type": "PieceMetadata[]"},
    ],
    "SchedulePieceRemovals": [
        {"name": "clientDataSetId", "type": "uint256"},
        {"name": "pieceIds", "type": "uint256[]"},
    ],
}

CREATE_EXTRA = ["address", "uint256", "string[]", "string[]", "bytes"]
ADD_EXTRA = ["uint256", "string[][]", "string[][]", "bytes"]
CREATE_AND_ADD_EXTRA = ["bytes", "bytes"]
REMOVALS_EXTRA = ["bytes"]

Metadata = Sequence[tuple[str, str]]


class WalletError(BackendUnavailable):
    """The wallet key could not be read or could not sign (no detail: it may be about the key)."""


def domain(network: Network) -> dict[str, Any]:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": network.chain_id,
        "verifyingContract": network.fwss,
    }


def _entries(metadata: Metadata) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in metadata]


def create_data_set_message(client_data_set_id: int, payee: str, metadata: Metadata) -> dict[str, Any]:
    return {"clientDataSetId": client_data_set_id, "payee": payee, "metadata": _entries(metadata)}


def add_pieces_message(
    client_data_set_id: int, nonce: int, piece_cids: Sequence[str], metadata: Sequence[Metadata]
) -> dict[str, Any]:
    return {
        "clientDataSetId": client_data_set_id,
        "nonce": nonce,
        # The binary CID (v2) of each piece, as PDPVerifier stores it.
        "pieceData": [{"data": piece_cid_binary(cid)} for cid in piece_cids],
        "pieceMetadata": [
            {"pieceIndex": index, "metadata": _entries(entries)} for index, entries in enumerate(metadata)
        ],
    }


def schedule_removals_message(client_data_set_id: int, piece_ids: Sequence[int]) -> dict[str, Any]:
    return {"clientDataSetId": client_data_set_id, "pieceIds": list(piece_ids)}


def _types_of(primary_type: str) -> dict[str, list[dict[str, str]]]:
    """The domain, the primary type and the struct types it uses: eth-account
    refuses a set of types with more than one root."""
    wanted, pending = {"EIP712Domain"}, [primary_type]
    while pending:
        name = pending.pop()
        wanted.add(name)
        pending.extend(
            field["type"].removesuffix("[]")
            for field in TYPES[name]
            if field["type"].removesuffix("[]") in TYPES and field["type"].removesuffix("[]") not in wanted
        )
    return {name: TYPES[name] for name in TYPES if name in wanted}


def _signable(network: Network, primary_type: str, message: dict[str, Any]) -> Any:
    from eth_account.messages import encode_typed_data

    full = {
        "types": _types_of(primary_type),
        "primaryType": primary_type,
        "domain": domain(network),
        "message": message,
    }
    return encode_typed_data(full_message=full)


def recover_signer(network: Network, primary_type: str, message: dict[str, Any], signature: bytes) -> str:
    """The address that signed this typed message (checksummed); raises ValueError on a malformed signature."""
    from eth_account import Account

    try:
        return str(Account.recover_message(_signable(network, primary_type, message), signature=signature))
    except Exception as error:
        raise ValueError(f"not a valid signature: {type(error).__name__}") from None


def derived_nonce(*parts: str | int) -> int:
    """A uint256 from what it stands for: the same parts give the same nonce on every retry."""
    return int.from_bytes(keccak(text="\x1f".join(str(part) for part in parts)), "big")


@dataclass(frozen=True)
class AddPiecesExtra:
    nonce: int
    metadata: list[list[tuple[str, str]]]
    signature: bytes


@dataclass(frozen=True)
class CreateDataSetExtra:
    payer: str
    client_data_set_id: int
    metadata: list[tuple[str, str]]
    signature: bytes


def decode_create_extra(extra: bytes) -> CreateDataSetExtra:
    payer, client_data_set_id, keys, values, signature = decode(CREATE_EXTRA, extra)
    return CreateDataSetExtra(payer, client_data_set_id, list(zip(keys, values, strict=True)), signature)


def decode_add_extra(extra: bytes) -> AddPiecesExtra:
    nonce, keys, values, signature = decode(ADD_EXTRA, extra)
    metadata = [list(zip(k, v, strict=True)) for k, v in zip(keys, values, strict=True)]
    return AddPiecesExtra(nonce, metadata, signature)


def decode_create_and_add_extra(extra: bytes) -> tuple[CreateDataSetExtra, AddPiecesExtra]:
    create, add = decode(CREATE_AND_ADD_EXTRA, extra)
    return decode_create_extra(create), decode_add_extra(add)


def decode_removals_extra(extra: bytes) -> bytes:
    (signature,) = decode(REMOVALS_EXTRA, extra)
    return bytes(signature)


def piece_cid_binary(text: str) -> bytes:
    """The binary CID of a v2 piece CID (base32 text, as commp writes it); PieceCidError if it is none."""
    decode_piece_cid_v2(text)
    body = text[1:].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


def piece_cid_text(binary: bytes) -> str:
    """A piece CID as the text the provider's routes take, from the bytes signed for it."""
    return str(cid_from_bytes(binary))


class Wallet:
    """The service wallet: signs FWSS authorisations with a key it asks for each time."""

    def __init__(self, key_source: Callable[[], str], network: Network):
        self._key_source = key_source
        self.network = network
        self._address: str | None = None

    def __repr__(self) -> str:
        return f"Wallet({self._address or 'address not read yet'}, {self.network.name})"

    @property
    def address(self) -> str:
        if self._address is None:
            from eth_account import Account

            try:
                self._address = str(Account.from_key(self._key_source()).address)
            except Exception:
                raise WalletError("the wallet key could not be read") from None
        return self._address

    def _sign(self, primary_type: str, message: dict[str, Any]) -> bytes:
        from eth_account import Account

        signable = _signable(self.network, primary_type, message)
        try:
            return bytes(Account.sign_message(signable, private_key=self._key_source()).signature)
        except Exception:
            raise WalletError(f"the wallet key could not sign {primary_type}") from None

    def create_data_set_extra(self, client_data_set_id: int, payee: str, metadata: Metadata) -> bytes:
        message = create_data_set_message(client_data_set_id, payee, metadata)
        signature = self._sign("CreateDataSet", message)
        keys, values = [key for key, _ in metadata], [value for _, value in metadata]
        return encode(CREATE_EXTRA, [self.address, client_data_set_id, keys, values, signature])

    def add_pieces_extra(
        self, client_data_set_id: int, nonce: int, piece_cids: Sequence[str], metadata: Sequence[Metadata]
    ) -> bytes:
        signature = self._sign("AddPieces", add_pieces_message(client_data_set_id, nonce, piece_cids, metadata))
        keys = [[key for key, _ in entries] for entries in metadata]
        values = [[value for _, value in entries] for entries in metadata]
        return encode(ADD_EXTRA, [nonce, keys, values, signature])

    def create_and_add_extra(
        self,
        client_data_set_id: int,
        payee: str,
        data_set_metadata: Metadata,
        nonce: int,
        piece_cids: Sequence[str],
        piece_metadata: Sequence[Metadata],
    ) -> bytes:
        create = self.create_data_set_extra(client_data_set_id, payee, data_set_metadata)
        add = self.add_pieces_extra(client_data_set_id, nonce, piece_cids, piece_metadata)
        return encode(CREATE_AND_ADD_EXTRA, [create, add])

    def schedule_removals_extra(self, client_data_set_id: int, piece_ids: Sequence[int]) -> bytes:
        signature = self._sign("SchedulePieceRemovals", schedule_removals_message(client_data_set_id, piece_ids))
        return encode(REMOVALS_EXTRA, [signature])
