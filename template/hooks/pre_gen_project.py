"""Check the answers before cookiecutter writes any file of the project.

A bad answer stops generation with one line that says what to type instead; cookiecutter then
removes the half-made project folder, so nothing is left behind.
"""

import keyword
import re
import sys

# Names a package must not take: the project's own dependencies and common tools. A package
# called `torch` would shadow PyTorch itself and fail in confusing ways.
TAKEN = {
    "torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning", "tensorboard",
    "jsonargparse", "sklearn", "scikit_learn", "numpy", "scipy", "matplotlib", "pandas",
    "pytest", "ruff", "cookiecutter", "tests", "src", "configs", "scripts",
}
SLUG = re.compile(r"^[a-z0-9]+([-_][a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


def suggest_package(name: str) -> str:
    """A valid package name close to `name`, to put in the error message."""
    fixed = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "project"
    if fixed[0].isdigit():
        fixed = "project_" + fixed
    if keyword.iskeyword(fixed) or fixed in TAKEN or fixed in sys.stdlib_module_names:
        fixed += "_project"
    return fixed


def problem(slug: str, package: str, email: str, owner: str) -> str | None:
    """The first thing wrong with the answers, as one line saying what to type instead."""
    if not SLUG.match(slug):
        fixed = suggest_package(slug).replace("_", "-")
        return f"project_slug {slug!r} is not a valid folder name: use lowercase letters, digits and dashes, e.g. project_slug={fixed}"
    if slug.replace("-", "_") in TAKEN:
        return f"project_slug {slug!r} is the name of a dependency or tool: pick another, e.g. project_slug={slug}-project"
    if not PACKAGE.match(package):
        return f"package_name {package!r} is not a Python identifier: use lowercase letters, digits and underscores, not starting with a digit, e.g. package_name={suggest_package(package)}"
    if keyword.iskeyword(package):
        return f"package_name {package!r} is a Python keyword: use e.g. package_name={suggest_package(package)}"
    if package in TAKEN or package in sys.stdlib_module_names:
        return f"package_name {package!r} would shadow the module of the same name: use e.g. package_name={suggest_package(package)}"
    if not EMAIL.match(email):
        return f"email {email!r} is not an email address: type one like email=team@example.edu"
    if not GITHUB_OWNER.match(owner):
        return f"github_owner {owner!r} is not a GitHub user name: letters, digits and dashes only, e.g. github_owner=ada-lovelace"
    return None


if __name__ == "__main__":
    message = problem(
        slug={{ cookiecutter.project_slug|tojson }},
        package={{ cookiecutter.package_name|tojson }},
        email={{ cookiecutter.email|tojson }},
        owner={{ cookiecutter.github_owner|tojson }},
    )
    if message:
        print(f"ERROR: {message}", file=sys.stderr)
        sys.exit(1)
