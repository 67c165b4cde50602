"""`make deploy` refuses before it touches AWS when a stack would lack a
parameter it needs (the fleet's Kubo release and its sha512, the bucket), and
names what is missing. AWS is a fake that records every call."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from infra.deploy_check import FLEET, NETWORK, deploy_problems, overrides, problems

REPO = Path(__file__).resolve().parents[2]
KUBO = "KuboVersion=v0.39.0 KuboSha512=" + "0" * 128


def make(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs make in the repository with `aws` replaced by a recorder; returns the result and the calls recorded."""
    calls = tmp_path / "aws-calls"
    fake_aws = tmp_path / "aws"
    fake_aws.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n', encoding="utf-8")
    fake_aws.chmod(0o755)
    deploy_stamp = tmp_path / "deploy-installed"
    deploy_stamp.touch()
    # Not the caller's make (under `make test`): its flags and jobserver are not ours.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
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
        env={**env, "PIP_NO_INDEX": "1"},
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


def test_given_no_bucket_when_make_deploy_then_it_refuses_naming_it_before_any_aws_call(tmp_path):
    result, calls = make(tmp_path, "deploy", "STAGE=prod", f"FLEET_PARAMS={KUBO}")

    assert result.returncode != 0
    assert "S3_BUCKET=" in result.stderr
    assert calls == []


def test_given_every_required_parameter_when_checking_the_deploy_then_it_passes(tmp_path):
    result, calls = make(tmp_path, "check-deploy", "STAGE=prod", "S3_BUCKET=my-artifacts", f"FLEET_PARAMS={KUBO}")

    assert result.returncode == 0, result.stderr
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
