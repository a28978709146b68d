"""The import graph of ``src/evalscope`` has no cycles and keeps its layers (issue 12).

The graph is read with ``ast`` from the source (nothing is imported), counting every import: module level,
inside functions (the lazy imports that keep ``--help`` fast are still dependencies) and under
``TYPE_CHECKING``. ``import a.b`` and ``from a import b`` (``b`` a module) are edges to ``a.b``; a package's
``__init__`` is a node of its own (importing ``a.b`` is not counted as depending on everything ``a`` exports).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src"
ROOT = "evalscope"

#: Cycles known on the day this test was written, each being removed by another branch (issue 12). The
#: coordinator empties this list after merging them; a cycle not listed here (or larger than listed) fails.
KNOWN_CYCLES: list[frozenset[str]] = []

#: Layering: (modules matching ``source`` prefix) may not import (modules matching any ``forbidden`` prefix).
FRONT_ENDS = ("evalscope.perf", "evalscope.eval", "evalscope.cli", "evalscope.report", "evalscope.arena")
RUNNERS = (
    "evalscope.perf.runner",
    "evalscope.perf.workers",
    "evalscope.perf.ray_backend",
    "evalscope.eval.runner",
)
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("evalscope.engine", (*FRONT_ENDS, "evalscope.sim"), "the engine is shared by every front end"),
    ("evalscope.sim", FRONT_ENDS, "the simulator is the test double of servers, not a client"),
    (
        "evalscope.servers",
        (*FRONT_ENDS, "evalscope.sim"),
        "managed servers are started for perf and eval alike; they know neither",
    ),
    ("evalscope.tokens", ("evalscope.",), "the word tokenizer is a leaf shared by perf and the simulator"),
    ("evalscope.errors", ("evalscope.",), "errors are a leaf"),
    (
        "evalscope.perf.tokenizer",
        ("evalscope.sim",),
        "production token counting does not depend on the simulator",
    ),
    ("evalscope.report", RUNNERS, "reports consume data, never the running objects"),
    ("evalscope.perf.report", RUNNERS, "reports consume data, never the running objects"),
    ("evalscope.eval.report", RUNNERS, "reports consume data, never the running objects"),
    (
        "evalscope.eval",
        ("evalscope.perf", "evalscope.cli"),
        "eval is a front end; the CLI imports it, not back",
    ),
    (
        "evalscope.arena",
        ("evalscope.perf", "evalscope.cli", "evalscope.eval.runner", "evalscope.eval.benchmarks"),
        "the arena rides on eval's models, not on its runner",
    ),
    (
        "evalscope.eval.models",
        ("evalscope.eval.runner", "evalscope.eval.benchmarks", "evalscope.cli"),
        "models know no runner",
    ),
    (
        "evalscope.eval.benchmarks",
        ("evalscope.eval.runner", "evalscope.cli", "evalscope.perf"),
        "benchmarks know no runner",
    ),
    (
        "evalscope.eval.scoring",
        ("evalscope.eval.runner", "evalscope.eval.benchmarks", "evalscope.cli"),
        "scoring is below benchmarks",
    ),
]
#: Layering breaks known today, removed by other branches (emptied by the coordinator after merging).
KNOWN_BREAKS: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest known module that ``name`` is or is inside (``a.b.func`` -> ``a.b``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(mod: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    target = _resolve(alias.name)
                    if target:
                        yield target
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not (base == ROOT or base.startswith(ROOT + ".")):
                continue
            for alias in node.names:
                target = (
                    _resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in MODULES else _resolve(base)
                )
                if target:
                    yield target


def _graph() -> dict[str, set[str]]:
    return {m: {t for t in _imports(m, p) if t != m} for m, p in MODULES.items()}


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp: set[str] = set()
                while True:
                    m = stack.pop()
                    on.discard(m)
                    comp.add(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def _path_in(comp: frozenset[str]) -> str:
    """One concrete loop through ``comp`` (for the failure message)."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for m in frontier:
            for t in sorted(GRAPH[m] & comp):
                if t == start:
                    loop = [m]
                    while loop[-1] != start:
                        loop.append(prev[loop[-1]])
                    return " -> ".join([start, *reversed(loop[:-1]), start])
                if t not in prev:
                    prev[t] = m
                    nxt.append(t)
        frontier = nxt
    return ", ".join(sorted(comp))


def test_the_graph_is_read() -> None:
    """Guard against a walker that sees nothing: known edges (module level and inside functions) are found."""
    assert "evalscope.engine.client" in GRAPH["evalscope.eval.models.api"]
    assert "evalscope.sim" in GRAPH["evalscope.eval.models.builtin"]  # imported inside a function
    assert "evalscope.eval.models.base" in GRAPH["evalscope.eval.benchmarks.base"]  # under TYPE_CHECKING


def test_no_import_cycles() -> None:
    found = _cycles(GRAPH)
    unknown = [c for c in found if not any(c <= k for k in KNOWN_CYCLES)]
    assert not unknown, "import cycles:\n" + "\n".join(_path_in(c) for c in unknown)


def test_known_cycles_still_exist() -> None:
    """An entry of KNOWN_CYCLES that no longer matches a cycle must be deleted (the list only shrinks)."""
    found = _cycles(GRAPH)
    stale = [sorted(k) for k in KNOWN_CYCLES if not any(c & k and len(c & k) > 1 for c in found)]
    assert not stale, f"remove from KNOWN_CYCLES (fixed): {stale}"


@pytest.mark.parametrize(("source", "forbidden", "why"), RULES, ids=[r[0] for r in RULES])
def test_layering(source: str, forbidden: tuple[str, ...], why: str) -> None:
    breaks = []
    for mod, targets in GRAPH.items():
        if not (mod == source or mod.startswith(source + ".")) or mod.endswith(".__main__"):
            continue  # ``python -m`` entry points are front ends by definition
        for t in sorted(targets):
            hit = any(t == f or t.startswith(f if f.endswith(".") else f + ".") for f in forbidden)
            if hit and (mod, t) not in KNOWN_BREAKS:
                breaks.append(f"{mod} imports {t}")
    assert not breaks, f"{why}: " + "; ".join(breaks)


def test_known_breaks_still_exist() -> None:
    stale = sorted(b for b in KNOWN_BREAKS if b[1] not in GRAPH.get(b[0], set()))
    assert not stale, f"remove from KNOWN_BREAKS (fixed): {stale}"
