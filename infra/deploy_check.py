"""What `make deploy` checks before it deploys anything: that every stack of
the stage will get the parameters it cannot do without, and that the stage's
tables, where they exist, have the layout this code expects.

    python -m infra.deploy_check --s3-bucket BUCKET --network "Key=Value ..." --fleet "Key=Value ..." \
        [--stage STAGE --region REGION]

A parameter is required when its template gives it no default; a value given
must match the template's AllowedPattern. The templates are read, so what is
required is written once, in them. Without this, a missing fleet parameter
would fail the third stack after the first two are up.

With --stage, and only when AWS credentials are at hand, each of the stage's
tables is described (`cli.admin tables check` does the same): tables of
another layout cannot be updated in place by CloudFormation, and code
deployed over them would fail, so the deploy is refused with what to do.
`make deploy-service` alone (an upgrade) checks the tables only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

from chalicelib.config import Settings
from chalicelib.storage.layout import TableState, difference_lines, what_to_do
from chalicelib.storage.tables import check_tables
from infra.render import CHALICE_CONFIG, stage_config

INFRA = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Stack:
    """A template and the make variable its parameters are given in."""

    template: Path
    variable: str


NETWORK = Stack(INFRA / "network.yaml", "NETWORK_PARAMS")
FLEET = Stack(INFRA / "fleet.yaml", "FLEET_PARAMS")


def overrides(text: str) -> dict[str, str]:
    """`Key=Value Key=Value`, as `aws cloudformation deploy --parameter-overrides` takes them."""
    pairs = (word.split("=", 1) for word in text.split())
    return {pair[0]: pair[1] if len(pair) == 2 else "" for pair in pairs}


def _parameters(template: Path) -> dict[str, dict[str, Any]]:
    decoded, problems = decode_str(template.read_text(encoding="utf-8"))
    if decoded is None:
        raise ValueError(f"cannot read {template}: {problems}")
    return dict(decoded.get("Parameters", {}))


def problems(stack: Stack, given: Mapping[str, str]) -> list[str]:
    """What is wrong with the parameters `given` for `stack`, one line each."""
    found = []
    for name, spec in _parameters(stack.template).items():
        value = given.get(name)
        if value is None:
            if "Default" not in spec:
                found.append(
                    f"{stack.variable} needs {name}=... ({stack.template.name} has no default): {spec['Description']}"
                )
        elif "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            found.append(f"{stack.variable}: {name}={value!r} does not match {spec['AllowedPattern']}")
    return found


def deploy_problems(s3_bucket: str, network: Mapping[str, str], fleet: Mapping[str, str]) -> list[str]:
    found = [] if s3_bucket.strip() else ["S3_BUCKET=<bucket in the region> is required: the code package goes there"]
    return found + problems(NETWORK, network) + problems(FLEET, fleet)


def stage_settings(stage: str, region: str) -> Settings:
    """The deployed stage's settings (its table prefix, from .chalice/config.json) in `region`."""
    settings, *_ = stage_config(stage, json.loads(CHALICE_CONFIG.read_text(encoding="utf-8")))
    return replace(settings, region=region)


def credentials_at_hand() -> bool:
    import botocore.session

    return botocore.session.get_session().get_credentials() is not None


def table_problems(settings: Settings) -> list[str]:
    """What differs in the stage's existing tables of another layout, one line each; missing tables are fine."""
    found = check_tables(settings)
    return [line for finding in found if finding.state is TableState.OTHER_LAYOUT for line in difference_lines(finding)]


def _refuse(reason: str, lines: Sequence[str], then: str) -> int:
    listed = "\n".join(f"  {line}" for line in lines)
    print(f"make deploy: refused, nothing deployed{reason}:\n{listed}\n{then}", file=sys.stderr)
    return 1


def check_tables_of(stage: str, region: str) -> int:
    """The table half of main: 0 when the stage's tables may be deployed over (or cannot be checked)."""
    if not credentials_at_hand():
        print(f"make deploy: no AWS credentials, so the tables of stage {stage} were not checked", file=sys.stderr)
        return 0
    settings = stage_settings(stage, region)
    from botocore.exceptions import BotoCoreError, ClientError
    from pynamodb.exceptions import PynamoDBException

    try:
        found = table_problems(settings)
    except (PynamoDBException, BotoCoreError, ClientError) as error:
        return _refuse("", [f"cannot read the tables of stage {stage} in {region}: {error}"], "Check the credentials.")
    if found:
        return _refuse(f": tables of stage {stage} in {region} have another layout", found, what_to_do(settings))
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--s3-bucket", default="")
    parser.add_argument("--network", default="", metavar="PARAMS")
    parser.add_argument("--fleet", default="", metavar="PARAMS")
    parser.add_argument("--stage", help="check this stage's tables too (when AWS credentials are at hand)")
    parser.add_argument("--region", default=Settings().region)
    parser.add_argument("--tables-only", action="store_true", help="check the stage's tables, not the parameters")
    args = parser.parse_args(argv)
    if not args.tables_only:
        found = deploy_problems(args.s3_bucket, overrides(args.network), overrides(args.fleet))
        if found:
            return _refuse("", found, "See docs/deploy.md (Deploy).")
    return check_tables_of(args.stage, args.region) if args.stage else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
