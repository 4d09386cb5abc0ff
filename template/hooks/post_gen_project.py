"""Tidy the generated project: drop the problem families the team did not choose, link the
project to the template for later updates (.cruft.json), then print the next steps.

Each family is one cohesive unit: `src/<package>/problems/<family>.py` and its helpers
`<family>_*.py`, `configs/<family>*.yaml`, `configs/sweeps/<family>*.yaml`, `benchmark/workloads/<family>_*.yaml` and
`tests/test_<family>*.py`, plus the nets in `src/<package>/nets/` that only it uses.

Only files that this run created are ever deleted. The pre-generation hook writes down the files
the folder held before (none for a new project), so a file of the team's own, such as
`src/<package>/nets/mynet.py` or `configs/vision_mine.yaml`, is never touched, even when
cookiecutter is run again over the project.
"""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = {{ cookiecutter.package_name|tojson }}
CHOSEN = {{ cookiecutter.problem_family|tojson }}
LICENSE = {{ cookiecutter.license|tojson }}
# What cookiecutter tells about the template: the folder it read it from (absolute, or relative
# to where cookiecutter was started) and the git branch or tag asked for, if any.
TEMPLATE_FOLDER = json.loads({{ (cookiecutter.get("_repo_dir") or "")|tojson|tojson }})
CHECKOUT = {{ (cookiecutter.get("_checkout") or "")|tojson }}
# cruft (`cruft create`, `cruft update`) writes .cruft.json itself, and renders the template in
# temporary folders to compute an update: then this hook stays quiet.
RUN_BY_CRUFT = {{ "_commit" in cookiecutter }}
# Whether to fix every dependency's version in uv.lock (cookiecutter ... _uv_lock=no: leave it to you).
MAKE_LOCK = {{ (cookiecutter.get("_uv_lock") or "yes")|tojson }} != "no"
# Every answer, as cookiecutter rendered it: JSON text in a Python string, read by json.loads
# (a JSON string is not always a Python one: an emoji is written as two escapes that only JSON joins).
ANSWERS = {
{%- for key, value in cookiecutter.items() if not key.startswith("_") %}
    {{ key|tojson }}: json.loads({{ value|tojson|tojson }}),
{%- endfor %}
}
# Written by the pre-generation hook: the files the folder held before this run.
EXISTING = ".files-before-generation.json"

# The nets (files in src/<package>/nets/) each family needs.
FAMILY_NETS = {
    "vision": {"mlp", "cnn", "resnet"},
    "tabular": {"mlp"},
    "objective": set(),
    "language": {"gpt"},
    "diffusion": {"unet"},
}

# Modules beside the families (src/<package>/<name>.py) that only some families use.
SHARED_MODULES = {
    "fista": {"objective", "tabular"},
    "image_datasets": {"vision", "diffusion"},
}


def existing_files(root: Path) -> set[str]:
    """The files (paths relative to `root`) the folder held before this run; forgets the list."""
    record = root / EXISTING
    if not record.exists():
        return set()
    names = set(json.loads(record.read_text()))
    record.unlink()
    return names


def unwanted_files(root: Path, keep: set[str]) -> list[Path]:
    """Every file of the families not in `keep`, and the nets and shared modules no kept family uses."""
    package = root / "src" / PACKAGE
    unwanted = []
    for family in set(FAMILY_NETS) - keep:
        unwanted.append(package / "problems" / f"{family}.py")
        unwanted += (package / "problems").glob(f"{family}_*.py")  # its helpers, e.g. objective_theory.py
        unwanted += package.glob(f"report/{family}_*.py")  # its reporting, e.g. report/objective_trajectories.py
        unwanted += root.glob(f"configs/{family}*.yaml")
        unwanted += root.glob(f"configs/sweeps/{family}*.yaml")
        unwanted += root.glob(f"benchmark/workloads/{family}_*.yaml")  # its workloads of the course benchmark
        unwanted += root.glob(f"tests/test_{family}*.py")
    needed = set().union(*(FAMILY_NETS[family] for family in keep))
    unwanted += [net for net in (package / "nets").glob("*.py") if net.stem != "__init__" and net.stem not in needed]
    unwanted += [package / f"{name}.py" for name, users in SHARED_MODULES.items() if not users & keep]
    return unwanted


def prune_families(root: Path, keep: set[str], existing: set[str]) -> None:
    """Delete the unwanted files that this run created (never one in `existing`)."""
    for path in unwanted_files(root, keep):
        if path.relative_to(root).as_posix() not in existing:
            path.unlink(missing_ok=True)


def git(folder: Path, *args: str) -> str | None:
    """What `git -C <folder> <args>` prints, or None when it fails (no git, not a repository)."""
    try:
        result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def template_source() -> tuple[str, str, str] | None:
    """Where cruft finds this template again: (repository, commit, folder of cookiecutter.json in
    it). None when cookiecutter gave a relative folder or the template is not a git checkout."""
    folder = Path(TEMPLATE_FOLDER)
    if not folder.is_absolute():
        return None  # relative to a folder this hook does not know (cookiecutter . --directory template)
    top, commit = git(folder, "rev-parse", "--show-toplevel"), git(folder, "rev-parse", "HEAD")
    if not top or not commit or not git(folder, "ls-files", "cookiecutter.json"):
        return None  # not in git, or not committed there
    # The repository the template was cloned from (GitHub), else the local one itself.
    repository = git(Path(top), "remote", "get-url", "origin") or top
    inside = folder.resolve().relative_to(Path(top).resolve()).as_posix()
    return repository, commit, "" if inside == "." else inside


def link_to_template(root: Path) -> bool:
    """Write .cruft.json, what `cruft update` needs to bring later template changes: the template's
    repository, its commit and the answers. False when the template's repository is unknown."""
    if (root / ".cruft.json").exists():
        return True  # already linked: keep the commit it records
    source = template_source()
    if source is None:
        return False
    repository, commit, inside = source
    state = {
        "template": repository,
        "commit": commit,
        "checkout": CHECKOUT or None,
        "context": {"cookiecutter": {**ANSWERS, "_template": repository, "_commit": commit}},
        "directory": inside or None,
    }
    (root / ".cruft.json").write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n")
    return True


def lock_dependencies(root: Path) -> str:
    """Make uv.lock (every dependency's exact version, for every platform, so the team installs the
    same versions all semester) with uv, if it is here and reaches the package index; returns the
    line to print about it."""
    if importlib.util.find_spec("uv") is not None:
        command = [sys.executable, "-m", "uv", "lock", "--quiet"]  # uv installed as a Python package
    else:
        uv = shutil.which("uv")
        command = [uv, "lock", "--quiet"] if uv else None
    try:
        done = command is not None and subprocess.run(command, cwd=root, capture_output=True, timeout=600).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        done = False
    if done and (root / "uv.lock").is_file():
        return "uv.lock fixes the version of every dependency: commit it (README.md, Installing, says how to update it)."
    return ("No uv.lock yet (uv is not installed here, or could not reach the package index): run `uv lock` in the "
            "project, then commit uv.lock.")


def main() -> None:
    root = Path.cwd()
    existing = existing_files(root)
    keep = set(FAMILY_NETS) if CHOSEN == "all" else {CHOSEN}
    prune_families(root, keep, existing)
    if LICENSE == "none" and "LICENSE" not in existing:
        (root / "LICENSE").unlink(missing_ok=True)
    shutil.rmtree(root / "__pycache__", ignore_errors=True)
    if RUN_BY_CRUFT:
        return
    linked = link_to_template(root)
    if existing:
        print(
            f"""
{root} already held a project. Files of your own are kept, but cookiecutter -f wrote the
template's version of its files (README.md, report.md, ...) over yours, unless -s was given.
`git diff` shows what changed; `git checkout -- <file>` takes a file back. To bring template
changes into a project, run `uvx cruft update` in it instead (README.md, Getting template updates).
"""
        )
        return
    locked = lock_dependencies(root) if MAKE_LOCK else "No uv.lock (_uv_lock=no): run `uv lock` in the project."
    print(
        f"""
Your project is ready in {root}
{locked}

Next steps (from that folder):
  1. Install:        uv sync --locked --extra dev
  2. Train:          uv run python train.py fit   (the default experiment, offline, on the CPU)
  3. Test:           uv run pytest
  4. Look at runs:   uv run tensorboard --logdir runs
  5. Share it:       git init && git add . && git commit -m "Start from the course template"
                     then push to https://github.com/{{ cookiecutter.github_owner }}/{{ cookiecutter.project_slug }}
  6. Later, get template updates (after a commit): uvx cruft update

README.md shows more (another optimizer, a schedule, resuming, repeating a run); docs/extending.md
shows how to add your own optimizer, schedule, net, dataset or problem family. Without uv:
pip install -e ".[dev]" in a virtual environment, then the same commands without "uv run".
"""
    )
    if not linked:
        print("Not linked to the template for updates (no .cruft.json): the template's README.md, Updating a project, says how.")


if __name__ == "__main__":
    main()
