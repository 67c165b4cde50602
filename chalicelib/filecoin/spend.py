"""Money for copies: what one copy costs for its term, the calendar month a
reservation counts in, and the chain's epoch by the clock.

A copy's term cost (cost_per_epoch x FILECOIN_TERM_EPOCHS) is reserved in
the month's ledger when the copy is begun, and refused beyond
FILECOIN_SPEND_CAP (0: nothing may be spent, so a stage that turns copies
on must also say how much they may cost). A reservation is kept once the
copy is recorded, whatever becomes of it: the cap bounds what the service
commits to, not what the providers bill.
"""

from __future__ import annotations

import time

# One Filecoin epoch.
EPOCH_SECONDS = 30
# Mainnet's genesis (2020-08-24 22:00:00 UTC); calibnet's differs (FILECOIN_GENESIS_UNIX).
MAINNET_GENESIS_UNIX = 1598306400


def period_of(now_ms: int) -> str:
    """The calendar month (UTC) a reservation at `now_ms` counts in: YYYY-MM."""
    return time.strftime("%Y-%m", time.gmtime(now_ms // 1000))


def term_cost(cost_per_epoch: int, term_epochs: int) -> int:
    return cost_per_epoch * term_epochs


def epoch_at(now_ms: int, genesis_unix: int) -> int:
    """The chain's epoch at `now_ms` (epochs are 30 s from genesis, null rounds included)."""
    return max(0, (now_ms // 1000 - genesis_unix) // EPOCH_SECONDS)
