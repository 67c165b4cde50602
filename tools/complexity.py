"""The complexity bound of `make check`: no function in the project's code
(methods and nested functions included) above cyclomatic complexity 15, as
radon measures it.

    .venv/bin/python -m tools.complexity [--max N] [PATH ...]

Prints each offender as `file:line: name complexity N` and exits 1 when there
is one. Without paths it reads the project's own code, never .venv, .dev or out/.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from radon.complexity import cc_visit_ast

MAX_COMPLEXITY = 15
PROJECT_PATHS = ("app.py", "chalicelib", "cli", "devstack", "bench", "infra", "tests", "tools")

_Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Measured:
    path: Path
    line: int
    # Dotted like a qualified name: `Class.method.nested`.
    name: str
    complexity: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name} complexity {self.complexity}"


def _functions(node: ast.AST, prefix: str) -> Iterator[tuple[str, _Function]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _Function):
            name = prefix + child.name
            yield name, child
            yield from _functions(child, name + ".")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, prefix + child.name + ".")
        else:
            yield from _functions(child, prefix)


def measure(path: Path) -> Iterator[Measured]:
    """Every function of one file. Each is handed to radon alone, because
    cc_visit's blocks leave out the methods of a class defined inside a
    function; radon never counts a nested function in its parent's score, so
    the numbers are the ones cc_visit gives."""
    for name, node in _functions(ast.parse(path.read_bytes(), filename=str(path)), ""):
        (block,) = cc_visit_ast(ast.Module(body=[node], type_ignores=[]))
        yield Measured(path, node.lineno, name, block.complexity)


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(found for found in path.rglob("*.py") if "__pycache__" not in found.parts)
        else:
            yield path


def offenders(paths: Iterable[Path], limit: int = MAX_COMPLEXITY) -> list[Measured]:
    return [measured for path in python_files(paths) for measured in measure(path) if measured.complexity > limit]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.complexity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=MAX_COMPLEXITY, help="highest complexity allowed (%(default)s)")
    parser.add_argument("paths", nargs="*", type=Path, default=[Path(path) for path in PROJECT_PATHS])
    args = parser.parse_args(argv)
    found = offenders(args.paths, args.max)
    for measured in found:
        print(measured)
    if found:
        print(f"{len(found)} function(s) above complexity {args.max}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
