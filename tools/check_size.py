"""Fail when a module under backend/ is over 400 lines or a function over 60.

Why: a file or function that grows past these limits usually holds more than one concept
(docs/ARCHITECTURE.md, "one concept per module"); the check keeps that visible in review.
Usage: ``python tools/check_size.py [ROOT ...]`` (default ``backend``); exit 1 on a breach.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def breaches(path: Path) -> list[str]:
    """What in ``path`` is over the limits, one line each (``path:line: why``)."""
    text = path.read_text(encoding="utf-8")
    found = []
    lines = text.count("\n") + (not text.endswith("\n") and bool(text))
    if lines > MAX_FILE_LINES:
        found.append(f"{path}:1: {lines} lines (> {MAX_FILE_LINES})")
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path}:{node.lineno}: function {node.name} is {length} lines "
                             f"(> {MAX_FUNCTION_LINES})")
    return found


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path("backend")]
    found = [b for root in roots for p in sorted(root.rglob("*.py")) for b in breaches(p)]
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} size breaches", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
