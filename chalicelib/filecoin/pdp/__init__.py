"""PDP (Proof of Data Possession) on Filecoin Onchain Cloud: the FilecoinBackend
that makes copies as pieces in the service wallet's data sets with Curio
storage providers (backend.py), the provider's HTTP routes (provider_api.py),
chain reads over JSON-RPC (rpc.py, contracts.py) and the wallet's EIP-712
authorisations (signing.py). Wire formats and sources: docs/filecoin-pdp.md.

Nothing is imported here: the backend pulls in eth-abi, requests and (to
sign) eth-account, so wiring imports chalicelib.filecoin.pdp.backend only
where copies are made or followed.
"""
