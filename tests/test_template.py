"""Tests of the cookiecutter template: bake projects with different answers and check them.

Run from the repository root (see README.md for the one command that sets up and runs all):
    .venv/bin/python -m pytest tests -n auto                 # both tiers, one test per CPU core
    .venv/bin/python -m pytest tests -n auto -m "not slow"   # the fast tier
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template"
FAMILIES = json.loads((TEMPLATE / "cookiecutter.json").read_text())["problem_family"]
LONGEST_FIRST = sorted(FAMILIES, key=lambda family: family != "all")  # so that pytest -n ends together
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|\{#")  # GitHub workflows' ${{ }} is theirs, not Jinja's


def bake(tmp_path: Path, **answers) -> Path:
    """Generate a project with `answers` (the rest default) and return its folder."""
    return Path(cookiecutter(str(REPO), no_input=True, output_dir=str(tmp_path / "out"), extra_context=answers))


def family_files(project: Path) -> set[str]:
    """The families whose module is in the project (a family's helper files, <family>_*.py, count as it)."""
    return {path.stem.split("_")[0] for path in project.glob("src/*/problems/*.py") if path.stem != "__init__"}


def install_and_test(project: Path, *pytest_args: str) -> subprocess.CompletedProcess:
    """Install the baked package (its dependencies are already here) and run its own tests."""
    subprocess.run([sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", sys.executable,
                    "--no-deps", "-e", str(project)], check=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one CPU thread each: bakes are tested side by side (-n)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *pytest_args],
                          cwd=project, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_the_all_project_passes_its_slow_tests(tmp_path):
    """Learning curves, DDP, sweeps across processes, notebooks and the browser, in the project
    that has every family."""
    project = bake(tmp_path, problem_family="all", project_name="Slow Check")
    result = install_and_test(project, "-m", "slow")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


@pytest.mark.slow
def test_the_oldest_versions_the_project_allows_pass_its_fast_tier(tmp_path):
    """pyproject.toml's lower bounds are true: the `all` project, installed in an environment of
    its own with each dependency at the oldest version it allows (uv's lowest-direct
    resolution), passes its whole fast tier. A bound that fails here is raised to what passes."""
    project = bake(tmp_path, problem_family="all", project_name="Oldest Check")
    venv, uv = tmp_path / "oldest", [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    install = subprocess.run([*uv, "pip", "install", "--quiet", "--python", str(python), "--resolution", "lowest-direct",
                              "--compile-bytecode", "-e", f"{project}[dev]"], capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"} | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow"],
                            cwd=project, capture_output=True, text=True, env=env, timeout=2400)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_a_fresh_bake_locks_its_dependencies_for_uv_sync(tmp_path, capfd):
    project = bake(tmp_path, problem_family="objective", project_name="Lock Check", _uv_lock="yes")
    assert "uv.lock fixes the version of every dependency" in capfd.readouterr().out
    assert (project / "uv.lock").is_file()
    uv = [sys.executable, "-m", "uv"]
    check = subprocess.run([*uv, "lock", "--locked"], cwd=project, capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr[-2000:]  # uv.lock agrees with pyproject.toml
    sync = subprocess.run([*uv, "sync", "--locked", "--extra", "dev", "--dry-run"], cwd=project, capture_output=True,
                          text=True, timeout=600)
    assert sync.returncode == 0, sync.stderr[-2000:]  # the README's install command accepts it
    assert "uv sync --locked --extra dev" in (project / ".github" / "workflows" / "tests.yml").read_text()


def test_default_bake_is_fully_rendered(tmp_path):
    project = bake(tmp_path)
    assert project.name == "optimizer-study"
    assert (project / "src" / "optimizer_study" / "run" / "cli.py").is_file()
    leftovers = [str(path.relative_to(project)) for path in project.rglob("*")
                 if path.is_file() and UNRENDERED.search(path.read_text(errors="ignore"))]
    assert leftovers == []
    assert "Ada Lovelace" in (project / "LICENSE").read_text()
    assert 'requires-python = ">=3.10"' in (project / "pyproject.toml").read_text()
    assert "your-github-username/optimizer-study" in (project / "README.md").read_text()


@pytest.mark.parametrize("family", LONGEST_FIRST)
def test_each_family_bakes_a_project_that_passes_its_own_tests(family, tmp_path):
    project = bake(tmp_path, problem_family=family, project_name=f"{family} check")
    kept = family_files(project)
    expected = set(FAMILIES) - {"all"} if family == "all" else {family}
    assert kept == expected
    assert {path.stem.split("_")[0] for path in project.glob("configs/*.yaml")} == expected
    assert {path.stem.split("_")[0] for path in project.glob("configs/sweeps/*.yaml")} <= expected
    assert {path.stem.split("_")[0] for path in project.glob("benchmark/workloads/*.yaml")} == expected  # its own workloads
    package = next(project.glob("src/*/problems")).parent
    for module, users in {"fista": {"objective", "tabular"}, "image_datasets": {"vision", "diffusion"},
                          "report/objective_trajectories": {"objective"}}.items():  # code a family uses leaves with it
        assert (package / f"{module}.py").exists() == bool(users & expected), module
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=project, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-4000:]  # the project's own CI runs this too
    result = install_and_test(project, "-m", "not slow")  # the whole fast tier, as the team runs it
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


@pytest.mark.parametrize(
    "answers, message",
    [
        ({"package_name": "torch"}, "package_name=torch_project"),
        ({"package_name": "class"}, "is a Python keyword"),
        ({"package_name": "2fast"}, "package_name=project_2fast"),
        ({"package_name": "my-package"}, "package_name=my_package"),
        ({"package_name": "random"}, "would shadow the module"),
        ({"package_name": "test"}, "would shadow the module"),  # Python's own test package
        ({"project_slug": "Bad Slug!"}, "project_slug=bad-slug"),
        ({"project_slug": "lightning"}, "project_slug=lightning-project"),
        ({"project_name": "2048"}, "package_name=project_2048"),
        ({"email": "not-an-address"}, "email=team@example.edu"),
        ({"github_owner": "has space"}, "github_owner="),
    ],
)
def test_bad_answers_are_rejected_with_a_fix_and_nothing_left(answers, message, tmp_path, capfd):
    with pytest.raises(FailedHookException):
        bake(tmp_path, **answers)
    assert message in capfd.readouterr().err
    assert not any((tmp_path / "out").iterdir())


def test_answers_with_characters_beyond_the_basic_plane_bake(tmp_path):
    project = bake(tmp_path, project_name="Rocket 🚀 Team", team_members="Ada 🚀 Lovelace, Zoë")
    assert project.name == "rocket-team"
    assert "Ada 🚀 Lovelace" in (project / "LICENSE").read_text(encoding="utf-8")
    assert "Rocket 🚀 Team" in (project / "README.md").read_text(encoding="utf-8")
    if (project / ".cruft.json").exists():  # (written when the template is a git checkout)
        answers = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["context"]["cookiecutter"]
        assert answers["project_name"] == "Rocket 🚀 Team"


def test_baked_project_installs_with_pip(tmp_path):
    project = bake(tmp_path, project_name="Pip Check")
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(project)]
    subprocess.run(install, check=True)
    imported = subprocess.run([sys.executable, "-c", "import pip_check.optim as m; print(m.__file__)"],
                              cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(imported.stdout.strip()).is_relative_to(project)
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "pip-check"], check=True)


def test_unchosen_licence_leaves_no_licence_file(tmp_path):
    project = bake(tmp_path, license="none", python_version="3.12")
    assert not (project / "LICENSE").exists()
    assert "license =" not in (project / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.12"' in (project / "pyproject.toml").read_text()


def cookiecutter_cli(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "cookiecutter", *args]
    return subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("form", [["--no-input"], ["--no-input", "--directory", "template"]])
def test_command_line_forms(form, tmp_path):
    result = cookiecutter_cli(str(REPO), *form, "-o", "out", "project_name=Form Test", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "form-test" / "train.py").is_file()
    assert "uv run python train.py fit" in result.stdout and "uv run tensorboard --logdir runs" in result.stdout


def test_interactive_answers(tmp_path):
    # Enter takes each default; the first answer names the project.
    answers = "Interactive Study\n" + "\n" * 8
    result = cookiecutter_cli(str(REPO), "--directory", "template", "-o", "out", cwd=tmp_path, stdin=answers)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "out" / "interactive-study"
    assert (project / "src" / "interactive_study" / "problems" / "vision.py").is_file()


def test_generates_from_a_git_url(tmp_path):
    clone = tmp_path / "template-repo"
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache", "projects")  # (examples: not needed)
    shutil.copytree(REPO, clone, ignore=ignore)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.edu"]
    subprocess.run([*git, "init", "-q"], cwd=clone, check=True)
    subprocess.run([*git, "add", "-A"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "-qm", "template"], cwd=clone, check=True)
    for form in ([], ["--directory", "template"]):
        out = tmp_path / f"out{len(form)}"
        result = cookiecutter_cli(f"git+file://{clone}", "--no-input", *form, "-o", str(out), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert (out / "optimizer-study" / "train.py").is_file()


@pytest.mark.slow
def test_readme_commands_generate_train_and_report_where_the_logs_are(tmp_path):
    """The README's first command, as a student on a fresh machine runs it: cookiecutter, then
    `uv run` (which installs the project with `uv sync` into its own .venv) and train.py fit."""
    readme = (REPO / "README.md").read_text()
    command = re.search(r"^python -m pip install cookiecutter uv && (.+)$", readme, re.M).group(1)
    clone = tmp_path / "clone"
    shutil.copytree(REPO, clone, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "projects"))
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # cookiecutter and uv
    result = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Look at it with: uv run tensorboard --logdir runs" in result.stdout
    project = tmp_path / "optimizer-study"
    assert list(project.glob("runs/vision_digits/version_0/events.out.tfevents.*"))


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = [line for line in ci.splitlines() if "pytest" in line]
    assert len(command) == 1 and command[0].strip() in readme
    assert os.access(REPO / ".ci" / "run", os.X_OK)
