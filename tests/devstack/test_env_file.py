"""The state dir's env files: `source .dev/aws.env` gives the variables to the
shell and to what it starts, and the one reader (worker, cli.pins, tests)
reads back exactly what was written."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.env_file import read_env_file, write_env_file

VALUES = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    "WITH_SPACES": "Acme Inc",
    "WITH_QUOTES": """it's "quoted" """,
    "WITH_SHELL_SIGNS": "$HOME;`id`#1",
    "EMPTY": "",
}


def test_given_written_values_when_the_file_is_sourced_then_programs_started_from_the_shell_see_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "aws.env"
    write_env_file(path, VALUES)

    shell = shutil.which("sh")
    assert shell is not None
    program = f"import json, os; print(json.dumps({{name: os.environ.get(name) for name in {sorted(VALUES)!r}}}))"
    seen = subprocess.run(
        [shell, "-c", '. "$1" && exec "$2" -c "$3"', "sh", str(path), sys.executable, program],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    assert json.loads(seen.stdout) == VALUES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_given_written_values_when_read_back_then_they_are_the_same(tmp_path: Path) -> None:
    path = tmp_path / "local.env"
    write_env_file(path, VALUES)

    assert read_env_file(path) == VALUES


def test_given_a_hand_written_file_when_read_then_comments_blank_lines_and_quotes_are_understood(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mine.env"
    path.write_text("# mine\n\nPLAIN=a\nexport QUOTED='b c'\n  DOUBLE=\"d\"  # note\n", encoding="utf-8")

    assert read_env_file(path) == {"PLAIN": "a", "QUOTED": "b c", "DOUBLE": "d"}


def test_given_a_line_no_shell_could_read_when_read_then_the_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.env"
    path.write_text("GOOD=1\nBAD='open\n", encoding="utf-8")

    with pytest.raises(ValueError, match=r"broken.env, line 2: No closing quotation"):
        read_env_file(path)
