"""Any answer gives an installable project or a one-line error, and what the project pulls in
(GitHub actions, Lightning) is pinned or fenced off from known-bad releases.

    .venv/bin/python -m pytest tests/test_answers.py
"""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest
import yaml
from cookiecutter.environment import StrictEnvironment
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template"
PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")  # owner/action@<full commit hash>


def bake(tmp_path: Path, **answers) -> Path:
    """Generate an `objective` project (the fastest) with `answers` and return its folder."""
    answers = {"problem_family": "objective", **answers}
    return Path(cookiecutter(str(REPO), no_input=True, output_dir=str(tmp_path / "out"), extra_context=answers))


def cookiecutter_cli(tmp_path: Path, *answers: str) -> subprocess.CompletedProcess:
    """Run the cookiecutter command, as a student does, with `answers` as key=value."""
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(REPO), "-o", str(tmp_path / "out"), *answers]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_quotes_and_backslashes_in_answers_bake_an_installable_project(tmp_path):
    name = 'The "Adam" Study \\ """ of C:\\new'
    team = 'Ada "Countess" Lovelace, Back\\slash, José Müller, O\'Brien'
    project = bake(tmp_path, project_name=name, team_members=team, email='"team"@example.edu')
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert metadata["description"].startswith(name + ": ")
    names = [author["name"] for author in metadata["authors"] if "name" in author]
    assert names == [member.strip() for member in team.split(",")]
    assert {"email": '"team"@example.edu'} in metadata["authors"]
    package = project.name.replace("-", "_")
    imported = subprocess.run([sys.executable, "-c", f"import {package}; print({package}.__doc__)"],
                              cwd=project, env={**os.environ, "PYTHONPATH": "src"}, capture_output=True, text=True, check=False)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith(name + "\n")
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=project, capture_output=True, text=True,
                          check=False)
    assert lint.returncode == 0, lint.stdout[-4000:]


def write_replay(tmp_path: Path, **changes: str) -> Path:
    """A replay file (answers cookiecutter takes without asking) with `changes` to the defaults."""
    context = generate_context(str(TEMPLATE / "cookiecutter.json"))
    answers = prompt_for_config(context, no_input=True)
    replay = tmp_path / "replay-answers.json"
    replay.write_text(json.dumps({"cookiecutter": {**answers, **changes}}))
    return replay


@pytest.mark.parametrize("key", ["problem_family", "license", "python_version"])
def test_a_choice_outside_its_menu_is_rejected_in_one_line(key, tmp_path, capfd):
    """On the command line cookiecutter itself refuses `problem_family=foo`; from a replay file
    or an old .cruft.json the answer reaches the pre-generation hook, which names the choices."""
    replay = write_replay(tmp_path, **{key: "foo"})
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE), replay=str(replay), output_dir=str(tmp_path / "out"))
    errors = capfd.readouterr().err
    assert f"ERROR: {key} 'foo' is not one of the choices" in errors
    assert not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "answer, message",
    [
        ("project_name=" + "a" * 324, "project_name is 324 characters long, over 100: give a shorter title"),
        ("project_name=" + "word " * 30, 'e.g. project_name="' + ("word " * 20).strip() + '"'),
        ("project_slug=" + "-".join(["part"] * 20), "e.g. project_slug=" + "-".join(["part"] * 12)),
        ("team_members=Ada\nAlan", "holds a line break"),
    ],
    ids=["324-character name", "long name", "long slug", "line break"],
)
def test_a_too_long_or_broken_answer_is_rejected_in_one_line(answer, message, tmp_path):
    """The hook's one line is all there is on stderr. (cookiecutter 2.7 itself then logs the hook's
    failure with a traceback on stdout; 2.6 logged one line. No template can change that.)"""
    result = cookiecutter_cli(tmp_path, answer)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("ERROR: "), result.stderr
    assert message in result.stderr
    assert "OSError" not in result.stdout  # the folder name was never too long to make
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_long_title_makes_a_short_folder_name(tmp_path):
    project = bake(tmp_path, project_name="A study of learning rate warmup for small transformers on tiny data")
    assert project.name == "a-study-of-learning-rate-warmup-for-small-transformers-on-ti"  # 60 characters


def hook_constant(hook: str, name: str):
    """The value of `name = {...}` in a hook (read from its text: the hooks are Jinja templates)."""
    text = (TEMPLATE / "hooks" / hook).read_text()
    literal = re.search(rf"^{name} = (\{{.*?^\}})", text, re.MULTILINE | re.DOTALL).group(1)
    return ast.literal_eval(literal)


def test_the_hooks_menus_are_those_of_cookiecutter_json():
    questions = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    for key, choices in hook_constant("pre_gen_project.py", "CHOICES").items():
        assert choices == questions[key], f"pre_gen_project.py CHOICES[{key!r}] differs from cookiecutter.json"
    families = set(questions["problem_family"]) - {"all"}
    assert set(hook_constant("post_gen_project.py", "FAMILY_NETS")) == families


@pytest.mark.parametrize("hook", ["pre_gen_project.py", "post_gen_project.py"])
def test_the_rendered_hooks_pass_the_projects_lint(hook, tmp_path):
    """The hooks run as Python once cookiecutter has filled them in: that Python is clean."""
    context = generate_context(str(TEMPLATE / "cookiecutter.json"), extra_context={"project_name": 'A "Quoted" Name'})
    context["cookiecutter"] = prompt_for_config(context, no_input=True)
    environment = StrictEnvironment(context=context, keep_trailing_newline=True)
    rendered = tmp_path / hook
    rendered.write_text(environment.from_string((TEMPLATE / "hooks" / hook).read_text()).render(**context))
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--line-length", "130",
                           "--select", "E,F,I,UP,B", "--target-version", "py310", str(rendered)],
                          capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout[-4000:]


def test_the_workflow_pins_every_action_to_a_commit_and_only_reads():
    path = PROJECT_TEMPLATE / ".github" / "workflows" / "tests.yml"
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {"contents": "read"}
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step["uses"] for step in steps if "uses" in step]
    assert uses, "the workflow uses no action at all?"
    for action in uses:
        assert PINNED.match(action), f"{action} is not pinned to a full commit hash"
    for line in path.read_text().splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40} # v\d+(\.\d+)*$", line), f"no version tag comment: {line.strip()}"


@pytest.mark.parametrize("source", ["baked pyproject.toml", "tests/requirements.txt"])
def test_lightning_and_pytorch_lightning_exclude_the_bad_releases(source, tmp_path):
    if source == "tests/requirements.txt":
        lines = (REPO / "tests" / "requirements.txt").read_text().splitlines()
        dependencies = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    else:
        dependencies = tomllib.loads((bake(tmp_path) / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements = {Requirement(line).name: Requirement(line) for line in dependencies}
    for name in ("lightning", "pytorch-lightning"):
        assert name in requirements, f"{source} does not name {name}"
        for bad in ("2.6.2", "2.6.3"):
            assert bad not in requirements[name].specifier, f"{source} lets {name} {bad} in"
