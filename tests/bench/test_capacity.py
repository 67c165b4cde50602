"""The capacity benchmark: DynamoDB's accounting rules, the conflict model,
and one short run through the real code paths (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import capacity
from bench.capacity_conflicts import RetryPolicy, Timing, replay
from bench.capacity_units import Index, ItemWrite, TableSchema

STATUS_INDEX = Index("status-created", True, "tenant", "status_sort", "ALL", frozenset())
PINS = TableSchema("pins", "tenant", "created", (STATUS_INDEX,))


def pin(status: str, padding: int = 0) -> dict:
    return {
        "tenant": {"S": "t"},
        "created": {"N": "1"},
        "status_sort": {"S": f"{status}#1"},
        "pad": {"S": "x" * padding},
    }


def test_a_write_costs_a_unit_per_started_kb_twice_in_a_transaction_and_again_for_each_index_entry() -> None:
    # given a pin of just over 1 KB created in a transaction, its index entry written beside it
    created = ItemWrite(PINS, None, pin("queued", padding=1000), transactional=True)
    # when its units are counted
    units = list(created.units())
    # then the item and its index entry each cost 2 KB x 2
    assert [u for _, u in units] == [4.0, 4.0]


def test_moving_an_index_key_deletes_one_entry_and_puts_another_while_an_unchanged_entry_costs_nothing() -> None:
    # given a small pin whose status (an index key) changes, outside a transaction
    moved = ItemWrite(PINS, pin("queued"), pin("pinning"), transactional=False)
    # and a write that leaves the item as it was
    same = ItemWrite(PINS, pin("pinned"), pin("pinned"), transactional=False)
    # then the move costs the item plus two index writes, the no-op only the item
    assert sum(u for _, u in moved.units()) == 3.0
    assert sum(u for _, u in same.units()) == 1.0


POLICY = RetryPolicy(retries=2, backoff_base_s=0.01)


def test_writers_who_share_no_item_never_conflict() -> None:
    plans = [[frozenset({"own"})] * 3]
    result = replay(plans, frozenset(), 50, POLICY, Timing(in_flight_s=1.0, think_s=0.01), seed=1)
    assert result.conflicts == 0 and result.exhausted == 0 and result.transactions == 150


def test_writers_of_one_hot_item_retry_and_run_out_of_retries_the_same_way_for_the_same_seed() -> None:
    # given writers whose every transaction touches one shared item, held far longer than their backoff
    plans = [[frozenset({"hot"})] * 2]
    timing = Timing(in_flight_s=1.0, think_s=0.01)
    # when 10 of them run
    first = replay(plans, frozenset({"hot"}), 10, POLICY, timing, seed=7)
    again = replay(plans, frozenset({"hot"}), 10, POLICY, timing, seed=7)
    # then most run out of retries (the API's 503), and the model is deterministic
    assert first.exhausted >= 8 and first.retries_per_pin > 0
    assert first == again


def test_one_short_run_measures_a_tenant_limited_by_its_partition_key(capsys: pytest.CaptureFixture[str]) -> None:
    # when two lifecycles of Kubo-shaped pins run through the app and the worker
    (figures,) = capacity.run(2, (10,), shapes=["Kubo's pin remote add"])
    capacity.report([figures], 2)
    printed = capsys.readouterr().out

    # then every step wrote, and today's tenant is capped by its one partition key with local indexes
    assert all(figures.steps[step].write_units > 0 for step in capacity.STEPS)
    assert "pins partition key {tenant}" in figures.binding.what
    assert 1 < figures.binding.pins_per_second < 1000
    assert figures.pins_until_limit is not None and figures.pins_until_limit < 100_000_000
    assert figures.conflicts[0].writers == 10
    assert "Capacity of ONE tenant" in printed
