"""Transaction conflicts among one tenant's concurrent writers, modelled.

DynamoDB cancels a transaction with `TransactionConflict` when another
transaction in flight touches one of its items; the caller retries. Here N
writers each replay one recorded pin lifecycle's transactions (the sets of
items they touched) on a seeded, simulated clock: no threads, no real time,
the same answer for the same seed. The newcomer is the one cancelled, and it
retries with the store's policy (a random wait, doubling per attempt); a
transaction that runs out of retries ends its writer's lifecycle there (the
API answers 503, a worker's message goes back to the queue).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

Transaction = frozenset[Hashable]  # the items one transaction touches


@dataclass(frozen=True)
class RetryPolicy:
    retries: int  # attempts after the first
    backoff_base_s: float  # retry k (from 0) waits uniform(0, base * 2**k)


@dataclass(frozen=True)
class Timing:
    in_flight_s: float  # how long a transaction holds its items
    think_s: float  # mean pause between one writer's transactions (its other work)

    def writers_for(self, pins_per_second: float, transactions_per_pin: float) -> int:
        """Concurrent writers that sustain `pins_per_second` when each pin's
        lifecycle is that many transactions, each in flight then followed by
        a pause: the rate times one lifecycle's duration."""
        writers = pins_per_second * transactions_per_pin * (self.in_flight_s + self.think_s)
        return math.ceil(round(writers, 6))  # 0.025 + 0.05 is not exactly 0.075 in binary


@dataclass(frozen=True)
class ConflictResult:
    writers: int
    transactions: int  # committed
    conflicts: int  # cancelled attempts, each retried or given up
    exhausted: int  # transactions that ran out of retries
    makespan_s: float  # simulated time until the last writer finished

    @property
    def conflict_rate(self) -> float:
        """Cancelled attempts per transaction begun (committed or given up)."""
        begun = self.transactions + self.exhausted
        return self.conflicts / begun if begun else 0.0

    @property
    def retries_per_pin(self) -> float:
        return (self.conflicts - self.exhausted) / self.writers

    @property
    def exhausted_share(self) -> float:
        """Share of the writers' lifecycles cut short by a transaction that ran out of retries."""
        return self.exhausted / self.writers

    @property
    def pins_per_second(self) -> float:
        return (self.writers - self.exhausted) / self.makespan_s if self.makespan_s else 0.0


def replay(
    lifecycles: Sequence[Sequence[Transaction]],
    shared: frozenset[Hashable],
    writers: int,
    policy: RetryPolicy,
    timing: Timing,
    seed: int,
) -> ConflictResult:
    """Writer i replays lifecycles[i % len(lifecycles)], starting within one
    think time. Items in `shared` (those several recorded lifecycles touched,
    such as a tenant's counters) are the same item for every writer; any
    other item is the writer's own (its pin, its outbox message)."""
    rng = random.Random(seed)
    # (time, tie-breaker, writer, transaction index, attempt)
    events = [(rng.uniform(0, timing.think_s), i, i, 0, 0) for i in range(writers)]
    heapq.heapify(events)
    held: dict[Hashable, float] = {}  # item -> when the transaction holding it ends
    committed = conflicts = exhausted = 0
    order = writers
    finished = 0.0
    while events:
        now, _, writer, step, attempt = heapq.heappop(events)
        plan = lifecycles[writer % len(lifecycles)]
        items = {item if item in shared else (writer, item) for item in plan[step]}
        if any(held.get(item, 0.0) > now for item in items):
            conflicts += 1
            if attempt == policy.retries:
                exhausted += 1
                finished = max(finished, now)
                continue
            wait = rng.uniform(0, policy.backoff_base_s * 2**attempt)
            order += 1
            heapq.heappush(events, (now + wait, order, writer, step, attempt + 1))
            continue
        done = now + timing.in_flight_s
        held.update(dict.fromkeys(items, done))
        committed += 1
        if step + 1 == len(plan):
            finished = max(finished, done)
            continue
        order += 1
        heapq.heappush(events, (done + rng.expovariate(1 / timing.think_s), order, writer, step + 1, 0))
    return ConflictResult(writers, committed, conflicts, exhausted, finished)
