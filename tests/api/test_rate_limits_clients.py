"""The stage's default limits never refuse what real clients send
(../shared/notes/clients.md): the IPFS Web UI's polling (CIDs in batches of
10 with all four statuses, and four `limit=1` counts, every 30 s), Kubo's
`pin remote ls` paging through 1,000 pins (100 pages of 10) and `pin remote
add` polling its request every 500 ms for 60 s. IPFS Desktop sends all of
them through one Kubo node, so with one token. Each burst is replayed in a
single millisecond of the limiter's clock (no latency: the worst case);
nothing sleeps."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import replace

import pytest

from chalicelib.config import Settings
from chalicelib.tenants.rate_limits import RateLimited, RateLimiter, RateLimits
from tests.api.conftest import FakeClock
from tests.api.helpers import ALL_STATUSES
from tests.support.cids import cid_v1

SECOND = 1_000
WEB_UI_CIDS = 1_000  # pins shown by the Web UI: 100 batches of 10
KUBO_LS_PINS = 1_000  # 100 pages of Kubo's default 10
STATUSES = ALL_STATUSES.split(",")


def stage_limits(settings: Settings) -> RateLimits:
    return RateLimits(
        settings.rate_limit_per_second,
        settings.rate_limit_burst,
        settings.rate_limit_token_per_second,
        settings.rate_limit_token_burst,
    )


# A request as a client sends it: method, path, query (or body for POST).
Request = tuple[str, str, dict[str, str]]


@functools.cache
def web_ui_batches() -> tuple[str, ...]:
    """The Web UI's pins' CIDs, 10 to a query."""
    cids = [cid_v1(f"web-ui-{index}") for index in range(WEB_UI_CIDS)]
    return tuple(",".join(cids[start : start + 10]) for start in range(0, WEB_UI_CIDS, 10))


def web_ui_cycle() -> Iterator[Request]:
    """One 30 s refresh of the Web UI: its pins' CIDs in batches of 10 with
    every status, then the four status counts."""
    for batch in web_ui_batches():
        yield "GET", "/pins", {"cid": batch, "status": ALL_STATUSES}
    for status in STATUSES:
        yield "GET", "/pins", {"limit": "1", "status": status}


def kubo_ls() -> Iterator[Request]:
    """`ipfs pin remote ls` over 1,000 pinned: a page, then each next one before the last's `created`."""
    yield "GET", "/pins", {"status": "pinned", "limit": "10"}
    for page in range(1, KUBO_LS_PINS // 10):
        yield (
            "GET",
            "/pins",
            {"status": "pinned", "limit": "10", "before": f"2026-11-28T12:00:{59 - page % 60:02d}.123456789Z"},
        )


def schedule(seconds: int) -> list[tuple[int, Request]]:
    """Every request of `seconds` of one IPFS Desktop user, with its time (ms):
    the Web UI's refresh every 30 s, a `pin remote ls` every 2 minutes, and a
    `pin remote add` at the start, polled every 500 ms for 60 s."""
    timed: list[tuple[int, Request]] = []
    for at in range(0, seconds * SECOND, 30 * SECOND):
        timed += [(at, request) for request in web_ui_cycle()]
    for at in range(0, seconds * SECOND, 120 * SECOND):
        timed += [(at, request) for request in kubo_ls()]
    timed.append((0, ("POST", "/pins", {"cid": cid_v1("kubo-add")})))
    timed += [(at, ("GET", "/pins/{added}", {})) for at in range(500, 60 * SECOND + 1, 500)]
    return sorted(timed, key=lambda item: item[0])


def refused(limiter: RateLimiter, clock: FakeClock, timed: list[tuple[int, Request]], users: int, start: int) -> int:
    """How many of `users` desktop users' requests (one token each, one tenant) the limiter refuses."""
    count = 0
    for at, _ in timed:
        clock.now_ms = start + at
        for user in range(users):
            try:
                limiter.admit("tn_desktop", f"tok_{user}")
            except RateLimited:
                count += 1
    return count


@pytest.mark.parametrize("users", [1, 10])
def test_the_default_limits_never_refuse_desktop_users_over_ten_minutes(users: int) -> None:
    # given the stage's default limits, one container, and one tenant with `users` IPFS Desktop users
    clock = FakeClock(1_700_000_000_000)
    limiter = RateLimiter(stage_limits(Settings()), clock=clock)
    # when 10 minutes of their requests arrive, each burst in one millisecond
    timed = schedule(600)
    assert len(timed) == 20 * 104 + 5 * 100 + 1 + 120
    # then none is refused
    assert refused(limiter, clock, timed, users, clock.now_ms) == 0


def test_the_replay_would_notice_a_limit_too_tight_for_them() -> None:
    # given limits whose token burst (100) is below one Web UI refresh (104 requests)
    clock = FakeClock(1_700_000_000_000)
    tight = replace(stage_limits(Settings()), token_burst=100)
    # then the same replay is refused, at each refresh
    assert refused(RateLimiter(tight, clock=clock), clock, schedule(600), 1, clock.now_ms) > 0


@pytest.fixture
def limiter_clock(services) -> FakeClock:
    """The API's limiter on the stage's defaults as wired, with a clock the replay moves."""
    clock = FakeClock(1_700_000_000_000)
    services.rate_limiter = RateLimiter(stage_limits(services.settings), clock=clock)
    return clock


def test_through_the_api_a_desktop_users_bursts_are_all_answered(api, services, limiter_clock) -> None:
    # given the API with the stage's default limits
    assert stage_limits(services.settings) == stage_limits(Settings())
    start = limiter_clock.now_ms
    added: dict[str, str] = {}

    # when a Web UI refresh and a `pin remote ls` arrive in the same millisecond,
    # with a `pin remote add` whose polling then goes on for 60 s
    statuses = []
    for at, request in schedule(30):
        limiter_clock.now_ms = start + at
        statuses.append(_send(api, request, added))

    # then every one was answered, none refused
    assert len(statuses) == 104 + 100 + 1 + 120
    assert set(statuses) <= {200, 202}, sorted(set(statuses))


def _send(api, request: Request, added: dict[str, str]) -> int:
    method, path, fields = request
    if method == "POST":
        reply = api.request("POST", path, json_body=fields)
        added["requestid"] = reply.json["requestid"]
        return reply.status
    return api.request(method, path.replace("{added}", added.get("requestid", "")), params=fields).status
