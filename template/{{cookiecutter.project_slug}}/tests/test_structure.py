"""Tests of the code's structure: the project uses only the public names of the libraries it
builds on, so that a newer Lightning, jsonargparse, TensorBoard or PyTorch (what `uv lock
--upgrade` brings) keeps it working.

    uv run pytest tests/test_structure.py
"""

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from conftest import ROOT

import {{ cookiecutter.package_name }}

PACKAGE = Path({{ cookiecutter.package_name }}.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py")) + [ROOT / "train.py", ROOT / "sweep.py", *sorted((ROOT / "scripts").glob("*.py"))]


PYTHONS = {"_abc_impl"}  # what Python itself sets on every class with an abstract base


def is_private(name: str) -> bool:
    """A name with one leading underscore: a library's internal, which it may rename in any release."""
    return name.startswith("_") and not name.startswith("__")


def own_private_names(tree: ast.AST) -> set[str]:
    """The private names a file of ours defines: its functions, classes and `self._x` attributes."""
    names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id == "self"}
    return {name for name in names if is_private(name)}


def private_uses(path: Path) -> list[str]:
    """'file:line: name' for each private name of another library the file imports, reads or calls."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = own_private_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and node.attr not in own:
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            found += [(node.lineno, module) for part in module.split(".") if is_private(part)]
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names if is_private(alias.name)]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if any(map(is_private, alias.name.split(".")))]
    return [f"{path.name}:{line}: {name}" for line, name in sorted(found)]


def test_no_private_name_of_a_library_is_used():
    found = [use for path in SOURCES for use in private_uses(path)]
    assert found == [], ("these use a library's private names (leading underscore), which a new release may rename "
                         "or remove: use a public API instead\n" + "\n".join(found))


def test_the_scan_finds_each_way_a_private_name_gets_in(tmp_path):
    example = tmp_path / "example.py"
    example.write_text("from lightning.fabric.utilities.logger import _add_prefix\nimport torch._dynamo\n"
                       "def f(trainer, logger):\n    logger._version = 1\n    return trainer._logger_connector\n"
                       "class Ours:\n    def __init__(self):\n        self._mine = 0\n\n    def _helper(self):\n"
                       "        return self._mine, self._helper\n")
    assert private_uses(example) == ["example.py:1: lightning.fabric.utilities.logger._add_prefix",
                                     "example.py:2: torch._dynamo", "example.py:4: _version",
                                     "example.py:5: _logger_connector"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda path: path.stem)
def test_no_private_method_of_a_library_is_overridden(path):
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    module = importlib.import_module(name)
    overridden = []
    for cls in vars(module).values():
        if not (inspect.isclass(cls) and cls.__module__ == module.__name__):
            continue
        theirs = [base for base in cls.__mro__[1:] if not base.__module__.startswith(PACKAGE.name)]
        overridden += [f"{cls.__name__}.{attr}" for attr in vars(cls) if is_private(attr) and attr not in PYTHONS
                       and any(attr in vars(base) for base in theirs)]
    assert overridden == [], f"{path.name} overrides a library's private methods (use a public hook): {overridden}"
