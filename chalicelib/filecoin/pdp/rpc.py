"""Chain reads over Ethereum JSON-RPC (Filecoin's FEVM endpoints answer it):
eth_call with ABI-encoded calldata, eth_getTransactionReceipt, eth_blockNumber.

Every failure to get a well-formed answer (no connection, a timeout, an HTTP
error, a JSON-RPC error, bytes that do not decode) is BackendUnavailable:
nothing was changed, the caller tries again later.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from eth_abi.abi import decode, encode
from eth_utils.abi import function_signature_to_4byte_selector

from chalicelib.filecoin.backend import BackendUnavailable
from chalicelib.filecoin.pdp.contracts import CALLS, Network


def selector(signature: str) -> bytes:
    """The 4-byte function selector: the first bytes of keccak256(signature)."""
    return bytes(function_signature_to_4byte_selector(signature))


def calldata(name: str, args: Sequence[Any]) -> bytes:
    call = CALLS[name]
    return selector(call.signature) + encode(list(call.arg_types), list(args))


@dataclass(frozen=True)
class TxReceipt:
    """What this backend reads of a mined transaction."""

    succeeded: bool
    block: int


class ChainRpc:
    """A JSON-RPC client for one network's contracts."""

    def __init__(self, url: str, network: Network, timeout: float = 10.0, session: requests.Session | None = None):
        self.url = url
        self.network = network
        self._timeout = timeout
        self._session = session or requests.Session()
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"ChainRpc({self.url!r}, {self.network.name})"

    def request(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            response = self._session.post(self.url, json=body, timeout=self._timeout)
        except requests.RequestException as error:
            raise BackendUnavailable(f"chain RPC {method}: {type(error).__name__}") from None
        if response.status_code != 200:
            raise BackendUnavailable(f"chain RPC {method}: HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise BackendUnavailable(f"chain RPC {method}: not JSON") from None
        if not isinstance(answer, dict):
            raise BackendUnavailable(f"chain RPC {method}: not a JSON-RPC answer")
        if answer.get("error") is not None:
            failure = answer["error"]
            message = failure.get("message") if isinstance(failure, dict) else failure
            raise BackendUnavailable(f"chain RPC {method}: {message}")
        if "result" not in answer:
            raise BackendUnavailable(f"chain RPC {method}: no result")
        return answer["result"]

    def call(self, name: str, *args: Any) -> tuple[Any, ...]:
        """Calls a view function of CALLS on its contract at the latest block; its decoded results."""
        view = CALLS[name]
        to = getattr(self.network, view.contract)
        data = "0x" + calldata(name, args).hex()
        result = self.request("eth_call", [{"to": to, "data": data}, "latest"])
        try:
            return tuple(decode(list(view.returns), _hex_bytes(result)))
        except Exception:
            raise BackendUnavailable(f"chain RPC {name}: an answer that does not decode") from None

    def block_number(self) -> int:
        return _hex_int(self.request("eth_blockNumber", []), "eth_blockNumber")

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        """The transaction's receipt, or None while it is not mined (or unknown)."""
        result = self.request("eth_getTransactionReceipt", [tx_hash])
        if result is None:
            return None
        if not isinstance(result, dict):
            raise BackendUnavailable("chain RPC eth_getTransactionReceipt: not a receipt")
        return TxReceipt(
            succeeded=_hex_int(result.get("status"), "receipt status") == 1,
            block=_hex_int(result.get("blockNumber"), "receipt blockNumber"),
        )


def _hex_bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError("not hex")
    return bytes.fromhex(value[2:])


def _hex_int(value: Any, what: str) -> int:
    try:
        if not isinstance(value, str) or not value.startswith("0x"):
            raise ValueError(what)
        return int(value, 16)
    except ValueError:
        raise BackendUnavailable(f"chain RPC: {what} is not a hex quantity") from None
