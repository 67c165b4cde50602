"""Real, valid CIDs (and deliberately invalid ones) for API tests.

Every helper is deterministic in its `seed`, so a test can name "the same
content" twice and get the same CID back.
"""

from __future__ import annotations

from multiformats import CID, multibase, multihash


def _digest(seed: object) -> bytes:
    return multihash.digest(f"test-content:{seed}".encode(), "sha2-256")


def cid_v1(seed: object, base: str = "base32") -> str:
    """A CIDv1 (raw leaves, sha2-256), as Kubo prints `ipfs add --cid-version 1`."""
    return str(CID(base, 1, "raw", _digest(seed)))


def cid_v0_pair(seed: object) -> tuple[str, str]:
    """The same dag-pb content as CIDv0 (`Qm...`) and as CIDv1 base32 (`bafy...`)."""
    digest = _digest(seed)
    return str(CID("base58btc", 0, "dag-pb", digest)), str(CID("base32", 1, "dag-pb", digest))


def canonical(cid: str) -> str:
    """CIDv1 base32 of any spelling: what two spellings of one CID share."""
    return str(CID.decode(cid).set(version=1, base="base32"))


def cid_with_hash(seed: object, hash_name: str, digest_bytes: int) -> str:
    """A well-formed CIDv1 whose multihash uses `hash_name` (e.g. md5, blake2b-128)."""
    raw = (f"{seed}".encode() * digest_bytes)[:digest_bytes].ljust(digest_bytes, b"\0")
    return str(CID("base32", 1, "raw", multihash.wrap(raw, hash_name)))


def peer_id(seed: object) -> str:
    """A valid libp2p peer ID (base58btc sha2-256 multihash, `Qm...`)."""
    return multibase.encode(multihash.digest(f"peer:{seed}".encode(), "sha2-256"), "base58btc")[1:]


def origin(seed: object, ip: str = "198.51.100.7") -> str:
    """A multiaddr of a provider, ending in /p2p/<peer ID> as the spec requires."""
    return f"/ip4/{ip}/tcp/4001/p2p/{peer_id(seed)}"
