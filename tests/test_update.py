"""Nothing a team does to its project is lost when the template changes: `cruft update` brings
the template's changes in as a diff, and generating again over a project keeps the team's files.

    .venv/bin/python -m pytest tests/test_update.py

Everything runs offline: the template is a git repository in a temporary folder.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

REPO = Path(__file__).resolve().parents[1]
PROJECT_TEMPLATE = "template/{{cookiecutter.project_slug}}"
# Files a team adds to an `objective` project; the vision ones look like files of a dropped family.
TEAM_FILES = {
    "src/team_study/nets/mynet.py": "# our own net\n",
    "configs/objective_mine.yaml": "# our own experiment\n",
    "configs/vision_mine.yaml": "# ours too, though the project has no vision family\n",
    "configs/sweeps/vision_mine.yaml": "# ours\n",
    "tests/test_vision_mine.py": "# ours\n",
}
ANSWERS = {"project_name": "Team Study", "problem_family": "objective"}  # objective: the fastest bake


def git(folder: Path, *args: str) -> str:
    """Run git in `folder` (with a name for commits) and return what it prints."""
    command = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.edu", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True).stdout.strip()


def commit_all(folder: Path, message: str) -> str:
    """Commit everything in `folder` and return the commit's hash."""
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message)
    return git(folder, "rev-parse", "HEAD")


@pytest.fixture
def template_repo(tmp_path) -> Path:
    """A git repository holding a copy of this template, with one commit."""
    clone = tmp_path / "template-repo"
    shutil.copytree(REPO, clone, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", ".*_cache", "projects"))
    git(clone, "init", "-q")
    commit_all(clone, "template A")
    return clone


def add_team_files(project: Path) -> None:
    """What a team does: its own files, an edit to the report, all committed."""
    for name, text in TEAM_FILES.items():
        (project / name).write_text(text)
    with open(project / "report.md", "a") as report:
        report.write("\nOur results.\n")
    commit_all(project, "our work")


def assert_team_files_kept(project: Path) -> None:
    for name, text in TEAM_FILES.items():
        assert (project / name).read_text() == text, f"{name} was changed or deleted"
    assert (project / "report.md").read_text().endswith("\nOur results.\n")


def test_cruft_update_brings_template_changes_and_keeps_the_teams_files(template_repo, tmp_path):
    # The documented way: cookiecutter, whose post-generation hook writes .cruft.json.
    project = Path(cookiecutter(str(template_repo), no_input=True, output_dir=str(tmp_path / "out"), extra_context=ANSWERS))
    first = git(template_repo, "rev-parse", "HEAD")
    state = json.loads((project / ".cruft.json").read_text())
    assert (state["template"], state["commit"], state["directory"]) == (str(template_repo), first, "template")
    assert state["context"]["cookiecutter"]["problem_family"] == "objective"
    git(project, "init", "-q")
    commit_all(project, "start from the template")
    add_team_files(project)

    # The template changes: an edited file and a new one.
    config = template_repo / PROJECT_TEMPLATE / "configs" / "objective.yaml"
    config.write_text(config.read_text() + "# changed in the template\n")
    (template_repo / PROJECT_TEMPLATE / "docs" / "new_page.md").write_text("A new page.\n")
    second = commit_all(template_repo, "template B")

    update = subprocess.run([sys.executable, "-m", "cruft", "update", "-y"], cwd=project,
                            capture_output=True, text=True, timeout=120, check=False)
    assert update.returncode == 0, update.stdout + update.stderr
    assert (project / "configs" / "objective.yaml").read_text().endswith("# changed in the template\n")
    assert (project / "docs" / "new_page.md").read_text() == "A new page.\n"
    assert_team_files_kept(project)
    assert json.loads((project / ".cruft.json").read_text())["commit"] == second
    assert not list(project.rglob("*.rej")), "the update did not apply cleanly"


@pytest.mark.parametrize("skip", [True, False], ids=["-f -s", "-f"])
def test_generating_again_over_a_project_keeps_the_teams_files(skip, tmp_path, capfd):
    """`cookiecutter -f` (with -s or not) over a project: the post-generation hook deletes only
    what its own run created, never the team's nets, configs or tests."""
    out = tmp_path / "out"
    project = Path(cookiecutter(str(REPO), no_input=True, output_dir=str(out), extra_context=ANSWERS))
    git(project, "init", "-q")
    commit_all(project, "start")
    add_team_files(project)
    capfd.readouterr()
    again = Path(cookiecutter(str(REPO), no_input=True, output_dir=str(out), extra_context=ANSWERS,
                              overwrite_if_exists=True, skip_if_file_exists=skip))
    assert again == project
    for name in TEAM_FILES:
        assert (project / name).is_file(), f"{name} was deleted"
    assert not (project / "src" / "team_study" / "nets" / "mlp.py").exists()  # the template's, still pruned
    assert not (project / "configs" / "vision.yaml").exists()
    assert not (project / ".files-before-generation.json").exists()
    assert "uvx cruft update" in capfd.readouterr().out  # the way to update, said after the fact


def test_a_template_folder_given_relative_is_not_recorded_and_the_generator_says_so(template_repo, tmp_path):
    """cookiecutter passes `--directory template` on as a relative folder: the hook cannot know
    where it is, so it writes no .cruft.json (a wrong one would break `cruft update`)."""
    command = [sys.executable, "-m", "cookiecutter", "--no-input", ".", "--directory", "template",
               "-o", str(tmp_path / "out"), "problem_family=objective"]
    result = subprocess.run(command, cwd=template_repo, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "out" / "optimizer-study" / ".cruft.json").exists()
    assert "Updating a project" in result.stdout
