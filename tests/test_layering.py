"""The import graph of ``pytyche/``, read from the source (AST), against the layering rules.

Every import statement counts, at module level or inside a function (a deferred import is still a
dependency); only ``if TYPE_CHECKING:`` blocks, which never run, are skipped. Importing a module
also runs its parent packages' ``__init__``, so a module depends on its parents too.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pytyche"
FORBIDDEN = {"ray", "mlflow", "optuna"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import that can run; relative imports resolved by the caller."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "pytyche uses absolute imports"
            found.append((node.module or "", [a.name for a in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@cache
def _raw_imports(module: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    return tuple((m, tuple(names)) for m, names in _imports(tree))


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def _direct(module: str) -> frozenset[str]:
    """Every module ``module`` imports when it runs: pytyche modules by full name, others by top level."""
    out: set[str] = set(_parents(module))
    for target, names in _raw_imports(module):
        candidates = [target, *(f"{target}.{n}" for n in names)]
        for c in candidates:
            if c in MODULES:
                out.update([*_parents(c), c])
            elif not c.startswith("pytyche"):
                out.add(c.split(".")[0])
    out.discard(module)
    return frozenset(out)


@cache
def _closure(module: str) -> frozenset[str]:
    seen: set[str] = set()
    stack = [module]
    while stack:
        m = stack.pop()
        for d in _direct(m):
            if d not in seen:
                seen.add(d)
                if d in MODULES:
                    stack.append(d)
    return frozenset(seen)


def test_the_graph_sees_every_module():
    assert "pytyche.bcf.kernel" in MODULES and "pytyche.analysis.analyze" in MODULES
    assert "pytyche.bcf._bartz" in _closure("pytyche.bcf.kernel")
    assert "jax" in _closure("pytyche.bcf.sampler")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_pytyche_never_imports_ray_mlflow_or_optuna(module):
    """DESIGN.md: ``pytyche/`` never imports ray, mlflow or optuna, at any depth."""
    assert not (_closure(module) & FORBIDDEN), f"{module} reaches {_closure(module) & FORBIDDEN}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("pytyche.bcf")))
def test_bcf_never_imports_analysis(module):
    """The estimators sit below the analysis layer: no path of imports leads from bcf to analysis."""
    reached = sorted(m for m in _closure(module) if m == "pytyche.analysis" or m.startswith("pytyche.analysis."))
    assert not reached, f"{module} reaches {reached}"


def _private_imports(module: str, package: str) -> list[str]:
    out = []
    for target, names in _raw_imports(module):
        if target.split(".")[0] != package:
            continue
        if any(part.startswith("_") for part in target.split(".")[1:]) or any(n.startswith("_") for n in names):
            out.append(target)
    return out


def test_private_bartz_and_equinox_names_have_one_home():
    """bartz's private modules are imported only by `pytyche.bcf._bartz`; equinox's only by `_eqx_checks`."""
    bartz_users = {m for m in MODULES if _private_imports(m, "bartz")}
    eqx_users = {m for m in MODULES if _private_imports(m, "equinox")}
    assert bartz_users == {"pytyche.bcf._bartz"}
    assert eqx_users == {"pytyche.bcf._eqx_checks"}
    mcmc_users = {m for m in MODULES for t, _ in _raw_imports(m) if t.startswith("bartz.")}
    assert mcmc_users == {"pytyche.bcf._bartz"}
