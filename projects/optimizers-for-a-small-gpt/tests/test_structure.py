"""Tests of the code's structure:
- the project uses only the public names of the libraries it builds on, so that a newer
  Lightning, jsonargparse, TensorBoard or PyTorch (what `uv lock --upgrade` brings) keeps it working;
- its modules import each other without a cycle, and training never loads the reporting side
  (figures, tables, comparisons: pandas and matplotlib), which costs every run seconds.

    uv run pytest tests/test_structure.py
"""

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import optimizers_for_a_small_gpt

PACKAGE = Path(optimizers_for_a_small_gpt.__file__).parent
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


# (__main__.py files are scripts: importing one runs it)
@pytest.mark.parametrize("path", sorted(path for path in PACKAGE.rglob("*.py") if path.name != "__main__.py"),
                         ids=lambda path: path.stem)
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




def is_reporting(module: str) -> bool:
    """Whether `module` (a name inside the package) is of the reporting side: report/ (reading runs
    from disk, drawing and tabulating them) and the two commands built on it."""
    return module.split(".")[0] == "report" or module in ("figures", "compare")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    """The package's modules that the file at `path` imports (at its top or inside a function)."""
    name = module_name(path)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found |= {f"{module}.{alias.name}" for alias in node.names} | {module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    modules = {module_name(path) for path in PACKAGE.rglob("*.py")}
    return {module for module in found if module in modules and module != name}


def test_the_modules_import_each_other_without_a_cycle():
    graph = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}
    cycles, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(" -> ".join(path[path.index(module):] + [module]))
            return
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == [], "import cycles (move what both need into a third module):\n" + "\n".join(cycles)


def test_training_loads_no_reporting():
    # What train.py fit imports, and every family: nothing of the reporting side, no pandas.
    # (matplotlib is loaded all the same, by torchmetrics, which Lightning imports.)
    package = PACKAGE.name
    code = (f"import sys, {package}.run.cli, {package}.run.families as f; f.data_modules(); "
            f"print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    reporting = sorted(name for name in loaded if name.split(".")[0] == "pandas"
                       or name.startswith(f"{package}.") and is_reporting(name.removeprefix(f"{package}.")))
    assert reporting == [], f"training imports the reporting side: {reporting[:10]}"


LONGEST = 450  # lines: a file a student reads in one sitting


def test_no_source_file_is_longer_than_a_sitting():
    long = {path.relative_to(PACKAGE).as_posix(): lines for path in sorted(PACKAGE.rglob("*.py"))
            if (lines := len(path.read_text().splitlines())) > LONGEST}
    assert long == {}, (f"files over {LONGEST} lines: split each by job (a family's helpers go in "
                        f"problems/<family>_<what>.py): {long}")
