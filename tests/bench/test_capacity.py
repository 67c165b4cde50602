"""The capacity benchmark: DynamoDB's accounting rules, the conflict model,
and one short run of the new model through the real code paths (no timing
is asserted)."""

from __future__ import annotations

import pytest

from bench import capacity
from bench.capacity_conflicts import RetryPolicy, Timing, replay
from bench.capacity_units import Index, ItemWrite, Place, TableSchema, sequential_range

STATUS_INDEX = Index("status-created", True, "tenant", "status_sort", "ALL", frozenset())
PINS = TableSchema("pins", "tenant", "created", (STATUS_INDEX,))
CREATED = "1760000000123"


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


@pytest.mark.parametrize(
    ("sort_key", "sequential"),
    [
        (f"s#g#{CREATED}", "s#g#"),  # a status copy: the status's range
        (f"p#{CREATED}", "p#"),
        (f"s#g#~{CREATED}#req-1#3", "s#g#~"),  # a count change: atop its stream, the time before its request
        (f"p#~{CREATED}#req-1#3", "p#~"),
        (f"c#bafkrei{CREATED}x#{CREATED}", "c#bafkrei1760000000123x#"),  # digits inside a value are no time
        (f"{CREATED}#message", ""),  # an outbox entry: the shard's one range
        ("k#2#7", "k#2#7"),  # a counter bucket, no time: an item of its own
    ],
)
def test_a_sort_key_is_in_the_range_of_its_prefix_before_the_time(sort_key: str, sequential: str) -> None:
    # when the range of an item of a shard is taken, then it is its partition key and that prefix
    assert sequential_range(Place("pins", "", "t#3", sort_key)) == Place("pins", "", "t#3", sequential)


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
    assert first.exhausted >= 8 and first.retries_per_pin > 0 and first.conflict_rate > 0.5
    assert first == again


def test_the_writers_a_rate_needs_are_the_rate_times_one_lifecycle() -> None:
    # given lifecycles of 9 transactions, each 25 ms in flight and 50 ms apart: 675 ms each
    timing = Timing(in_flight_s=0.025, think_s=0.05)
    # then 1,000 pins/s takes 675 writers
    assert timing.writers_for(1000, 9) == 675


def test_one_short_run_measures_the_new_model_per_shard_with_no_size_limit_and_no_conflicts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # when two lifecycles of Kubo-shaped pins run through the app and the worker, folded with 2 fillers a shard
    (figures,) = capacity.run(2, 2, shapes=["Kubo's pin remote add"])
    capacity.report(capacity.Models([figures], [figures], 2))
    printed = capsys.readouterr().out

    # then every step wrote, the folds too, and a shard's pin ranges and the folder's items are measured
    assert all(figures.steps[step].write_units > 0 for step in capacity.LIFECYCLE)
    assert {load.place.range for load in figures.loads if load.per_shard} >= {
        "p#",
        "s#q#",
        "s#g#",
        "s#p#",
        "p#~",
        "s#q#~",
    }
    # and the binding is a shard's sequential range, so the tenant needs more shards for 1,000 pins/s
    assert figures.per_shard_rate is not None and 1 < figures.per_shard_rate < 1000
    assert figures.shards_for(1000) > 1
    assert figures.pins_until_limit is None
    # and writers of different pins share no item: no conflict, however many
    assert figures.common == frozenset()
    assert capacity.conflicts(figures, 100).conflicts == 0
    assert "Capacity of ONE tenant: today's model beside the new one" in printed
