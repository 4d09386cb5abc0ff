"""Every file, module and name of code that README.md and docs/ mention exists in this project.

    uv run pytest tests/test_docs_names.py

A document names code in four ways, and each is checked (one test per document):
- a file, `src/<package>/problems/vision.py` or just `optim.py`: some file of the project has
  that path, or ends with it;
- a dotted name that starts with the package, `<package>.module.CourseModule`: the module
  imports, and each name after it is an attribute of what comes before;
- in backticks, a module of the package and a name in it: `callbacks.OptimizerModes`;
- a name in backticks said to be in a file, `OPTIMIZERS` in `src/<package>/optim.py`: the file
  defines it (class, def or assignment) or imports it.
A failure lists each missing name with its document and line: fix the document, or the code.

Not checked: a name with a placeholder (`<family>.py`); a config key (`data.init_args.batch_size`);
a file of the template repository (`template/hooks/...`); a file a document shows in full for the
reader to write (a ```python block whose first line is a comment naming it, as test_docs.py
reads them): a dotted name in such a module must be defined in that block.
"""

import importlib
import os
import re
from functools import cache
from pathlib import Path

import pytest
from conftest import ROOT
from test_docs import DOCUMENTS, documented_files

PACKAGE = "conditioning_momentum_and_the_noise_floor"
SOURCE = ROOT / "src" / PACKAGE
# A file name ending in .py, with or without folders; not a URL, nor one with a <placeholder>.
FILE = re.compile(r"(?<![\w./:<>-])([\w./-]*\w\.py)\b")
# A dotted name that starts with the package: <package>.problems.vision.ImageClassifier
DOTTED = re.compile(rf"(?<![\w.]){PACKAGE}(?:\.[A-Za-z_]\w*)+")
# In backticks, a word, a dot and more: `callbacks.OptimizerModes` (checked when the word is a module)
BACKTICKED = re.compile(r"`([a-z_]\w*)((?:\.[A-Za-z_]\w*)+)(?:\(\))?`")
# `NAME` in `path.py`: a name said to be in a file
NAME_IN_FILE = re.compile(r"`(\w+)`,? in `([\w./-]+\.py)`")
# What follows the dot in a file name or a config key, rather than a name in a module
NOT_A_NAME = {"init_args", "py", "yaml", "yml", "md", "png", "pdf", "npz", "json", "csv", "txt", "toml", "tex", "ckpt"}
OUTSIDE = ("template/",)  # the template repository's own files, which a project does not hold
NOT_THE_PROJECTS = {"runs", "data", "figures", "__pycache__"}  # made by running it; hidden folders (.venv) too


@cache
def project_files() -> tuple[str, ...]:
    """Every file of the project (paths relative to it), leaving out what running it made."""
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in NOT_THE_PROJECTS and not name.startswith(".")]
        files += [(Path(folder) / name).relative_to(ROOT).as_posix() for name in names]
    return tuple(files)


def package_modules() -> dict[str, str]:
    """Module name (the file's stem) -> its import path, for each module of the package."""
    modules = {}
    for path in sorted(SOURCE.rglob("*.py")):
        if path.stem != "__init__":
            modules.setdefault(path.stem, ".".join(path.relative_to(ROOT / "src").with_suffix("").parts))
    return modules


def shown_files() -> dict[str, str]:
    """The files the documents show in full, for the reader to write: path -> the block's code."""
    return {path: code for path, is_an_edit, code in documented_files() if not is_an_edit}


def module_of(path: str) -> str | None:
    """src/<package>/problems/vision.py -> <package>.problems.vision (None outside src/)."""
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[1:]) if parts[:1] == ("src",) else None


def defines(code: str, name: str) -> bool:
    """Whether the code defines `name` at the start of a line (class, def or assignment)."""
    return re.search(rf"^(?:class|def)\s+{name}\b|^{name}\s*[:=]", code, re.MULTILINE) is not None


def defines_or_imports(code: str, name: str) -> bool:
    """Whether the code defines `name` in it (a method too) or imports it from elsewhere."""
    return re.search(rf"^\s*(?:class|def)\s+{name}\b|^{name}\s*[:=]|^from .* import .*\b{name}\b", code, re.MULTILINE) is not None


def why_missing(dotted: str, shown_modules: dict[str, str]) -> str | None:
    """None when the dotted name exists (or names what a shown file defines), else why not."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in shown_modules:
            rest = parts[end:]
            return None if not rest or defines(shown_modules[name], rest[0]) else f"the file shown defines no {rest[0]}"
        try:
            found = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is not None and name.startswith(error.name) and end > 1:
                continue  # this prefix is not a module: try a shorter one
            raise
        for i, attribute in enumerate(parts[end:], end):
            if not hasattr(found, attribute):
                return f"{'.'.join(parts[:i])} has no {attribute}"
            found = getattr(found, attribute)
        return None
    return "no such module"


def mentions(document: Path) -> list[tuple[int, str, str]]:
    """(line, kind, name) of each mention of code in a document: kind is file, dotted, backticked or
    name in file."""
    found = []
    for number, line in enumerate(document.read_text().splitlines(), 1):
        found += [(number, "file", match.group(1)) for match in FILE.finditer(line)]
        found += [(number, "dotted", match.group(0)) for match in DOTTED.finditer(line)]
        found += [(number, "backticked", match.group(1) + match.group(2)) for match in BACKTICKED.finditer(line)]
        found += [(number, "name in file", f"{match.group(1)} in {match.group(2)}") for match in NAME_IN_FILE.finditer(line)]
    return found


def missing_names(document: Path) -> list[str]:
    """'<document>:<line>: <name> (why)' for each name the document mentions that does not exist."""
    files, modules, shown = project_files(), package_modules(), shown_files()
    shown_modules = {module_of(path): code for path, code in shown.items() if module_of(path)}
    where = document.relative_to(ROOT).as_posix()
    missing = []
    for number, kind, name in mentions(document):
        if kind == "file":
            if name.startswith(OUTSIDE) or name in shown or any(path.endswith("/" + name) for path in shown):
                continue
            if not any(path == name or path.endswith("/" + name) for path in files):
                missing.append(f"{where}:{number}: {name} (no such file in the project)")
            continue
        if kind == "name in file":
            attribute, file = name.split(" in ")
            paths = [path for path in files if path == file or path.endswith("/" + file)]
            if paths and not any(defines_or_imports((ROOT / path).read_text(), attribute) for path in paths):
                missing.append(f"{where}:{number}: {attribute} (not in {file})")
            continue  # a missing file is reported as a file
        dotted = name
        if kind == "backticked":
            first, second = name.split(".")[:2]
            if first not in modules or second in NOT_A_NAME:
                continue  # not a module of the package: a config key, a file name, a library's name
            dotted = modules[first] + name[len(first) :]
        reason = why_missing(dotted, shown_modules)
        if reason:
            missing.append(f"{where}:{number}: {name} ({reason})")
    return missing


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_name_a_document_mentions_exists(document):
    missing = missing_names(document)
    assert not missing, "names of code that do not exist here (fix the document, or the code):\n" + "\n".join(missing)


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").glob("*.sh")), ids=lambda path: path.name)
def test_every_config_a_script_names_is_in_the_project(script):
    """The cluster scripts' usage lines name configs this project has (a one-family project too)."""
    named = set(re.findall(r"\bconfigs/[\w/]+\.yaml\b", script.read_text()))
    assert named, f"{script.name} names no config in its usage lines"
    assert [path for path in sorted(named) if not (ROOT / path).is_file()] == []
