"""Listing more than a hundred pins through the served stack, and a worker run by
an outside client. The stack runs with `--no-worker`: once the outside worker
has stopped, every pin stays `queued`, so statuses, counts and pages are
known exactly while the test pages, deletes and replaces, and while the
stack folds the count changes its pins table's stream reports."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from chalicelib.storage.pin_keys import CHANGES, PIN, entry_prefix
from devstack.env_file import read_env_file
from devstack.state import AWS_ENV
from tests.api.helpers import ALL_STATUSES
from tests.stack.stack_client import Stack, outside_worker, running_stack
from tests.support.api import ApiClient
from tests.support.cids import cid_v1, cid_with_hash
from tests.support.served_stack import running

# Pages of 37 (4), 100 (2) and 1000 (1) each, every page's count checked.
PAGED_PINS = 120
# POSTs in parallel: the API's time is mostly waiting on the emulated AWS.
CREATORS = 4
PIN_TIMEOUT_S = 30
STOP_TIMEOUT_S = 5
# The stack reads the stream every 0.5 s; folds are due within seconds.
FOLD_TIMEOUT_S = 15


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, ["--no-worker"], {}) as started:
        yield started


def page_through(api: ApiClient, params: dict[str, Any], limit: int, count: int) -> list[str]:
    """Every page, newest first, each next page `before` the last one's `created`.
    Asserts `count` on every page: the matches of the whole query, `before`
    included, so `count` less those listed so far."""
    request_ids: list[str] = []
    before: dict[str, str] = {}
    while True:
        page = api.list(**params, limit=limit, **before)
        left = count - len(request_ids)
        assert page["count"] == left, f"count {page['count']} != {left} on the page after {len(request_ids)} pins"
        request_ids += [status["requestid"] for status in page["results"]]
        if len(page["results"]) < limit:
            return request_ids
        before = {"before": page["results"][-1]["created"]}


def assert_only_queued(api: ApiClient, newest_first: list[str]) -> None:
    """Every status filter lists and counts exactly `newest_first`, all queued."""
    count = len(newest_first)
    assert page_through(api, {"status": ALL_STATUSES}, limit=37, count=count) == newest_first
    assert page_through(api, {"status": "queued"}, limit=100, count=count) == newest_first
    assert page_through(api, {"status": "queued,failed"}, limit=1000, count=count) == newest_first
    for status in ("pinning", "pinned", "failed", "pinned,failed"):
        assert api.list(status=status) == {"count": 0, "results": []}, status


# First in the module: the queue is still empty, so the worker's first message is this pin.
def test_given_no_worker_when_a_client_runs_one_then_it_pins_and_stops_on_sigterm(stack: Stack) -> None:
    # Given a stack started with --no-worker
    assert stack.served.info()["worker"] is None
    created = stack.pin(cid_with_hash("outside-worker", "identity", 32))

    # When a client runs the worker, then it pins; on SIGTERM it exits 0 at once
    with outside_worker(stack.served.state_dir) as worker:
        stack.pinned(created["requestid"], PIN_TIMEOUT_S)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(STOP_TIMEOUT_S) == 0
    assert not running([worker.pid])


def test_given_120_queued_pins_when_paging_deleting_and_replacing_then_every_page_and_count_is_exact(
    stack: Stack,
) -> None:
    # Given a tenant of its own with 120 pins, all queued (no worker runs)
    api = stack.new_tenant("paging")
    cids = [cid_v1(f"page-{n}") for n in range(PAGED_PINS)]

    def create(chunk: list[str]) -> list[str]:
        client = stack.served.api(api.token)  # a connection per thread
        return [client.pin(cid)["requestid"] for cid in chunk]

    with ThreadPoolExecutor(CREATORS) as pool:
        request_ids = [rid for chunk in pool.map(create, [cids[n::CREATORS] for n in range(CREATORS)]) for rid in chunk]

    # When paging through them with `before` and `limit`, under every status filter,
    # then each is listed once, newest first (UUIDv7 ids sort as `created` does)
    assert_only_queued(api, sorted(request_ids, reverse=True))

    # When every tenth is deleted and every tenth (offset 5) replaced by another CID
    deleted, replaced = request_ids[::10], request_ids[5::10]
    for request_id in deleted:
        assert api.request("DELETE", f"/pins/{request_id}").status == 202
    replacements = []
    for n, request_id in enumerate(replaced):
        reply = api.request("POST", f"/pins/{request_id}", json_body={"cid": cid_v1(f"replacement-{n}")})
        assert reply.status == 202, reply.body
        replacements.append(reply.json["requestid"])

    # Then the listing and the counts follow at once: the replacements are the
    # newest, the deleted and replaced requests are gone
    kept = [rid for rid in request_ids if rid not in {*deleted, *replaced}]
    assert_only_queued(api, sorted([*kept, *replacements], reverse=True))
    assert len(kept) + len(replacements) == PAGED_PINS - len(deleted)


def pins_table_items(stack: Stack, sort_key_part: str) -> int:
    """Items of the stack's pins table whose sort key holds this (its emulated AWS, as aws.env names it)."""
    env = read_env_file(stack.served.state_dir / AWS_ENV)
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=f"{env['TABLE_PREFIX']}-pins",
        FilterExpression="contains(sk, :part)",
        ExpressionAttributeValues={":part": {"S": sort_key_part}},
        ConsistentRead=True,
    )
    return sum(page["Count"] for page in pages)


def test_given_pins_created_deleted_and_replaced_then_the_stack_folds_their_count_changes_within_seconds(
    stack: Stack,
) -> None:
    # Given a tenant of its own whose 30 queued pins were created, 3 deleted and 3 replaced through the API
    api = stack.new_tenant("folding")
    request_ids = [api.pin(cid_v1(f"fold-{n}"))["requestid"] for n in range(30)]
    for request_id in request_ids[:3]:
        assert api.request("DELETE", f"/pins/{request_id}").status == 202
    replacements = [
        api.request("POST", f"/pins/{request_id}", json_body={"cid": cid_v1(f"fold-new-{n}")}).json["requestid"]
        for n, request_id in enumerate(request_ids[3:6])
    ]
    kept = sorted([*request_ids[6:], *replacements], reverse=True)

    # When the stack runs (it reads the pins table's stream on its own), then
    # within a bounded wait the shards hold no count change (of these pins or any other)
    deadline = time.monotonic() + FOLD_TIMEOUT_S
    while pins_table_items(stack, "#" + CHANGES) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pins_table_items(stack, "#" + CHANGES) == 0, f"count changes left unfolded after {FOLD_TIMEOUT_S} s"
    assert pins_table_items(stack, entry_prefix(PIN)) >= len(kept)  # the table that holds the pins

    # and every count and page is what it was: the changes are in the counter trees
    assert_only_queued(api, kept)
