"""The env files of the state directory: one grammar, written and read here.

Each line is `export NAME=value`, the value quoted as a POSIX shell reads it
when it needs quoting, so `source .dev/aws.env` sets the variables for the
shell *and* the programs it starts. `read_env_file` reads the same lines (and
`NAME=value` without `export`, blank lines and `#` comments, as people write
them by hand): what `cli.pins --env-file`, the worker and the tests use.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by the owner only (mode 0600), atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """`export NAME=value` lines, mode 0600."""
    write_private(path, "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items()))


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of an env file; ValueError names the line a shell could not read either."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        try:
            values[name.strip()] = "".join(shlex.split(value, comments=True))
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: {error}") from None
    return values
