"""What `make deploy` checks before it deploys anything: that every stack of
the stage will get the parameters it cannot do without.

    python -m infra.deploy_check --s3-bucket BUCKET --network "Key=Value ..." --fleet "Key=Value ..."

A parameter is required when its template gives it no default; a value given
must match the template's AllowedPattern. The templates are read, so what is
required is written once, in them. Without this, a missing fleet parameter
would fail the third stack after the first two are up.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

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


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--s3-bucket", default="")
    parser.add_argument("--network", default="", metavar="PARAMS")
    parser.add_argument("--fleet", default="", metavar="PARAMS")
    args = parser.parse_args(argv)
    found = deploy_problems(args.s3_bucket, overrides(args.network), overrides(args.fleet))
    if found:
        lines = "\n".join(f"  {line}" for line in found)
        print(f"make deploy: refused, nothing deployed:\n{lines}\nSee docs/deploy.md (Deploy).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
