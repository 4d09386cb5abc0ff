"""Keep the worked examples in projects/ in step with the template.

Each example was generated from the template and records its answers in `.cruft.json`. This
command generates each example again from the template as it is now (working tree, in a
temporary folder) and copies every file the template owns over the example's copy:

    python projects/update.py                                # update every example
    python projects/update.py the-sgd-lecture-reproduced     # only these (slugs or folders)
    python projects/update.py --check                        # report differences, change nothing;
                                                             # exit status 1 when there are any

Files the template owns: src/, tests/, configs/trainer/, scripts/, .github/, notebooks/,
benchmark/, train.py, sweep.py, pyproject.toml, LICENSE and PROMPT.md. A test file the template
never had (an example's tests/test_results.py), a module it never had in src/ (an example's own
optimizer, as a team adds one: docs/extending.md) and a file it never had in benchmark/ (a search
space submitted to the course benchmark) are the example's own. Everything else (README.md,
report.md, slides/, figures/, runs/, its configs, reproduce.sh) is never touched.

A file the template no longer makes (it had it once: in its git history, or for another family)
is deleted. A file the template never had in a folder it owns other than tests/, src/ and
benchmark/ is reported and kept: move it out. `.cruft.json` is pointed at the template by a
relative path (`../..` from projects/<slug>/) and at the commit checked out now, so that
`cruft diff` works in any clone.
"""

import argparse
import contextlib
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

REPO = Path(__file__).resolve().parents[1]
PROJECTS = REPO / "projects"
PROJECT_TEMPLATE = "template/{{cookiecutter.project_slug}}"
OWNED_FOLDERS = ("src/", "tests/", "configs/trainer/", "scripts/", ".github/", "notebooks/", "benchmark/")
OWNED_FILES = {"train.py", "sweep.py", "pyproject.toml", "LICENSE", "PROMPT.md"}
OWN_FILES_ALLOWED = ("tests/", "src/", "benchmark/")  # where an example may add files of its own (see above)
NOT_FILES_OF_ANYONE = {"__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}


def template_owned(path: str) -> bool:
    """Whether the template owns `path` (relative to a project, with / separators)."""
    parts = path.split("/")
    if NOT_FILES_OF_ANYONE.intersection(parts) or path.endswith(".pyc") or any(p.endswith(".egg-info") for p in parts):
        return False
    return path in OWNED_FILES or path.startswith(OWNED_FOLDERS)


def owned_files(project: Path) -> set[str]:
    """The template-owned files in `project`, as paths relative to it."""
    paths = (path.relative_to(project).as_posix() for path in project.rglob("*") if path.is_file())
    return {path for path in paths if template_owned(path)}


def git(*args: str) -> str | None:
    """What `git -C <repository> <args>` prints, or None without git or a repository."""
    try:
        result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return result.stdout if result.returncode == 0 else None


def template_ever_had(package: str) -> set[str]:
    """Every file the template makes for some answers, or made once (its git history), relative
    to a project with package `package`."""
    folder = REPO / PROJECT_TEMPLATE
    names = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    history = git("-c", "core.quotePath=false", "log", "--format=", "--name-only", "--", PROJECT_TEMPLATE) or ""
    names |= {line.removeprefix(PROJECT_TEMPLATE + "/") for line in history.splitlines() if line}
    return {name.replace("{{cookiecutter.package_name}}", package) for name in names}


@contextlib.contextmanager
def quiet_stdout():
    """Silence standard output, the post-generation hook's too (it runs in a child process)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def bake(answers: dict, folder: Path) -> Path:
    """Generate the project for `answers` from the template into `folder`; return the project."""
    config = folder / "cookiecutter-config.yaml"  # keeps cookiecutter's replay files out of $HOME
    config.write_text(f"cookiecutters_dir: '{folder / 'cookiecutters'}'\nreplay_dir: '{folder / 'replay'}'\n")
    with quiet_stdout():
        # _uv_lock no: uv.lock is not a file the template owns here (an example keeps its own, or none)
        return Path(cookiecutter(str(REPO), directory="template", no_input=True, extra_context={**answers, "_uv_lock": "no"},
                                 output_dir=str(folder / "out"), config_file=str(config)))


def cruft_state(example: Path) -> dict:
    """The example's .cruft.json, pointed at this template by a relative path and, when git knows
    it, at the commit checked out now."""
    state = json.loads((example / ".cruft.json").read_text())
    template = Path(os.path.relpath(REPO, example.resolve())).as_posix()
    commit = (git("rev-parse", "HEAD") or "").strip() or state.get("commit")
    answers = state["context"]["cookiecutter"]
    state.update(template=template, commit=commit)
    answers.update(_template=template, _commit=commit)
    return state


def short_diff(old: Path, new: Path, name: str, lines: int = 20) -> list[str]:
    """The first `lines` lines of a unified diff from the template's file to the example's."""
    a, b = (path.read_text(errors="replace").splitlines() for path in (new, old))
    diff = list(difflib.unified_diff(a, b, f"template/{name}", f"example/{name}", lineterm="", n=1))
    return [*diff[:lines], *(["..."] if len(diff) > lines else [])]


def differences(example: Path, fresh: Path, package: str) -> list[tuple[str, str]]:
    """(kind, file) for each template-owned file where `example` and the fresh bake differ:
    differs, missing (only in the bake), stale (the template had it once) or foreign (never)."""
    ours, theirs = owned_files(example), owned_files(fresh)
    ever = template_ever_had(package)
    found = [("differs", name) for name in sorted(ours & theirs)
             if (example / name).read_bytes() != (fresh / name).read_bytes()]
    found += [("missing", name) for name in sorted(theirs - ours)]
    found += [("stale", name) for name in sorted((ours - theirs) & ever)]
    found += [("foreign", name) for name in sorted(ours - theirs - ever) if not name.startswith(OWN_FILES_ALLOWED)]
    return found


def sync(example: Path, check: bool) -> bool:
    """Compare `example` with a fresh bake of its answers and print what differs; unless `check`,
    bring it in step. Return whether anything differed."""
    state = json.loads((example / ".cruft.json").read_text())
    answers = {key: value for key, value in state["context"]["cookiecutter"].items() if not key.startswith("_")}
    linked = cruft_state(example)
    with tempfile.TemporaryDirectory(prefix="update-example-") as tmp:
        fresh = bake(answers, Path(tmp))
        found = differences(example, fresh, answers["package_name"])
        if state["template"] != linked["template"]:
            found.append(("unlinked", f".cruft.json (template {state['template']!r}, not {linked['template']!r})"))
        summary = f"{len(found)} difference(s) from the template" + ("" if check else ", updating")
        print(f"{example.name}: {summary if found else 'in step with the template'}")
        for kind, name in found:
            print(f"  {kind:8} {name}")
            if kind == "differs" and check:
                print("\n".join("    " + line for line in short_diff(example / name, fresh / name, name)))
            elif kind in ("differs", "missing") and not check:
                (example / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(fresh / name, example / name)
            elif kind == "stale" and not check:
                (example / name).unlink()
            elif kind == "foreign":
                print("           the template never had it: move it out of the template's folders (kept)")
    if linked != state and not check:
        (example / ".cruft.json").write_text(json.dumps(linked, indent=2, ensure_ascii=False) + "\n")
    return bool(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", nargs="*", help="slugs of examples in projects/, or their folders (default: all)")
    parser.add_argument("--check", action="store_true", help="only report differences; exit status 1 when there are any")
    args = parser.parse_args(argv)
    examples = [Path(name) if Path(name).is_dir() else PROJECTS / name for name in args.examples]
    examples = examples or sorted(path.parent for path in PROJECTS.glob("*/.cruft.json"))
    for example in examples:
        if not (example / ".cruft.json").is_file():
            parser.error(f"{example} is not an example: it has no .cruft.json")
    differed = [example.name for example in examples if sync(example.resolve(), args.check)]
    if args.check and differed:
        print(f"\n{len(differed)} example(s) differ from the template: run `python projects/update.py` "
              "(the template's files are the template's; see projects/README.md)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
