"""Check the answers before cookiecutter writes any file of the project.

A bad answer stops generation with one line that says what to type instead; cookiecutter then
removes the half-made project folder, so nothing is left behind.

When the answers are fine, the hook writes down which files the project folder already holds
(none for a new project; some when `cookiecutter -f` is run over an existing one), so that the
post-generation hook deletes only files this run created, never a file of the team's own.
"""

import json
import keyword
import os
import re
import sys
from pathlib import Path

# Names a package must not take: the project's own dependencies and common tools, and `test`
# (Python's own test suite, installed with most Pythons though not listed in
# sys.stdlib_module_names). A package called `torch` would shadow PyTorch itself and fail in
# confusing ways.
TAKEN = {
    "torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning", "tensorboard",
    "jsonargparse", "sklearn", "scikit_learn", "numpy", "scipy", "matplotlib", "pandas",
    "tabulate", "optuna", "optuna_dashboard", "schedulefree", "yaml",
    "pytest", "ruff", "cookiecutter", "tests", "test", "src", "configs", "scripts",
}
# The answers picked from a menu, with their choices (as in cookiecutter.json; a test checks
# that they agree). Cookiecutter checks `problem_family=foo` on the command line itself; this
# catches a wrong one from a replay file or an old .cruft.json.
CHOICES = {
    "problem_family": ["vision", "tabular", "objective", "language", "diffusion", "all"],
    "license": ["MIT", "BSD-3-Clause", "Apache-2.0", "none"],
    "python_version": ["3.10", "3.11", "3.12", "3.13"],
}
# The answers written as text into files (README, pyproject.toml, the package docstring).
TEXT = ["project_name", "team_members", "email", "github_owner"]
MAX_NAME = 100  # characters of project_name: a title, which must fit on one line of the docstring
MAX_SLUG = 60  # characters of project_slug: the folder, repository and package name
SLUG = re.compile(r"^[a-z0-9]+([-_][a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # line breaks, tabs and other invisible characters
# Where the files found before generation are written down, for the post-generation hook.
EXISTING = ".files-before-generation.json"


def suggest_package(name: str) -> str:
    """A valid package name close to `name`, to put in the error message."""
    fixed = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "project"
    if fixed[0].isdigit():
        fixed = "project_" + fixed
    if keyword.iskeyword(fixed) or fixed in TAKEN or fixed in sys.stdlib_module_names:
        fixed += "_project"
    return fixed


def shorten(text: str, limit: int, separator: str) -> str:
    """`text` cut to at most `limit` characters, at the last `separator` if there is one."""
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(separator, 1)[0]
    return cut if cut and len(cut) <= limit else text[:limit]


def choice_problem(answers: dict[str, str]) -> str | None:
    """An answer that is not one of its menu's choices."""
    for key, choices in CHOICES.items():
        if answers[key] not in choices:
            return f"{key} {answers[key]!r} is not one of the choices {', '.join(choices)}: e.g. {key}={choices[0]}"
    return None


def text_problem(answers: dict[str, str]) -> str | None:
    """A text answer that cannot be written into the project's files as it is."""
    for key in TEXT:
        if CONTROL.search(answers[key]):
            return f"{key} {answers[key]!r} holds a line break, tab or other control character: type it on one line"
    name = answers["project_name"]
    if len(name) > MAX_NAME:
        return (f"project_name is {len(name)} characters long, over {MAX_NAME}: give a shorter title, "
                f'e.g. project_name="{shorten(name, MAX_NAME, " ")}"')
    return None


def name_problem(slug: str, package: str) -> str | None:
    """A folder or package name that is invalid, too long, or taken."""
    if not SLUG.match(slug):
        fixed = suggest_package(slug).replace("_", "-")
        return (f"project_slug {slug!r} is not a valid folder name: use lowercase letters, digits and dashes, "
                f"e.g. project_slug={fixed}")
    if len(slug) > MAX_SLUG:
        return (f"project_slug is {len(slug)} characters long, over {MAX_SLUG}: give a shorter one, "
                f"e.g. project_slug={shorten(slug, MAX_SLUG, '-')}")
    if slug.replace("-", "_") in TAKEN:
        return f"project_slug {slug!r} is the name of a dependency or tool: pick another, e.g. project_slug={slug}-project"
    if not PACKAGE.match(package):
        return (f"package_name {package!r} is not a Python identifier: use lowercase letters, digits and underscores, "
                f"not starting with a digit, e.g. package_name={suggest_package(package)}")
    if keyword.iskeyword(package):
        return f"package_name {package!r} is a Python keyword: use e.g. package_name={suggest_package(package)}"
    if package in TAKEN or package in sys.stdlib_module_names:
        return (f"package_name {package!r} would shadow the module of the same name: "
                f"use e.g. package_name={suggest_package(package)}")
    return None


def contact_problem(email: str, owner: str) -> str | None:
    """An email address or GitHub user name that is not one."""
    if not EMAIL.match(email):
        return f"email {email!r} is not an email address: type one like email=team@example.edu"
    if not GITHUB_OWNER.match(owner):
        return (f"github_owner {owner!r} is not a GitHub user name: letters, digits and dashes only, "
                "e.g. github_owner=ada-lovelace")
    return None


def problem(answers: dict[str, str]) -> str | None:
    """The first thing wrong with the answers, as one line saying what to type instead."""
    return (choice_problem(answers) or text_problem(answers)
            or name_problem(answers["project_slug"], answers["package_name"])
            or contact_problem(answers["email"], answers["github_owner"]))


def record_existing_files(root: Path) -> None:
    """Write down the files already in the project folder, for the post-generation hook.

    Hidden folders (.git, .venv) are left out: the post-generation hook never deletes there.
    """
    names = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        names += [(Path(folder) / name).relative_to(root).as_posix() for name in files]
    (root / EXISTING).write_text(json.dumps(sorted(names)))


# Every answer, as cookiecutter rendered it: JSON text in a Python string, read by json.loads
# (a JSON string is not always a Python one: an emoji is written as two escapes that only JSON joins).
ANSWERS = {
{%- for key, value in cookiecutter.items() if not key.startswith("_") %}
    {{ key|tojson }}: json.loads({{ value|tojson|tojson }}),
{%- endfor %}
}

if __name__ == "__main__":
    message = problem(ANSWERS)
    if message:
        print(f"ERROR: {message}", file=sys.stderr)
        sys.exit(1)
    record_existing_files(Path.cwd())
