"""A team adds a problem family of its own without editing a file the template wrote.

The family is the one docs/extending.md shows ("A whole problem family": its module, config and
test, as written there). In a copy of the project, it is trained, trained with another optimizer,
resumed, drawn by the figures command and swept over 3 learning rates, each by the command a
student types; then git shows no change to any file the template wrote.

    uv run pytest tests/test_adding_a_family.py     (slow tier: about a minute)
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import the_sgd_lecture_reproduced

PACKAGE = Path(the_sgd_lecture_reproduced.__file__).parent.name
FILLED_IN = {"report.md", "slides/slides.md"}  # documents the figures and sweep commands write their tables into
SWEEP = """\
experiment: configs/line.yaml      # the experiment every trial starts from
budget: {trainer.max_epochs: 2}    # the same for every trial
seeds: [0]                         # one run per point
metric: val/loss                   # what trials are compared by
mode: min                          # lower is better
summary: final                     # the value at the end of a run
method: grid                       # every point of the space
trials: null                       # (a grid runs all of them)
space:                             # flags of train.py (without --) and their values
  optimizer.lr: [0.01, 0.03, 0.1]  # three step sizes
compare: optimizer.lr              # one curve per step size
"""


def family_files(doc: str) -> dict[str, str]:
    """The files that the doc's section "A whole problem family" shows, by their first line's path."""
    section = doc.split("## A whole problem family", 1)[1]
    blocks = re.findall(r"```(?:python|yaml)\n# (\S+)\n(.*?)```", section, re.S)
    return {path: text for path, text in blocks}


def run(project: Path, *command: str) -> subprocess.CompletedProcess:
    """A command in the copy, importing the copy's package (where the family was added)."""
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, *command], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_a_family_of_your_own_needs_no_edit_of_the_template(tmp_path):
    project = tmp_path / "project"
    leave_out = shutil.ignore_patterns(".venv", ".git", "runs", "data", "__pycache__", ".pytest_cache", "*.egg-info")
    shutil.copytree(ROOT, project, ignore=leave_out)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.edu", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "as generated"], check=True)

    files = family_files((ROOT / "docs" / "extending.md").read_text())
    assert set(files) == {f"src/{PACKAGE}/problems/line.py", "configs/line.yaml", "tests/test_line.py"}
    for path, text in files.items():
        (project / path).write_text(text)
    (project / "configs" / "sweeps" / "line_lr.yaml").write_text(SWEEP)

    line = ["train.py", "fit", "--config", "configs/line.yaml", "--trainer.enable_progress_bar", "false"]
    run(project, *line, "--name", "sgd")
    run(project, *line, "--optimizer", "adam", "--optimizer.lr", "0.05", "--name", "adam")
    resumed = run(project, *line, "--optimizer", "adam", "--optimizer.lr", "0.05", "--trainer.max_epochs", "8",
                  "--ckpt_path", "last")
    assert "Resuming from runs/line/adam/checkpoints/last.ckpt" in resumed.stdout
    assert "Run line/adam: 8 epochs" in resumed.stdout  # the data's num_inputs reached the model: it trained
    run(project, "-m", f"{PACKAGE}.figures", "runs/line", "--embed")
    assert (project / "figures" / "results.md").is_file() and list((project / "figures").glob("*.png"))
    sweep = run(project, "sweep.py", "--config", "configs/sweeps/line_lr.yaml")
    assert len(list((project / "runs" / "line_lr").glob("*/config.yaml"))) == 3, sweep.stdout[-2000:]
    assert "| 0.1 | lr=0.1 | 1 |" in sweep.stdout  # the comparison table has every point
    run(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_line.py")

    changed = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
    # New files only; report.md and the slides are the team's documents, which the commands fill in.
    edited = [line for line in changed.splitlines() if not line.startswith("??") and line[3:] not in FILLED_IN]
    assert edited == [], f"adding a family changed files the template wrote: {edited}"
