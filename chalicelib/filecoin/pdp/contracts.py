"""Where the Filecoin Onchain Cloud contracts live, and the view calls this
backend makes on them: one table of signatures and result types that both
the backend (encoding calls, decoding results) and devstack's fake chain
(decoding calls, encoding results) read, so the two cannot drift apart.

Addresses: FilOzone/synapse-sdk, packages/synapse-core/src/abis/generated.ts
and chains.ts (USDFC); signatures: the same ABIs (see docs/filecoin-pdp.md).
"""

from __future__ import annotations

from dataclasses import dataclass

EPOCH_SECONDS = 30
# The service provider registry's product type for PDP.
PDP_PRODUCT_TYPE = 0
# Curio's largest piece upload: the unpadded size of a 1 GiB piece (pdp/handlers_upload.go).
MAX_UPLOAD_BYTES = 1_065_353_216
MIN_UPLOAD_BYTES = 127
# FilecoinPay reports an account funded forever (no lockup rate) as this epoch.
FOREVER = 2**256 - 1


@dataclass(frozen=True)
class Network:
    """One Filecoin network's chain id and contract addresses."""

    name: str
    chain_id: int
    fwss: str  # FilecoinWarmStorageService: EIP-712 verifying contract and record keeper
    fwss_view: str  # its state view (reads)
    pdp_verifier: str
    registry: str  # ServiceProviderRegistry
    payments: str  # FilecoinPayV1
    usdfc: str


MAINNET = Network(
    name="mainnet",
    chain_id=314,
    fwss="0x8408502033C418E1bbC97cE9ac48E5528F371A9f",
    fwss_view="0xdDd8F083a3fe9C66547D46bee24e5AaF56BCa0ab",
    pdp_verifier="0xBADd0B92C1c71d02E7d520f64c0876538fa2557F",
    registry="0xf55dDbf63F1b55c3F1D4FA7e339a68AB7b64A5eB",
    payments="0x23b1e018F08BB982348b15a86ee926eEBf7F4DAa",
    usdfc="0x80B98d3aa09ffff255c3ba4A241111Ff1262F045",
)

CALIBRATION = Network(
    name="calibration",
    chain_id=314159,
    fwss="0x02925630df557F957f70E112bA06e50965417CA0",
    fwss_view="0x9BF9e67e83EC8613883FDdDec4D3b38AEE937177",
    pdp_verifier="0x85e366Cf9DD2c0aE37E963d9556F5f4718d6417C",
    registry="0x839e5c9988e4e9977d40708d0094103c0839Ac9D",
    payments="0x09a0fDc2723fAd1A7b8e3e00eE5DF73841df55a0",
    usdfc="0xb3042734b608a1B16e9e86B374A3f3e389B4cDf0",
)

NETWORKS = {network.name: network for network in (MAINNET, CALIBRATION)}


@dataclass(frozen=True)
class ViewCall:
    """A contract view function: which contract (a Network field name), its
    Solidity signature (what the selector hashes) and its result types."""

    contract: str
    signature: str
    returns: tuple[str, ...]

    @property
    def arg_types(self) -> tuple[str, ...]:
        inner = self.signature[self.signature.index("(") + 1 : -1]
        return tuple(_split_types(inner))


def _split_types(types: str) -> list[str]:
    """Top-level comma split of an ABI type list (tuples keep their commas)."""
    parts: list[str] = []
    depth, start = 0, 0
    for at, char in enumerate(types):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(types[start:at])
            start = at + 1
    if types:
        parts.append(types[start:])
    return parts


_PROVIDER_INFO = "(address,address,string,string,bool)"
_PRODUCT = "(uint8,string[],bool)"
# FWSS DataSetInfoView: pdpRailId, cacheMissRailId, cdnRailId, payer, payee,
# serviceProvider, commissionBps, clientDataSetId, pdpEndEpoch, providerId,
# pendingOneTimePayments, lifecycleReserveBalance, dataSetId (synapse-core's
# ABI; the older one in pynapse 0.2.0 lacks the two uint96 fields).
DATA_SET_INFO = (
    "(uint256,uint256,uint256,address,address,address,uint256,uint256,uint256,uint256,uint96,uint96,uint256)"
)

CALLS = {
    call_name: ViewCall(contract, signature, returns)
    for call_name, (contract, signature, returns) in {
        # PDPVerifier
        "dataSetLive": ("pdp_verifier", "dataSetLive(uint256)", ("bool",)),
        "pieceLive": ("pdp_verifier", "pieceLive(uint256,uint256)", ("bool",)),
        "getDataSetLastProvenEpoch": ("pdp_verifier", "getDataSetLastProvenEpoch(uint256)", ("uint256",)),
        "getNextChallengeEpoch": ("pdp_verifier", "getNextChallengeEpoch(uint256)", ("uint256",)),
        # FilecoinWarmStorageServiceStateView
        "getClientDataSets": ("fwss_view", "getClientDataSets(address)", (f"{DATA_SET_INFO}[]",)),
        "getDataSet": ("fwss_view", "getDataSet(uint256)", (DATA_SET_INFO,)),
        "clientNonces": ("fwss_view", "clientNonces(address,uint256)", ("uint256",)),
        "getPDPConfig": ("fwss_view", "getPDPConfig()", ("uint64", "uint256", "uint256", "uint256")),
        # FilecoinWarmStorageService: pricePerTiBPerMonthNoCDN, pricePerTiBCdnEgress,
        # pricePerTiBCacheMissEgress, tokenAddress, epochsPerMonth, datasetFeePerMonth.
        "getServicePrice": ("fwss", "getServicePrice()", ("(uint256,uint256,uint256,address,uint256,uint256)",)),
        # ServiceProviderRegistry: providers with their product's capability keys and values.
        "getProvidersByProductType": (
            "registry",
            "getProvidersByProductType(uint8,bool,uint256,uint256)",
            (f"((uint256,{_PROVIDER_INFO},{_PRODUCT},bytes[])[],bool)",),
        ),
        # FilecoinPayV1: fundedUntilEpoch, currentFunds, availableFunds, currentLockupRate.
        "getAccountInfoIfSettled": (
            "payments",
            "getAccountInfoIfSettled(address,address)",
            ("uint256", "uint256", "uint256", "uint256"),
        ),
    }.items()
}
