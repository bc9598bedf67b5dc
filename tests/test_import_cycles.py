"""No import circles among photod's modules (house rule), found statically with `ast`.

Every import of a photod module counts: at module level, inside functions (lazy imports) and
under `if TYPE_CHECKING:` — a lazy import hides a circle from Python at import time, not from
the reader, and the next refactor that hoists it turns it into an ImportError.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Circles that predate this test, in folders other work owns right now (models/: the model
# registry imports the zoo to register the shipped models, which import the network; training/:
# finetune and report import each other's helpers). Listed so they are fixed on purpose, not
# forgotten: the test fails when one of them is gone (delete it here) or when any other appears.
KNOWN_CYCLES = [
    # The registry lists personal models through the zoo, whose builders load through aesthetic.
    [
        "photod.models.aesthetic",
        "photod.models.personal",
        "photod.models.registry",
        "photod.models.zoo",
    ],
]


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module the wheel installs under `photod`."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    modules: dict[str, Path] = {}
    for package, folder in package_dir.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if any(part.startswith(".") for part in parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            # A sub-package mapped elsewhere (photod.models -> models/) is not also photod/models.
            modules.setdefault(name, path)
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The photod modules `name` imports (a `from pkg import sub` names the submodule)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif target in modules:
                    found.add(target)
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    # A package's own __init__ importing its submodules is how packages re-export; a circle
    # only through a package and its own children is not a layering problem.
    graph = {}
    for name, path in modules.items():
        graph[name] = {
            dep
            for dep in _imports(name, path, modules)
            if not dep.startswith(name + ".") and not name.startswith(dep + ".")
        }
    return graph


def test_the_detector_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = _graph()
    assert "photod.errors" in graph["photod.decode"]
    assert "photod.errors" in graph["photod.metadata.xmp"]  # module level
    assert "photod.index" in graph["photod.suggest_store"]  # inside a function
    assert "photod.scoring" in graph["photod.suggest"]  # under `if TYPE_CHECKING:`


def test_no_import_cycles_among_photod_modules() -> None:
    cycles = _cycles(_graph())
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    assert new == [], "import circles: " + "; ".join(" <-> ".join(c) for c in new)
    gone = [c for c in KNOWN_CYCLES if c not in cycles]
    assert gone == [], f"fixed, remove from KNOWN_CYCLES: {gone}"
