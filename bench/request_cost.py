"""DynamoDB and SQS work per request, counted on the clients the service uses.

POST /pins: write requests (a transaction is one) and queue sends; GET
/pins/{requestid}: reads beyond authentication; authentication: token reads
for 100 requests with one token in a warm container.

    .venv/bin/python -m bench.request_cost [--quick]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.support import (
    DynamoMeter,
    SqsMeter,
    Tally,
    api_client,
    build_stack,
    cheap_moto_transactions,
    cid_for,
    fake_credentials,
    median,
    print_table,
    quick_flag,
    verdict,
)


class FakeClock:
    def __init__(self, start_ms: int = 1_748_736_000_000) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms


def _row(label: str, tallies: list[Tally], sends: list[int], target: str, met: bool | None) -> list[Any]:
    writes = [t.writes for t in tallies]
    tx_items = [n for t in tallies for n in t.tx_items]
    reads = [t.reads for t in tallies]
    items = [t.items_read for t in tallies]
    return [
        label,
        len(tallies),
        f"{median(writes):g} / {max(writes)}",
        f"{median(tx_items):g}" if tx_items else "-",
        f"{median(sends):g} / {max(sends)}",
        f"{median(reads):g} / {max(reads)}",
        f"{median(items):g}",
        target,
        "-" if met is None else ("met" if met else "NOT MET"),
    ]


def run(quick: bool) -> dict[str, Any]:
    fake_credentials()
    cheap_moto_transactions()
    from moto import mock_aws

    from chalicelib.tenants.authenticator import Authenticator

    n = 20 if quick else 100
    out: dict[str, Any] = {}
    with mock_aws():
        stack = build_stack("reqcost")
        meter, sqs = DynamoMeter(), SqsMeter()
        with api_client(stack.services, stack.token) as api:
            # Warm container: token and fleet cached, CID library imported.
            first = api.ok("POST", "/pins", 202, body={"cid": cid_for("warm"), "name": "warm"})
            api.ok("GET", f"/pins/{first['requestid']}", 200)
            meter.attach()
            sqs.attach(stack.services)

            def per_request(call: Callable[[int], Any]) -> tuple:
                tallies, sends = [], []
                for i in range(n):
                    mark, sent = meter.mark(), sqs.sends
                    call(i)
                    tallies.append(meter.since(mark).without("-api-tokens"))
                    sends.append(sqs.sends - sent)
                return tallies, sends

            created: list[str] = []

            def post(i: int) -> None:
                body = {"cid": cid_for(f"req/{i}"), "name": f"file-{i}.txt", "meta": {"app": "bench"}}
                created.append(api.ok("POST", "/pins", 202, body=body)["requestid"])

            post_t, post_s = per_request(post)
            get_t, get_s = per_request(lambda i: api.ok("GET", f"/pins/{created[i]}", 200))
            list_t, list_s = per_request(lambda i: api.ok("GET", "/pins", 200, params={"status": "queued"}))
            replace_t, replace_s = per_request(
                lambda i: created.__setitem__(
                    i, api.ok("POST", f"/pins/{created[i]}", 202, body={"cid": cid_for(f"req/{i}/v2")})["requestid"]
                )
            )
            delete_t, delete_s = per_request(lambda i: api.ok("DELETE", f"/pins/{created[i]}", 202))
            tx_tables = post_t[0].calls[[c.operation for c in post_t[0].calls].index("TransactWriteItems")].tx_tables

            # Authentication: a fresh container's authenticator with a clock we move.
            clock = FakeClock()
            stack.services.authenticator = Authenticator(
                stack.services.tokens, stack.settings.token_cache_seconds, clock=clock
            )
            probe = api.ok("POST", "/pins", 202, body={"cid": cid_for("auth-probe")})["requestid"]
            clock.ms += 61_000  # the probe's token read has expired
            auth_rows = []

            def token_reads(requests: int, step_ms: int, token: str | None = None, expect: int = 200) -> tuple:
                mark = meter.mark()
                start = clock.ms
                for _ in range(requests):
                    status, _body = api.request("GET", f"/pins/{probe}", token=token)
                    if status != expect:
                        raise SystemExit(f"FATAL: GET answered {status}, expected {expect}")
                    clock.ms += step_ms
                tally = meter.since(mark).only("-api-tokens")
                return tally.reads, (clock.ms - step_ms - start) / 1000

            reads, span = token_reads(100, 500)
            auth_rows.append(
                ["100 GETs, same token, 0.5 s apart", f"{span:.1f}", reads, "1", "met" if reads == 1 else "NOT MET"]
            )
            reads, span = token_reads(1, 0)
            auth_rows.append(
                ["1 more GET, 50 s after the first (cache 60 s)", "-", reads, "0", "met" if reads == 0 else "NOT MET"]
            )
            clock.ms += 11_000
            reads, span = token_reads(1, 0)
            auth_rows.append(
                ["1 more GET, 61 s after the first", "-", reads, "1 (expiry)", "met" if reads == 1 else "NOT MET"]
            )
            reads, span = token_reads(100, 500, token="not-a-token-" + "x" * 30, expect=401)
            auth_rows.append(["100 GETs, same UNKNOWN token, 0.5 s apart", f"{span:.1f}", reads, "-", "-"])

            # The same with the real clock (a real warm container).
            stack.services.authenticator = Authenticator(stack.services.tokens, stack.settings.token_cache_seconds)
            import time

            mark = meter.mark()
            started = time.monotonic()
            for _ in range(100):
                api.ok("GET", f"/pins/{probe}", 200)
            elapsed = time.monotonic() - started
            real_reads = meter.since(mark).only("-api-tokens").reads
            auth_rows.append(
                [
                    "100 GETs, same token, real clock",
                    f"{elapsed:.1f}",
                    real_reads,
                    "1",
                    "met" if real_reads == 1 and elapsed < 60 else "NOT MET",
                ]
            )

    rows = [
        _row(
            "POST /pins",
            post_t,
            post_s,
            "writes <= 3, sends = 1",
            max(t.writes for t in post_t) <= 3 and all(s == 1 for s in post_s),
        ),
        _row("GET /pins/{requestid}", get_t, get_s, "reads = 1", all(t.reads == 1 for t in get_t)),
        _row("GET /pins?status=queued", list_t, list_s, "(info)", None),
        _row("POST /pins/{requestid} (replace)", replace_t, replace_s, "(info)", None),
        _row("DELETE /pins/{requestid}", delete_t, delete_s, "(info)", None),
    ]
    print(f"\nrequest_cost: {n} requests of each kind, warm container (token cached), moto in-process")
    print_table(
        "DynamoDB / SQS work per request, beyond authentication (median / max)",
        ["request", "n", "write reqs", "items in tx", "SQS sends", "read reqs", "items read", "target", "verdict"],
        rows,
        note="POST /pins transaction items by table: "
        + ", ".join(f"{t}: {k}" for t, k in tx_tables.items())
        + "\nPOST /pins calls: "
        + post_t[0].describe(),
    )
    print_table(
        "Authentication: DynamoDB token reads (api-tokens GetItem), authenticator clock injected unless noted",
        ["scenario", "span s", "token reads", "target", "verdict"],
        auth_rows,
    )
    post_ok = rows[0][-1] == "met"
    get_ok = rows[1][-1] == "met"
    auth_ok = all(r[-1] in ("met", "-") for r in auth_rows)
    print(
        "verdict: POST "
        + verdict(post_ok, f"{rows[0][2]} writes, {rows[0][4]} sends")
        + "; GET by id "
        + verdict(get_ok, f"{rows[1][5]} reads")
        + "; auth "
        + verdict(auth_ok, "1 token read per token per 60 s")
    )
    out.update(rows=rows, auth=auth_rows)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    run(quick_flag(argv))


if __name__ == "__main__":
    main()
