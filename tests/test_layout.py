"""The tree reads as the pipeline: each package imports only from itself and the packages
before it, and no module imports itself back through others (imports inside functions
count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "bigeval"

#: the packages in pipeline order; a module may import from its own layer and those above it
LAYERS = [
    ("core", ["bigeval", "bigeval.errors", "bigeval.defaults", "bigeval._resources",
              "bigeval.progress", "bigeval.linalg"]),
    ("io", ["bigeval.io"]),
    ("pedigree", ["bigeval.pedigree", "bigeval.groups"]),
    ("prepare", ["bigeval.prepare"]),
    ("genomic", ["bigeval.genomic"]),
    ("models", ["bigeval.models"]),
    ("reliability", ["bigeval.reliability"]),
    ("pipeline", ["bigeval.pipeline"]),
    ("tools", ["bigeval.simulate", "bigeval.sample", "bigeval.demo"]),
    ("cli", ["bigeval.cli"]),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of the project that ``name`` is (or is in), None for other packages."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every project module that ``module`` imports, at the top or inside functions;
    ``from package import name`` counts the submodule when ``name`` is one."""
    tree = ast.parse(MODULES[module].read_text())
    is_package = MODULES[module].name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        else:
            continue
        for n in names:
            target = _resolve(n) if n.startswith("bigeval") else None
            if target is not None and target != module:
                found.add(target)
    return found


def layer_of(module: str) -> int:
    best, where = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            # the root package holds itself only; every other prefix its submodules too
            inside = module == p or (p != "bigeval" and module.startswith(p + "."))
            if inside and len(p) > best:
                best, where = len(p), i
    assert where is not None, f"{module} is in no layer of tests/test_layout.py"
    return where


def test_layers__every_module_has_one():
    for m in MODULES:
        layer_of(m)


def test_layers__imports_go_only_down_the_pipeline():
    upward = []
    for m in MODULES:
        for t in imports_of(m):
            if layer_of(t) > layer_of(m):
                upward.append(f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} "
                              f"({LAYERS[layer_of(t)][0]})")
    assert not upward, "imports against the pipeline order:\n" + "\n".join(sorted(upward))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_imports__no_cycle_between_modules():
    # a package's __init__ may re-export its submodules: that is not a cycle of the code
    graph = {m: {t for t in imports_of(m)
                 if not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))}
             for m in MODULES}
    assert _cycles(graph) == []


def test_cycles__finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", ["bigeval.genomic.relationships", "bigeval.cli"])
def test_imports_of__sees_imports_inside_functions(module):
    inner = {"bigeval.genomic.relationships": "bigeval.linalg.cholesky",
             "bigeval.cli": "bigeval.cli.genomics"}[module]
    assert inner in imports_of(module)


def test_layers__order_is_the_pipeline():
    assert (layer_of("bigeval.linalg.schur") < layer_of("bigeval.io.readers")
            < layer_of("bigeval.prepare.ooc") < layer_of("bigeval.genomic.grm")
            < layer_of("bigeval.models.mme") < layer_of("bigeval.reliability.distributed.cluster")
            < layer_of("bigeval.pipeline.stages") < layer_of("bigeval.cli.run"))
