"""`python -m cli.pins receipts REQUEST_ID [--json]`: a request's Filecoin
copies as a table, or the API's answer as JSON; the API answered by
`responses` (the wire is tests/api/test_receipts.py's)."""

from __future__ import annotations

import json
from typing import Any

import responses
from click.testing import CliRunner, Result

from cli import pins
from cli.pins import cli

URL = "http://pinning.test"
REQUEST_ID = "01890000-0000-7000-8000-000000000001"
CLEAN_ENV: dict[str, str | None] = {pins.URL_VAR: None, pins.TOKEN_VAR: None, pins.KUBO_VAR: None}
DOCUMENT: dict[str, Any] = {
    "copies_wanted": 2,
    "copies_proving": 1,
    "filecoin": "repairing",
    "receipts": [
        {
            "provider_id": "1",
            "provider": "sp-eu",
            "piece_cid": "bafkzcibpiece",
            "state": "proving",
            "data_set_id": "1",
            "piece_id": "0",
            "transactions": ["0xaaa", "0xbbb"],
            "last_proven_epoch": 1060,
            "ends_epoch": None,
            "detail": "",
            "created": "2026-11-28T19:00:00.000Z",
            "updated": "2026-11-28T19:00:05.000Z",
        },
        {
            "provider_id": "2",
            "provider": None,
            "piece_cid": "bafkzcibpiece",
            "state": "ended",
            "data_set_id": "2",
            "piece_id": "0",
            "transactions": ["0xccc"],
            "last_proven_epoch": 1010,
            "ends_epoch": None,
            "detail": "lapsed for longer than the grace (no proof)",
            "created": "2026-11-28T19:00:00.000Z",
            "updated": "2026-11-28T19:01:00.000Z",
        },
    ],
}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--url", URL, "--token", "t0k", *args], env=CLEAN_ENV, catch_exceptions=False)


@responses.activate
def test_the_copies_show_as_a_table_one_line_a_copy() -> None:
    # Given the API's receipts of a request
    responses.get(f"{URL}/pins/{REQUEST_ID}/receipts", json=DOCUMENT)
    # When they are shown
    result = run("receipts", REQUEST_ID)
    # Then a summary, a header and a line a copy, oldest first, with the latest transaction
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "copies: 1/2 proving (repairing)"
    assert lines[1].split() == [
        "PROVIDER", "STATE", "DATA", "SET", "PIECE", "PROVEN", "AT", "TRANSACTION", "UPDATED", "DETAIL"
    ]  # fmt: skip
    assert lines[2].split() == ["1", "(sp-eu)", "proving", "1", "0", "1060", "0xbbb", "2026-11-28T19:00:05.000Z", "-"]
    assert lines[3].split()[:7] == ["2", "ended", "2", "0", "1010", "0xccc", "2026-11-28T19:01:00.000Z"]
    assert lines[3].endswith("lapsed for longer than the grace (no proof)")
    assert responses.calls[0].request.headers["Authorization"] == "Bearer t0k"


@responses.activate
def test_json_prints_the_api_answer() -> None:
    # Given the API's receipts, when shown as JSON, then they are the API's answer
    responses.get(f"{URL}/pins/{REQUEST_ID}/receipts", json=DOCUMENT)
    result = run("--json", "receipts", REQUEST_ID)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == DOCUMENT


@responses.activate
def test_no_copy_yet_says_so_and_an_unknown_request_is_an_error() -> None:
    # Given a request with no copy begun, and an unknown one
    empty = {"copies_wanted": 0, "copies_proving": 0, "filecoin": "off", "receipts": []}
    responses.get(f"{URL}/pins/{REQUEST_ID}/receipts", json=empty)
    failure = {"error": {"reason": "NOT_FOUND", "details": "no such pin request"}}
    responses.get(f"{URL}/pins/unknown/receipts", json=failure, status=404)
    # When each is shown, then the first says none is begun, the second fails with the API's reason
    shown = run("receipts", REQUEST_ID)
    assert shown.exit_code == 0 and shown.stdout.startswith("copies: 0/0 proving (off)")
    assert "no copy begun yet" in shown.stderr
    missing = run("receipts", "unknown")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.stderr


@responses.activate
def test_an_answer_that_is_not_a_json_object_is_reported_not_a_crash() -> None:
    # Given a server (a proxy, say) answering a list, and another answering HTML
    responses.get(f"{URL}/pins/{REQUEST_ID}/receipts", json=[1, 2])
    responses.get(f"{URL}/pins/other/receipts", body="<html>bad gateway</html>")
    # When the receipts are asked of each, then each exits 1 saying what came back
    for request_id, shown in ((REQUEST_ID, "[1, 2]"), ("other", "<html>bad gateway</html>")):
        result = run("receipts", request_id)
        assert result.exit_code == 1
        assert f"unexpected answer from the pinning service (HTTP 200): {shown}" in result.stderr
