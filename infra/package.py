"""`chalice package` without the network: the Lambda's wheels come from a
wheelhouse in the virtual environment, filled once when it is installed.

    python -m infra.package wheels              # fill the wheelhouse (needs the package index)
    python -m infra.package STAGE OUT_DIR       # OUT_DIR/sam.json and deployment.zip, offline

Chalice builds the deployment package by running `pip download` for the
requirements, first for this machine and then for Lambda's platform
(manylinux, this Python's ABI). It runs pip with this process's environment,
so PIP_NO_INDEX and PIP_FIND_LINKS pointed at the wheelhouse keep every one of
those downloads local.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from infra.render import REPO_ROOT, output_path

REQUIREMENTS = REPO_ROOT / "requirements.txt"
# Inside the venv: made with it, removed with it, never committed.
WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
# Chalice builds for the local Python version; so do we.
ABI = f"cp{sys.version_info.major}{sys.version_info.minor}"
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
# chalice wants a region even to package; the caller's wins.
DEFAULT_REGION = "us-east-1"


class PackagingError(Exception):
    """A one-line reason the package could not be built."""


def lambda_platforms() -> list[str]:
    """The wheel platforms chalice accepts for Lambda (x86_64) with this ABI: its own list, not a copy."""
    from chalice.deploy.packager import DependencyBuilder
    from chalice.utils import OSUtils

    return DependencyBuilder(OSUtils())._get_pip_platforms(ABI)


def _pip(command: str, arguments: Sequence[str]) -> None:
    subprocess.run([sys.executable, "-m", "pip", command, "--quiet", *arguments], check=True)


def fill_wheelhouse() -> None:
    """Wheels of the requirements for this machine (sdists built here, so packaging never builds one), then
    Lambda's build of each that is platform-specific: the two sets chalice asks pip for."""
    WHEELHOUSE.mkdir(exist_ok=True)
    _pip("wheel", ["--wheel-dir", str(WHEELHOUSE), "-r", str(REQUIREMENTS)])
    # A wheel's file name is NAME-VERSION-...-ABI-PLATFORM.whl, with no "-" inside a part.
    specific = sorted(
        "==".join(wheel.name.split("-")[:2])
        for wheel in WHEELHOUSE.glob("*.whl")
        if not wheel.name.endswith("-any.whl")
    )
    platforms = [argument for platform in lambda_platforms() for argument in ("--platform", platform)]
    lambda_only = ["--only-binary=:all:", "--no-deps", *platforms, "--implementation", "cp", "--abi", ABI]
    _pip("download", ["--dest", str(WHEELHOUSE), *lambda_only, "--python-version", PYTHON_VERSION, *specific])


def offline_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with pip told to use the wheelhouse and nothing else (env vars win over pip's config files)."""
    return {"AWS_DEFAULT_REGION": DEFAULT_REGION, **env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE)}


def package_command(stage: str, out_dir: Path) -> list[str]:
    template = output_path(stage)
    if not template.is_file():
        raise PackagingError(
            f"no {template.relative_to(REPO_ROOT)}: add the stage to infra/render.py and run python -m infra.render"
        )
    if not WHEELHOUSE.is_dir():
        raise PackagingError(
            f"no wheelhouse at {WHEELHOUSE}: run `make package` (or python -m infra.package wheels), "
            "which downloads the Lambda wheels once; packaging itself is offline"
        )
    chalice = str(Path(sys.executable).with_name("chalice"))
    return [chalice, "package", "--stage", stage, "--merge-template", str(template), str(out_dir)]


def package(stage: str, out_dir: Path, stderr: int | None = None) -> subprocess.Popen[bytes]:
    """Starts `chalice package` of `stage` into `out_dir`, offline; the caller waits."""
    # chalice caches the zip under .chalice/deployments and creates it without exist_ok: two packages
    # started at once on a fresh clone race to make it, and the loser fails with FileExistsError.
    (REPO_ROOT / ".chalice" / "deployments").mkdir(exist_ok=True)
    return subprocess.Popen(
        package_command(stage, out_dir),
        cwd=REPO_ROOT,
        env=offline_env(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def main(argv: Sequence[str]) -> int:
    if list(argv) == ["wheels"]:
        try:
            fill_wheelhouse()
        except subprocess.CalledProcessError:
            print(
                f"package: could not download the Lambda wheels into {WHEELHOUSE}: this needs the package index",
                file=sys.stderr,
            )
            return 1
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    stage, out_dir = argv
    try:
        job = package(stage, Path(out_dir).resolve(), stderr=subprocess.PIPE)
    except PackagingError as error:
        print(f"package: {error}", file=sys.stderr)
        return 1
    _, errors = job.communicate()
    if job.returncode != 0:
        sys.stderr.write(errors.decode(errors="replace"))
        print(
            f"package: chalice could not build the Lambda package from the wheelhouse {WHEELHOUSE} alone "
            "(a wheel missing there reads as NoSuchPackageError, not as a missing version): "
            "after changing requirements.txt, run `make package` with the package index reachable",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {out_dir}/sam.json and {out_dir}/deployment.zip")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
