"""A FilecoinBackend in dicts, for domain tests: providers that store what
they are given, copies whose state a test moves, faults a test switches on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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


@dataclass
class MemoryBackend:
    listed: list[Provider] = field(default_factory=list)
    # The copies each provider holds, by (provider, piece CID).
    held: dict[tuple[str, str], Receipt] = field(default_factory=dict)
    # Bytes each store received.
    stored_bytes: dict[tuple[str, str], bytes] = field(default_factory=dict)
    refusing: set[str] = field(default_factory=set)
    available: int = 10**30
    cost: int = 1
    down: bool = False
    stores: int = 0
    name: str = "memory"

    @classmethod
    def with_providers(cls, *ids: str, regions: dict[str, str] | None = None) -> MemoryBackend:
        regions = regions or {}
        listed = [Provider(i, f"sp {i}", f"https://{i}.example", regions.get(i)) for i in ids]
        return cls(listed=listed)

    def providers(self) -> list[Provider]:
        self._check()
        return list(self.listed)

    def store(self, provider: Provider, piece: Piece, data: PieceBytes, deadline: float) -> Receipt:
        self._check()
        if provider.provider_id in self.refusing:
            raise CopyRefused(f"{provider.provider_id} will not store {piece.piece_cid}")
        key = (provider.provider_id, piece.piece_cid)
        if key in self.held:  # a retry makes no second copy
            return self.held[key]
        self.stores += 1
        self.stored_bytes[key] = b"".join(data.chunks())
        receipt = Receipt(
            provider.provider_id,
            piece.piece_cid,
            CopyState.ADDING,
            data_set_id=f"ds-{provider.provider_id}",
            piece_id=str(self.stores),
            transactions=(f"0x{self.stores:064x}",),
        )
        self.held[key] = receipt
        return receipt

    def follow(self, receipt: Receipt) -> Receipt:
        self._check()
        return self.held.get((receipt.provider_id, receipt.piece_cid), receipt)

    def end(self, receipt: Receipt) -> Receipt:
        self._check()
        key = (receipt.provider_id, receipt.piece_cid)
        ended = replace(self.held.get(key, receipt), state=CopyState.ENDED)
        self.held[key] = ended
        return ended

    def funds(self) -> Funds:
        self._check()
        return Funds(available=self.available, locked=0)

    def cost_per_epoch(self, piece: Piece) -> int:
        return self.cost

    # -- what a test does to the providers -------------------------------------

    def move(self, provider_id: str, state: CopyState, **changes: object) -> None:
        """Every copy the provider holds is now in `state`."""
        for key, receipt in list(self.held.items()):
            if key[0] == provider_id:
                self.held[key] = replace(receipt, state=state, **changes)  # type: ignore[arg-type]

    def prove_all(self) -> None:
        for key, receipt in list(self.held.items()):
            if receipt.state is CopyState.ADDING:
                self.held[key] = replace(receipt, state=CopyState.PROVING, last_proven_epoch=1)

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable("the chain RPC is down")
