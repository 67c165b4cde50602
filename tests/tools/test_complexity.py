"""The complexity bound of `make check` (tools/complexity.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from radon.complexity import add_inner_blocks, cc_visit

from tools.complexity import main, measure


def branches(name: str, complexity: int, indent: str = "") -> str:
    """A function of exactly `complexity`: one path plus one per `if`."""
    body = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(complexity - 1))
    return textwrap.indent(f"def {name}(x):\n{body}    return -1\n", indent)


def def_line(path: Path, name: str) -> int:
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.lstrip().startswith(f"def {name}("))


def test_an_offender_anywhere_is_named_with_its_place_and_score_and_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a method, a function nested in it and a method of a class defined
    # inside a function, each above the bound, next to functions at the bound
    source = tmp_path / "module.py"
    source.write_text(
        "class Outer:\n"
        + branches("method", 16, "    ")
        + "    def host(self):\n"
        + branches("nested", 17, "        ")
        + "        return nested\n"
        + branches("at_the_bound", 15)
        + "def factory():\n"
        + "    class Local:\n"
        + branches("handle", 20, "        ")
        + "    return Local\n"
    )
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "fine.py").write_text(branches("simple", 15))

    # When the project is checked
    status = main([str(source), str(clean)])

    # Then each offender is printed as file:line: name complexity, and the check fails
    assert status == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{source}:{def_line(source, 'method')}: Outer.method complexity 16",
        f"{source}:{def_line(source, 'nested')}: Outer.host.nested complexity 17",
        f"{source}:{def_line(source, 'handle')}: factory.Local.handle complexity 20",
    ]


def test_code_within_the_bound_passes_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fine.py").write_text(branches("simple", 15) + "class Small:\n" + branches("method", 15, "    "))

    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


def test_scores_are_those_radon_cc_visit_gives() -> None:
    # Given a real module of the project with methods, closures and comprehensions
    path = Path(__file__).resolve().parents[2] / "chalicelib" / "worker" / "drain.py"
    # When measured by the checker and by radon's own listing
    ours = {(measured.line, measured.name.rsplit(".", 1)[-1]): measured.complexity for measured in measure(path)}
    radon = {
        (block.lineno, block.name.rsplit(".", 1)[-1]): block.complexity
        for block in add_inner_blocks(cc_visit(path.read_text()))
        if hasattr(block, "is_method")
    }
    # Then every function radon lists has the same score
    assert radon and {key: ours[key] for key in radon} == radon
