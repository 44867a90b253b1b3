"""The package's shape: declared dependencies, private names kept private, modules of a
readable size. The layers and the absence of import cycles are import-linter's contracts in
pyproject.toml, checked by `make lint` (part of `make test`)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "marketcast"
MAX_LINES = 420


def _modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8")) for path in SRC.rglob("*.py")}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [
        s for extra in project["optional-dependencies"].values() for s in extra]
    return {re.split(r"[<>=\[ ;]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def test_every_imported_package_is_declared():
    imported = set()
    for tree in _modules().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"marketcast"}
    distributions = packages_distributions()
    undeclared = {
        name: distributions.get(name) for name in third_party
        if not {d.lower().replace("_", "-") for d in distributions.get(name, [name])}
        & _declared()
    }
    assert "torch" in third_party and "filelock" in third_party
    assert undeclared == {}


def test_no_module_imports_private_names_of_another():
    crossings = [
        (path.relative_to(SRC).as_posix(), node.module, alias.name)
        for path, tree in _modules().items() for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("marketcast")
        for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert crossings == []


def test_modules_stay_readable():
    long = {path.relative_to(SRC).as_posix(): n for path in SRC.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_no_posix_only_imports():
    """`import marketcast.api` must work on Windows: file locks come from `filelock`."""
    posix_only = {"fcntl", "termios", "resource", "pwd", "grp"}
    found = [
        (path.relative_to(SRC).as_posix(), name)
        for path, tree in _modules().items() for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
        if name.split(".")[0] in posix_only
    ]
    assert found == []


def test_tune_without_optuna_says_how_to_install_it(monkeypatch):
    from marketcast.errors import MissingDependencyError
    from marketcast.scale import tune

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    try:
        tune.require_optuna()
    except MissingDependencyError as exc:
        assert 'pip install "marketcast[tune]"' in str(exc)
    else:
        raise AssertionError("expected MissingDependencyError")
