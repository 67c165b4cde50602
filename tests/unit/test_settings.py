"""Settings read from the environment (chalicelib/config.py)."""

from __future__ import annotations

import pytest

from chalicelib.config import Settings


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})

    assert settings == Settings()
    assert (settings.stage, settings.region, settings.table_prefix) == ("dev", "us-east-1", "pinning-dev")
    assert (settings.queue_url, settings.aws_endpoint_url, settings.kubo_rpc_secret) == (None, None, None)
    assert settings.replication_factor == 2
    assert settings.max_body_bytes == 64 * 1024
    assert settings.pin_deadline_seconds == 24 * 3600
    assert settings.min_free_bytes == 1024**3
    assert not settings.allow_private_origins
    assert not settings.emit_metrics


def test_every_setting_is_read_from_its_variable() -> None:
    env = {
        "STAGE": "prod",
        "AWS_REGION": "eu-west-1",
        "TABLE_PREFIX": "mine",
        "PIN_QUEUE_URL": "https://sqs/q",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "REPLICATION_FACTOR": "3",
        "TOKEN_CACHE_SECONDS": "61",
        "NODE_CACHE_SECONDS": "31",
        "MAX_BODY_BYTES": "1000",
        "OUTBOX_SHARDS": "5",
        "OUTBOX_GRACE_SECONDS": "62",
        "PIN_DEADLINE_SECONDS": "3600",
        "STALL_SECONDS": "121",
        "CONTINUE_DELAY_SECONDS": "32",
        "NODE_CONCURRENCY": "6",
        "INVOCATION_MARGIN_SECONDS": "16",
        "ALLOW_PRIVATE_ORIGINS": "True",
        "KUBO_RPC_SECRET": "s3cret",
        "KUBO_RPC_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:x",
        "MIN_FREE_BYTES": "1024",
        "AWS_LAMBDA_FUNCTION_NAME": "pinning-prod-pin_worker",
    }

    assert Settings.from_env(env) == Settings(
        stage="prod",
        region="eu-west-1",
        table_prefix="mine",
        queue_url="https://sqs/q",
        aws_endpoint_url="http://127.0.0.1:4566",
        replication_factor=3,
        token_cache_seconds=61,
        node_cache_seconds=31,
        max_body_bytes=1000,
        outbox_shards=5,
        outbox_grace_seconds=62,
        pin_deadline_seconds=3600,
        stall_seconds=121,
        continue_delay_seconds=32,
        node_concurrency=6,
        invocation_margin_seconds=16,
        allow_private_origins=True,
        kubo_rpc_secret="s3cret",
        kubo_rpc_secret_arn="arn:aws:secretsmanager:eu-west-1:1:secret:x",
        min_free_bytes=1024,
        emit_metrics=True,
    )


def test_the_table_prefix_follows_the_stage_unless_set() -> None:
    assert Settings.from_env({"STAGE": "prod"}).table_prefix == "pinning-prod"
    assert Settings.from_env({"STAGE": "prod", "TABLE_PREFIX": ""}).table_prefix == "pinning-prod"
    assert Settings(stage="staging").table_prefix == "pinning-staging"


def test_the_region_falls_back_to_the_default_region_variable() -> None:
    assert Settings.from_env({"AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"
    assert Settings.from_env({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"}).region == "eu-west-1"


@pytest.mark.parametrize(("raw", "allowed"), [("1", True), ("yes", True), ("TRUE", True), ("no", False), ("0", False)])
def test_a_flag_is_on_only_when_it_says_so(raw: str, allowed: bool) -> None:
    assert Settings.from_env({"ALLOW_PRIVATE_ORIGINS": raw}).allow_private_origins is allowed


def test_empty_variables_count_as_unset_and_bad_numbers_are_refused() -> None:
    assert Settings.from_env({"REPLICATION_FACTOR": "", "PIN_QUEUE_URL": ""}) == Settings()
    with pytest.raises(ValueError):
        Settings.from_env({"REPLICATION_FACTOR": "two"})
