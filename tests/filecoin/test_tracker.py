"""The tracker and the copy maker on memory repositories and backend: X
copies with X providers, repairs, surplus, renewal, money, faults."""

from __future__ import annotations

import io
import json
import time

from chalicelib.filecoin.backend import CopyState
from chalicelib.filecoin.copies import receipts_of
from chalicelib.filecoin.selection import ProviderRule, choose
from chalicelib.filecoin.spend import period_of
from chalicelib.filecoin.tracker import emit_copy_metrics
from tests.filecoin.harness import CID, build


def test_an_archived_cid_gets_as_many_copies_as_wanted_with_distinct_providers():
    # Given a request wanting 3 copies of an archived CID
    copies = build()
    pin = copies.archived_request(meta={"filecoin.copies": "3"})
    # When the tracker runs, then 3 copies are begun, pending, each with its own provider
    report = copies.run()
    assert report.made == 3
    assert len(set(copies.in_state(CopyState.PENDING))) == 3
    assert copies.info(pin) == {"filecoin": "pending", "filecoin_copies": "0/3"}
    # When the copy maker stores them and the providers prove them
    copies.deliver()
    assert len(copies.in_state(CopyState.ADDING)) == 3
    assert set(copies.backend.stored_bytes.values()) == {f"CAR of {CID}.car".encode()}
    copies.backend.prove_all()
    copies.clock.advance(copies.settings.adding_check_seconds)
    copies.run()
    # Then 3 copies prove, and the request says so
    assert len(copies.in_state(CopyState.PROVING)) == 3
    assert copies.info(pin) == {"filecoin": "proving", "filecoin_copies": "3/3"}
    assert copies.run().made == 0


def test_the_stage_and_the_tenant_set_the_copies_unless_the_request_does():
    copies = build()
    copies.tenants.set_copies("bob", 1)
    alice = copies.archived_request(cid="bafkreialice")
    bob = copies.archived_request(cid="bafkreibob", tenant_id="bob")
    copies.settle()
    assert copies.info(alice)["filecoin_copies"] == "2/2"  # the stage's
    assert copies.info(bob)["filecoin_copies"] == "1/1"  # the tenant's


def test_a_cid_gets_the_most_any_holder_wants_and_none_when_all_say_zero():
    copies = build()
    off = copies.archived_request(meta={"filecoin.copies": "0"})
    copies.settle()
    assert copies.records() == []
    assert copies.info(off) == {"filecoin": "off", "filecoin_copies": "0/0"}
    # When another request of the CID wants 2, then it gets 2; the first still wants none
    two = copies.archived_request(tenant_id="bob", meta={"filecoin.copies": "2"})
    copies.settle()
    assert len(copies.in_state(CopyState.PROVING)) == 2
    assert copies.info(two) == {"filecoin": "proving", "filecoin_copies": "2/2"}
    assert copies.info(off) == {"filecoin": "off", "filecoin_copies": "0/0"}


def test_a_lapsed_copy_is_repaired_with_a_provider_not_used_before_once_the_grace_passed():
    copies = build(lapse_grace_seconds=600)
    pin = copies.archived_request(meta={"filecoin.copies": "2"})
    copies.settle()
    first = set(copies.in_state(CopyState.PROVING))
    # When one provider stops proving, then within the grace it still counts: nothing is made
    lapsing = sorted(first)[0]
    copies.backend.move(lapsing, CopyState.LAPSED, detail="missed a proving deadline")
    copies.clock.advance(3600)
    report = copies.run()
    assert (report.lapsed, report.repaired, copies.in_state(CopyState.LAPSED)) == (1, 0, [lapsing])
    # When the grace passes, then it is ended and a new copy is made elsewhere
    copies.clock.advance(601)
    report = copies.run()
    assert report.repaired == 1
    assert copies.in_state(CopyState.ENDED) == [lapsing]
    assert copies.info(pin) == {"filecoin": "repairing", "filecoin_copies": "1/2"}
    copies.settle()
    proving = set(copies.in_state(CopyState.PROVING))
    assert len(proving) == 2 and lapsing not in proving and len(proving | first) == 3
    assert copies.info(pin) == {"filecoin": "proving", "filecoin_copies": "2/2"}


def test_a_terminated_or_failed_copy_is_repaired_at_once():
    copies = build()
    copies.archived_request(meta={"filecoin.copies": "2"})
    copies.settle()
    gone, reverted = sorted(copies.in_state(CopyState.PROVING))
    copies.backend.move(gone, CopyState.TERMINATED)
    copies.backend.move(reverted, CopyState.FAILED, detail="transaction reverted")
    copies.clock.advance(3600)
    report = copies.run()
    assert (report.failed, report.repaired) == (2, 2)
    copies.settle()
    assert len(set(copies.in_state(CopyState.PROVING)) - {gone, reverted}) == 2


def test_a_provider_that_refuses_fails_its_copy_and_another_is_used():
    copies = build()
    copies.archived_request(meta={"filecoin.copies": "1"})
    copies.run()
    (chosen,) = copies.in_state(CopyState.PENDING)
    copies.backend.refusing.add(chosen)
    copies.deliver()
    assert copies.in_state(CopyState.FAILED) == [chosen]
    copies.settle()
    (other,) = copies.in_state(CopyState.PROVING)
    assert other != chosen


def test_copies_beyond_what_is_wanted_are_ended_newest_first():
    copies = build()
    three = copies.archived_request(meta={"filecoin.copies": "3"})
    copies.settle()
    newest = copies.records()[-1].provider_id
    # When the request wanting 3 goes and one wanting 2 stays, then the newest copy ends
    copies.archived_request(tenant_id="bob", meta={"filecoin.copies": "2"})
    copies.wants.let_go(CID, three.tenant_id, three.request_id)
    report = copies.run()
    assert report.ended == 1
    assert copies.in_state(CopyState.ENDED) == [newest]
    assert copies.backend.held[(newest, f"bafkzcib-{CID}")].state is CopyState.ENDED


def test_a_copy_wanted_again_goes_to_a_provider_the_cid_never_had_or_waits():
    # Given a CID with 2 copies proving, then one ended as no longer wanted
    providers = ("f01", "f02", "f03")
    copies = build(providers=providers)
    two = copies.archived_request(meta={"filecoin.copies": "2"})
    copies.settle()
    copies.archived_request(tenant_id="bob", meta={"filecoin.copies": "1"})
    copies.wants.let_go(CID, two.tenant_id, two.request_id)
    copies.settle()
    (ended,) = copies.in_state(CopyState.ENDED)
    (kept,) = copies.in_state(CopyState.PROVING)
    # When a request wants 2 again, then the second copy goes to the provider the CID never had
    copies.archived_request(meta={"filecoin.copies": "2"})
    copies.settle()
    (never,) = set(providers) - {ended, kept}
    assert sorted(copies.in_state(CopyState.PROVING)) == sorted([kept, never])
    # When one wants 3, then every provider had the CID: it waits and says so, and nothing more is spent
    spent = copies.copies.spent(period_of(copies.clock()))
    three = copies.archived_request(tenant_id="bob", meta={"filecoin.copies": "3"})
    copies.settle()
    assert [record.provider_id for record in copies.records()].count(ended) == 1
    assert copies.copies.spent(period_of(copies.clock())) == spent
    assert copies.info(three) == {"filecoin": "waiting: no provider available", "filecoin_copies": "2/3"}


def test_an_orphaned_archive_ends_all_copies_before_it_is_deleted():
    copies = build()
    pin = copies.archived_request(meta={"filecoin.copies": "2"})
    copies.settle()
    copies.wants.let_go(CID, pin.tenant_id, pin.request_id)
    # When the sweep asks, then every copy is ended, at the providers too
    assert copies.tracker.end_all(CID)
    assert len(copies.in_state(CopyState.ENDED)) == 2
    assert {r.state for r in copies.backend.held.values()} == {CopyState.ENDED}


def test_the_sweep_waits_while_the_backend_cannot_end_the_copies():
    copies = build()
    copies.archived_request(meta={"filecoin.copies": "1"})
    copies.settle()
    copies.backend.down = True
    assert not copies.tracker.end_all(CID)
    assert copies.in_state(CopyState.ENDED) == []


def test_the_spend_cap_refuses_a_copy_and_the_request_says_so():
    # Given a cap that pays for one copy's term (cost 1 x 100 epochs)
    copies = build(spend_cap=150)
    pin = copies.archived_request(meta={"filecoin.copies": "2"})
    report = copies.run()
    assert (report.made, report.spend_cap_reached) == (1, 1)
    assert copies.info(pin) == {"filecoin": "waiting: spend cap reached", "filecoin_copies": "0/2"}
    assert copies.copies.records(CID).state.waiting == "spend cap reached"
    # When the month turns, then the second copy is made
    copies.clock.advance(31 * 24 * 3600)
    assert copies.run().made == 1
    copies.settle()
    assert copies.info(pin) == {"filecoin": "proving", "filecoin_copies": "2/2"}


def test_exhausted_funds_make_the_cid_wait_and_the_request_says_so():
    copies = build()
    copies.backend.available = 99  # below one copy's 100
    pin = copies.archived_request(meta={"filecoin.copies": "1"})
    report = copies.run()
    assert (report.made, report.funds_low) == (0, 1)
    assert copies.records() == []
    assert copies.info(pin) == {"filecoin": "waiting: wallet funds exhausted", "filecoin_copies": "0/1"}
    # And it is visited again later, not every minute
    assert copies.copies.records(CID).state.due_ms == copies.clock.ms + copies.settings.wait_seconds * 1000


def test_an_unreachable_backend_changes_nothing():
    copies = build()
    pin = copies.archived_request(meta={"filecoin.copies": "2"})
    copies.settle()
    copies.clock.advance(3600)
    before = (copies.records(), copies.copies.records(CID).state, copies.info(pin))
    copies.backend.down = True
    report = copies.run()
    assert (report.unavailable, report.made) == (1, 0)
    assert (copies.records(), copies.copies.records(CID).state, copies.info(pin)) == before
    # When it is back, then the next run visits the CID first
    copies.backend.down = False
    assert copies.run().visited == 1


def test_a_run_is_bounded_and_the_next_goes_on_oldest_first():
    copies = build()
    cids = [f"bafkreicid{n}" for n in range(5)]
    for cid in cids:
        copies.archived_request(cid=cid, meta={"filecoin.copies": "1"})
    first = copies.run(limit=2)
    assert first.seen == set(cids[:2])
    second = copies.run(limit=2)
    assert second.seen == set(cids[2:4])
    assert copies.run(limit=10).seen == {cids[4]}
    assert all(len(copies.records(cid)) == 1 for cid in cids)


def test_a_copy_message_delivered_again_makes_no_second_copy():
    copies = build()
    copies.archived_request(meta={"filecoin.copies": "1"})
    copies.run()
    (message,) = copies.queue
    copies.deliver()
    copies.queue.append(message)
    copies.deliver()
    assert copies.backend.stores == 1
    assert copies.records()[0].attempt == 1


def test_a_lost_copy_message_is_sent_again():
    copies = build()
    copies.archived_request(meta={"filecoin.copies": "1"})
    copies.run()
    copies.queue.clear()
    copies.clock.advance(copies.settings.resend_seconds + 1)
    copies.run()
    assert len(copies.queue) == 1
    copies.deliver()
    assert copies.backend.stores == 1


def test_two_trackers_at_once_never_begin_more_copies_than_wanted():
    copies = build()
    copies.archived_request(meta={"filecoin.copies": "2"})
    listed = list(copies.backend.listed)
    first_choices = {p.provider_id for p in choose(CID, listed, 2, ProviderRule(), set())}
    reports = []

    def interleave(operation: str) -> None:
        # Just before this tracker adds its first copy, another visits in full,
        # and (the registry changed between their reads) picks other providers.
        if operation == "add_copy" and not reports:
            copies.copies.step = lambda operation: None
            copies.backend.listed = [p for p in listed if p.provider_id not in first_choices]
            reports.append(copies.tracker.run(time.monotonic() + 60, 10))

    copies.copies.step = interleave
    copies.run()
    # Then only the other tracker's two copies were begun
    assert reports[0].made == 2
    assert len(copies.live()) == 2 and not first_choices & set(copies.live())
    # And the loser's reservation was given back: two terms of 100 are spent
    assert copies.copies.spent(period_of(copies.clock.ms)) == 200


def test_a_copy_ended_while_it_was_uploaded_is_ended_at_the_provider():
    copies = build()
    pin = copies.archived_request(meta={"filecoin.copies": "1"})
    copies.run()
    (message,) = copies.queue
    # Given the request goes while the copy maker uploads
    original_store = copies.backend.store

    def store_meanwhile(*args, **kwargs):
        copies.wants.let_go(CID, pin.tenant_id, pin.request_id)
        copies.run()
        return original_store(*args, **kwargs)

    copies.backend.store = store_meanwhile
    copies.deliver()
    # Then it is ended at the provider once made
    assert copies.in_state(CopyState.ENDED) == [message.provider_id]
    assert copies.backend.held[(message.provider_id, f"bafkzcib-{CID}")].state is CopyState.ENDED


def test_a_copy_near_its_end_is_replaced_then_ended():
    copies = build(renew_epochs=1000, genesis_unix=0)
    copies.archived_request(meta={"filecoin.copies": "1"})
    copies.settle()
    (old,) = copies.in_state(CopyState.PROVING)
    head = copies.clock.ms // 1000 // 30
    copies.backend.move(old, CopyState.PROVING, ends_epoch=head + 500)
    copies.clock.advance(3600)
    assert copies.run().made == 1
    assert len(copies.live()) == 2  # the old one proves on until its replacement does
    copies.settle()
    assert len(copies.in_state(CopyState.PROVING)) == 1
    assert copies.in_state(CopyState.ENDED) == [old]


def test_the_allow_list_limits_the_providers():
    copies = build(rule=ProviderRule(allowed=frozenset({"f04"})))
    pin = copies.archived_request(meta={"filecoin.copies": "2"})
    copies.settle()
    assert copies.in_state(CopyState.PROVING) == ["f04"]
    assert copies.info(pin) == {"filecoin": "waiting: no provider available", "filecoin_copies": "1/2"}


def test_the_receipts_of_a_cid_list_every_copy_oldest_first_with_its_times():
    copies = build()
    copies.archived_request(meta={"filecoin.copies": "1"})
    copies.settle()
    (proving,) = copies.in_state(CopyState.PROVING)
    copies.backend.move(proving, CopyState.TERMINATED, detail="rail terminated")
    copies.clock.advance(3600)
    copies.settle()
    receipts = receipts_of(copies.copies, CID)
    assert [r.receipt.state for r in receipts] == [CopyState.TERMINATED, CopyState.PROVING]
    first, second = receipts
    assert (first.receipt.provider_id, first.receipt.detail, first.receipt.data_set_id) == (
        proving,
        "rail terminated",
        f"ds-{proving}",
    )
    assert first.created_ms < second.created_ms and first.updated_ms > first.created_ms
    assert second.receipt.transactions and second.receipt.piece_cid == f"bafkzcib-{CID}"


def test_a_run_emits_its_counts_as_one_embedded_metric_line():
    copies = build(spend_cap=100)
    copies.archived_request(meta={"filecoin.copies": "2"})
    out = io.StringIO()
    emit_copy_metrics(copies.run(), "test", out)
    line = json.loads(out.getvalue())
    assert (line["FilecoinCopiesMade"], line["FilecoinSpendCapReached"], line["Stage"]) == (1, 1, "test")
    names = {m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"FilecoinCopiesRepaired", "FilecoinCopiesLapsed", "FilecoinCopiesFailed", "FilecoinFundsLow"} <= names
