"""Fail when a module of boardsync imports one that stands above it in the data flow.

The flow (docs/ARCHITECTURE.md): cli -> run -> worker -> {proxy, pacing, policy, upstream}
-> validate -> store / state, over a base every layer may use. A lower layer importing a
higher one is how a tidy layout decays into a ball of cycles, so the rule is checked, not
hoped for. Imports under ``if TYPE_CHECKING:`` count too: they are still a dependency.
Usage: ``python tools/check_layers.py`` (exit 1 on a breach).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path("backend/boardsync")

#: Lowest first; a module may import its own layer and any below it.
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"clock", "errors", "models", "redact", "durations", "logctx", "logjson",
              "metrics", "threads", "outcomes", "defaults", "settings", "config", "sizing",
              "schedule", "atomic"}),
    ("store", {"store", "state", "mirror"}),
    ("judgement", {"validate", "plan", "policy", "pacing", "allowance", "learner", "lifetime",
                   "breaker", "queue", "witness", "evidence"}),
    ("io", {"upstream", "proxy"}),
    ("crew", {"crew"}),
    ("worker", {"worker", "reader", "sharing"}),
    ("run", {"run", "lists", "ledger", "writer"}),
    ("app", {"audit", "report", "daemon", "daemon_job", "health", "progress", "api"}),
    ("sim", {"sim", "demo"}),
    ("cli", {"cli", "__main__", "__init__"}),
]
RANK = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}


def top_name(path: Path) -> str:
    """``backend/boardsync/store/write.py`` -> ``store``; the package's own ``__init__``."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imported(path: Path) -> set[str]:
    """The top-level boardsync modules ``path`` imports (relative or absolute)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for a top-level module
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("boardsync"):
                parts = node.module.split(".")[1:]
            elif node.level > depth:
                parts = (node.module or "").split(".") if node.module else []
                if not parts or parts == [""]:
                    found.update(a.name for a in node.names)
                    continue
            else:
                continue  # inside its own subpackage
            if parts:
                found.add(parts[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "boardsync" and len(parts) > 1:
                    found.add(parts[1])
    return found


def breaches() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = top_name(path)
        if me not in RANK:
            out.append(f"{path}: module {me!r} has no layer in tools/check_layers.py")
            continue
        for other in sorted(imported(path)):
            if other in RANK and RANK[other] > RANK[me]:
                out.append(f"{path}: {me} ({LAYERS[RANK[me]][0]}) imports {other} "
                           f"({LAYERS[RANK[other]][0]}), which stands above it")
    return out


def main() -> int:
    found = breaches()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
