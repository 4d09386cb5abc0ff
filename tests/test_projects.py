"""The worked examples in projects/: in step with the template, their results still hold, their
slides render.

    .venv/bin/python -m pytest tests/test_projects.py -m "not slow"   # drift and each example's fast tests
    .venv/bin/python -m pytest tests/test_projects.py                 # also their slow tests and the slides' PDF

An example is a folder of projects/ holding a .cruft.json (see projects/README.md).
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECTS = REPO / "projects"
UPDATE = PROJECTS / "update.py"
EXAMPLES = sorted(path.parent for path in PROJECTS.glob("*/.cruft.json"))
IDS = [example.name for example in EXAMPLES]
FEWEST_EXAMPLES = 4
REPORTED = re.compile(r"^  (differs|missing|stale|foreign|unlinked) +(\S+)", re.MULTILINE)
NETWORK_TROUBLE = re.compile(r"ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|ECONNRESET|network|E4\d\d")


def update(*args: str) -> subprocess.CompletedProcess:
    """Run `python projects/update.py <args>`."""
    return subprocess.run([sys.executable, str(UPDATE), *args], capture_output=True, text=True, timeout=300, check=False)


def reported(output: str) -> set[str]:
    """The files update.py names as differing from the template."""
    return {name for _, name in REPORTED.findall(output)}


def pytest_in(example: Path, *args: str) -> subprocess.CompletedProcess:
    """Run pytest in an example, on its package in src/ (one CPU thread: the tests run side by side)."""
    env = {**os.environ, "PYTHONPATH": str(example / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=example, env=env, capture_output=True, text=True, timeout=1200, check=False)


def own_tests(example: Path) -> list[str]:
    """An example's own test files: tests/test_results.py and any other the template does not have."""
    template_tests = REPO / "template" / "{{cookiecutter.project_slug}}" / "tests"
    return [f"tests/{path.name}" for path in sorted((example / "tests").glob("test_*.py"))
            if not (template_tests / path.name).exists()]


def run_example_tests(example: Path, marker: str) -> subprocess.CompletedProcess:
    """An example's own tests (tests/test_results.py, and any other of its own), as its README runs them."""
    if not (example / "tests" / "test_results.py").is_file():
        pytest.skip(f"{example.name} has no tests/test_results.py")
    return pytest_in(example, *own_tests(example), "-m", marker)


def test_there_are_enough_examples():
    assert len(EXAMPLES) >= FEWEST_EXAMPLES, f"projects/ holds {len(EXAMPLES)} examples: {IDS}"


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_example_is_in_step_with_the_template(example):
    """Every file the template owns equals a fresh bake's: `python projects/update.py` fixes it."""
    result = update("--check", str(example))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_example_commits_its_event_files_and_stays_small(example):
    """What git would commit of an example: its runs' event files, no checkpoint, under 10 MB."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "."],
                                cwd=example, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell which files would be committed")
    committed = [example / name for name in listed.split("\0") if name and (example / name).is_file()]
    assert not [path for path in committed if path.suffix == ".ckpt"], "checkpoints must not be committed"
    size = sum(path.stat().st_size for path in committed)
    assert size < 10 * 2**20, f"{example.name} would commit {size / 2**20:.1f} MB"
    events = set(example.glob("runs/**/events.out.tfevents.*"))
    all_ignored = bool(events) and not events & set(committed)
    assert not all_ignored, "runs/ holds event files but git ignores them all: the figures' sources would not be committed"


@pytest.fixture
def example_copy(tmp_path) -> Path:
    """A copy of the smallest example (without its runs), brought in step with the template."""
    if not EXAMPLES:
        pytest.skip("projects/ holds no example yet")
    source = min(EXAMPLES, key=lambda example: sum(path.stat().st_size for path in example.rglob("*") if path.is_file()))
    copy = tmp_path / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("runs", "__pycache__", ".venv", "data"))
    assert update(str(copy)).returncode == 0
    return copy


def test_a_hand_edit_of_a_template_file_is_found_and_undone(example_copy):
    cli = next(example_copy.glob("src/*/run/cli.py"))
    name = cli.relative_to(example_copy).as_posix()
    original = cli.read_text()
    cli.write_text(original + "# edited by hand\n")
    check = update("--check", str(example_copy))
    assert check.returncode == 1
    assert reported(check.stdout) == {name}, check.stdout
    assert "+# edited by hand" in check.stdout  # the short diff

    assert update(str(example_copy)).returncode == 0
    assert cli.read_text() == original
    assert update("--check", str(example_copy)).returncode == 0


def test_an_update_deletes_what_the_template_no_longer_makes_and_keeps_the_examples_own(example_copy):
    family = json.loads((example_copy / ".cruft.json").read_text())["context"]["cookiecutter"]["problem_family"]
    other = "tabular" if family != "tabular" else "vision"  # a file of a family this example does not have
    stale = example_copy / "tests" / f"test_{other}.py"
    shutil.copy(REPO / "template" / "{{cookiecutter.project_slug}}" / "tests" / stale.name, stale)
    own = example_copy / "tests" / "test_results_extra.py"
    own.write_text("# the example's own tests\n")
    foreign = example_copy / "scripts" / "our_tool.sh"
    foreign.write_text("# ours, but in a folder the template owns\n")
    (example_copy / "notebooks" / "demo.ipynb").unlink()

    check = update("--check", str(example_copy))
    assert check.returncode == 1
    assert reported(check.stdout) == {"tests/" + stale.name, "scripts/our_tool.sh", "notebooks/demo.ipynb"}, check.stdout

    assert update(str(example_copy)).returncode == 0
    assert not stale.exists() and own.exists() and foreign.exists() and (example_copy / "notebooks" / "demo.ipynb").exists()
    assert reported(update("--check", str(example_copy)).stdout) == {"scripts/our_tool.sh"}  # to move out by hand


def test_an_updated_example_points_at_the_template_by_a_relative_path(example_copy):
    state = json.loads((example_copy / ".cruft.json").read_text())
    assert not Path(state["template"]).is_absolute()
    assert (example_copy / state["template"]).resolve() == REPO
    assert state["directory"] == "template"
    assert state["context"]["cookiecutter"]["_template"] == state["template"]


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_example_passes_its_fast_results_tests(example):
    result = run_example_tests(example, "not slow")
    assert result.returncode != 5, f"{example.name}'s tests/test_results.py has no fast test (not marked slow)"
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_example_configs_pass_the_checks_of_its_template_tests(example):
    """The example's own configs and sweeps meet what the template's tests ask of every config:
    a family name (<family>_<what>.yaml), a comment on each value, one batch of training, a sweep
    file that loads. (The rest of those tests is the template's, run on fresh bakes.)"""
    selected = "every_experiment or every_config_value or config_runs_one_batch or sweep_files_load"
    ignored = [f"--ignore={name}" for name in own_tests(example)]
    result = pytest_in(example, "tests", "-m", "not slow", "-k", selected, *ignored)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_example_results_still_hold(example):
    """The slow tier: each example re-runs its main experiment, shrunk, and checks its headline claims."""
    result = run_example_tests(example, "slow")
    assert result.returncode != 5, f"{example.name}'s tests/test_results.py has no test marked slow"
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def slide_count(deck: str) -> int:
    """Slides in a Marp deck: its front matter, then slides separated by lines of three dashes
    (comments and fenced code left out)."""
    body = re.sub(r"\A---\n.*?\n---\n", "", deck, flags=re.DOTALL)
    body = re.sub(r"<!--.*?-->", "", body, flags=re.DOTALL)
    body = re.sub(r"^(```|~~~).*?^\1", "", body, flags=re.DOTALL | re.MULTILINE)
    return 1 + len(re.findall(r"^---[ \t]*$", body, flags=re.MULTILINE))


def pdf_contents(pdf: bytes) -> bytes:
    """A PDF with its compressed streams inflated (Chromium packs its objects into streams)."""
    parts = [pdf]
    for stream in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, flags=re.DOTALL):
        with contextlib.suppress(zlib.error):
            parts.append(zlib.decompress(stream.group(1)))
    return b"\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_example_slides_render_to_pdf_with_its_figures(example, tmp_path):
    deck = example / "slides" / "slides.md"
    text = deck.read_text()
    images = [ref.split()[0] for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL))]
    local = [ref for ref in images if not re.match(r"[a-z]+:", ref)]
    assert local, f"{deck} shows none of the example's figures"
    for ref in local:
        path = (deck.parent / ref).resolve()
        assert path.is_file() and path.is_relative_to(example.resolve()), f"{ref} is not a file of {example.name}"

    npx, chromium = shutil.which("npx"), shutil.which("chromium") or shutil.which("chromium-browser")
    if npx is None or shutil.which("node") is None or chromium is None:
        pytest.skip("Node.js (npx) and Chromium are needed to render the slides to PDF (.ci/run installs chromium)")
    pdf = tmp_path / "slides.pdf"
    # Chromium refuses to run as root with its sandbox (CI containers): CHROME_NO_SANDBOX=1 turns it off.
    env = {**os.environ, "CHROME_PATH": chromium, "CHROME_NO_SANDBOX": "1"}
    command = [npx, "--yes", "@marp-team/marp-cli@latest", str(deck), "--pdf", "--allow-local-files", "-o", str(pdf)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("npx took over 5 minutes: the npm registry is probably unreachable")
    if result.returncode != 0 and NETWORK_TROUBLE.search(result.stderr):
        pytest.skip(f"@marp-team/marp-cli could not be fetched from npm: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stderr[-3000:]

    contents = pdf_contents(pdf.read_bytes())
    pages = len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", contents))
    assert pages == slide_count(text), f"the PDF has {pages} pages, the deck {slide_count(text)} slides"
    raster = {ref for ref in local if ref.lower().endswith((".png", ".jpg", ".jpeg"))}
    embedded = len(re.findall(rb"/Subtype\s*/Image", contents))
    assert embedded >= len(raster), f"the PDF embeds {embedded} images, the deck shows {len(raster)}: {sorted(raster)}"


@pytest.mark.parametrize("example", EXAMPLES, ids=IDS)
def test_the_template_readme_links_the_example_and_its_headline_figure(example):
    readme = (REPO / "README.md").read_text()
    assert f"(projects/{example.name}/)" in readme, f"README.md does not link projects/{example.name}/"
    figures = re.findall(rf"!\[[^\]]*\]\((projects/{re.escape(example.name)}/figures/[^)]+)\)", readme)
    assert figures, f"README.md shows no figure of {example.name}"
    assert all((REPO / figure).is_file() for figure in figures), figures
