"""The local stack's command line, as scripts and tests use it."""

from __future__ import annotations

import pytest

from devstack.__main__ import parse_args


def test_given_no_options_when_parsed_then_make_dev_keeps_its_defaults() -> None:
    options = parse_args([])

    assert (options.port, options.aws_port, options.user_node_port) == (8000, 4566, 5001)
    assert options.worker is True
    assert options.visibility_seconds is None  # 6 x the Lambda timeout


@pytest.mark.parametrize(("given", "port"), [("auto", 0), ("0", None), ("15001", 15001)])
def test_given_a_user_node_port_when_parsed_then_auto_is_any_free_port_and_0_is_no_node(
    given: str, port: object
) -> None:
    assert parse_args(["--user-node-port", given]).user_node_port == port


def test_given_no_worker_and_a_visibility_timeout_when_parsed_then_both_are_taken() -> None:
    options = parse_args(["--no-worker", "--visibility-seconds", "5"])

    assert (options.worker, options.visibility_seconds) == (False, 5)


@pytest.mark.parametrize(
    "args", [["--visibility-seconds", "0"], ["--user-node-port", "any"], ["--user-node-port", "70000"]]
)
def test_given_a_bad_value_when_parsed_then_exit_status_2_with_a_message(
    args: list, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(args)

    assert exited.value.code == 2
    assert args[0] in capsys.readouterr().err
