"""`make deploy` refuses before it touches AWS when a stack would lack a
parameter it needs (the fleet's Kubo release and its sha512, the bucket), and
names what is missing. AWS is a fake that records every call. With AWS
credentials it also refuses a stage whose tables are of another layout
(checked here on moto)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from chalicelib.storage.layout import DESTROY_DOCS
from chalicelib.storage.tables import create_tables
from infra.deploy_check import FLEET, NETWORK, deploy_problems, main, overrides, problems, stage_settings
from tests.support.table_layouts import create, emulated_aws, old_pins_spec

REPO = Path(__file__).resolve().parents[2]
KUBO = "KuboVersion=v0.39.0 KuboSha512=" + "0" * 128


def make(
    tmp_path: Path, *args: str, aws_env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs make in the repository with `aws` replaced by a recorder; returns the result and the calls recorded.

    AWS credentials (for the table check) only as `aws_env` gives them.
    """
    calls = tmp_path / "aws-calls"
    fake_aws = tmp_path / "aws"
    fake_aws.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n', encoding="utf-8")
    fake_aws.chmod(0o755)
    deploy_stamp = tmp_path / "deploy-installed"
    deploy_stamp.touch()
    # Not the caller's make (under `make test`): its flags and jobserver are not ours. No AWS
    # credentials either (nor the caller's files): the table check must not reach for real AWS.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL") and not k.startswith("AWS_")
    }
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            *args,
            f"AWS={fake_aws}",
            f"DEPLOY_STAMP={deploy_stamp}",
        ],
        cwd=REPO,
        env={**env, **(aws_env or {}), "PIP_NO_INDEX": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []


def test_given_no_kubo_parameters_when_make_deploy_then_it_refuses_naming_them_before_any_aws_call(tmp_path):
    result, calls = make(tmp_path, "deploy", "STAGE=prod", "S3_BUCKET=my-artifacts")

    assert result.returncode != 0
    assert "FLEET_PARAMS needs KuboVersion=" in result.stderr
    assert "FLEET_PARAMS needs KuboSha512=" in result.stderr
    assert calls == []


@pytest.mark.parametrize("target", ["deploy", "deploy-service"])
def test_given_a_stage_table_of_another_layout_when_make_deploy_then_it_refuses_before_any_aws_call(tmp_path, target):
    # the stage's tables on an emulated AWS, reached with credentials as a deployer has them
    with emulated_aws() as endpoint_url:
        create(old_pins_spec(stage_settings("prod", "us-east-1")), endpoint_url=endpoint_url)
        credentials = {"AWS_ACCESS_KEY_ID": "deployer", "AWS_SECRET_ACCESS_KEY": "deployer"}
        aws_env = {**credentials, "AWS_ENDPOINT_URL": endpoint_url}
        result, calls = make(
            tmp_path, target, "STAGE=prod", "S3_BUCKET=my-artifacts", f"FLEET_PARAMS={KUBO}", aws_env=aws_env
        )

    assert result.returncode != 0
    assert "pinning-prod-pins: partition key pk expected, found tenant_id" in result.stderr
    assert calls == []


def test_make_deploy_checks_the_stage_tables_once_and_deploy_service_alone_checks_them(tmp_path):
    # -n: make lists the commands each target would run (recursing into the sub-makes) and runs none
    deploy, _ = make(tmp_path, "-n", "deploy", "STAGE=prod", "S3_BUCKET=my-artifacts", f"FLEET_PARAMS={KUBO}")
    alone, _ = make(tmp_path, "-n", "deploy-service", "STAGE=prod", "S3_BUCKET=my-artifacts")

    assert deploy.returncode == 0, deploy.stderr
    assert deploy.stdout.count("-m infra.deploy_check") == 1
    assert '--stage "prod"' in deploy.stdout
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.count('-m infra.deploy_check --tables-only --stage "prod"') == 1


def test_given_no_bucket_when_make_deploy_then_it_refuses_naming_it_before_any_aws_call(tmp_path):
    result, calls = make(tmp_path, "deploy", "STAGE=prod", f"FLEET_PARAMS={KUBO}")

    assert result.returncode != 0
    assert "S3_BUCKET=" in result.stderr
    assert calls == []


def test_given_every_required_parameter_when_checking_the_deploy_then_it_passes(tmp_path):
    result, calls = make(tmp_path, "check-deploy", "STAGE=prod", "S3_BUCKET=my-artifacts", f"FLEET_PARAMS={KUBO}")

    assert result.returncode == 0, result.stderr
    assert "no AWS credentials, so the tables of stage prod were not checked" in result.stderr
    assert calls == []


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("KuboVersion=0.39 KuboSha512=" + "0" * 128, "KuboVersion='0.39'"),
        ("KuboVersion=v0.39.0 KuboSha512=<the 128 hex digits>", "KuboSha512='<the"),
    ],
)
def test_a_value_the_template_would_reject_is_named(given, named):
    (problem,) = problems(FLEET, overrides(f"Stage=prod {given}"))

    assert problem.startswith(f"FLEET_PARAMS: {named}")


def test_the_network_stack_needs_nothing_but_the_stage_and_the_fleet_its_kubo_release():
    assert problems(NETWORK, overrides("Stage=prod")) == []
    assert deploy_problems("bucket", overrides("Stage=prod"), overrides(f"Stage=prod {KUBO}")) == []


DEPLOY_PROD = ["--s3-bucket", "my-artifacts", "--network", "Stage=prod", "--fleet", f"Stage=prod {KUBO}"]


def check_prod(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main([*DEPLOY_PROD, "--stage", "prod", "--region", "us-east-1"])
    return status, capsys.readouterr().err


def test_given_a_prod_table_of_another_layout_when_checking_the_deploy_then_refused_with_what_to_do(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create(old_pins_spec(stage_settings("prod", "us-east-1")))

    status, stderr = check_prod(capsys)

    assert status == 1
    assert "refused, nothing deployed: tables of stage prod in us-east-1 have another layout" in stderr
    assert "  pinning-prod-pins: partition key pk expected, found tenant_id" in stderr
    assert "make destroy-fleet destroy-service STAGE=prod" in stderr
    assert DESTROY_DOCS in stderr


def test_given_prod_tables_of_this_layout_or_none_when_checking_the_deploy_then_it_passes(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_prod(capsys) == (0, "")

    create_tables(stage_settings("prod", "us-east-1"), wait=False)

    assert check_prod(capsys) == (0, "")
