"""The documentation's commands work, and every document runs commands the same way (`uv run`).

    uv run pytest tests/test_docs.py

Every command in a ```bash block of README.md and docs/*.md that runs train.py or the figures
command is one test, named by its document and line: `uv run python train.py ...`,
`uv run python -m optimizers_for_a_small_gpt.figures ...`, or the same without `uv run`.
They run in document order (README.md first, then docs/ by name), all in one temporary copy
of the project, so each command finds what the earlier ones left: a run to repeat, test or
resume. Selecting a single test runs the commands before it first.

How a command is run:
- in this process: train.py as `main(args, default_config=...)` (as conftest.run does), the
  figures command as `figures.main(args)`; each starts from the environment variables this
  test started with, as a new process would;
- shortened: a trainer config is added last (`--config <tmp>/short.yaml`) that stops it after 3
  training batches and 1 validation batch of one epoch (two epochs for `--ckpt_path last`, so a
  resumed run trains on). It is a file rather than flags, so runs keep the names the documents
  show;
- checked: it ends without an error; `fit` writes a run folder (the one a `# -> <folder>/`
  comment names, if there is one); `fit --config runs/.../config.yaml` writes a new one;
  `--ckpt_path last` continues the newest run that has a last.ckpt; `test` logs test/loss;
  `--help` exits with status 0, and `fit --help` lists adam, muon, signsgd and wsd;
- placeholders: `configs/<experiment>.yaml` is the default experiment's config; `<experiment>`
  and `<name>` are those of the latest run; `<file.ckpt>` is its checkpoints/last.ckpt. Any
  other `<...>` fails the test: add a rule for it here.

Files the documents show in full are created before the first command: a ```python or
```yaml block whose first line is a comment naming a file, such as
`# src/optimizers_for_a_small_gpt/my_optimizers.py`,
is written to that path in the copy, where the package imports it from. A block whose first
line is `# in <file>.py` (lines to add to an existing module) is run inside that module, as if
added to it, and undone after the tests.

Skipped, with the reason in pytest's summary (never silently):
- a command that uses a GPU preset (gpu) when no CUDA GPU is visible, or a preset that starts
  several processes (ddp, fsdp, slurm);
- a command whose data must be downloaded (MNIST, Fashion-MNIST, CIFAR-10, Tiny Shakespeare, a
  URL, GPT-2's BPE tokenizer): tests have no network;
- a command that names a file of the reader's own (`<your_...>`).
"""

import contextlib
import importlib
import io
import json
import os
import re
import shlex
import shutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from conftest import DEFAULT, ROOT

from optimizers_for_a_small_gpt.report import figures
from optimizers_for_a_small_gpt.run.cli import main

PACKAGE = "optimizers_for_a_small_gpt"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# A command these tests run: train.py or the figures command, with or without `uv run`.
RUNNABLE = re.compile(rf"^(?:uv run )?python (?:train\.py|-m {PACKAGE}\.figures)(?:\s|$)")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
FILE_HEADER = re.compile(r"^#\s+(in\s+)?([\w./-]+\.(?:py|ya?ml))\s*$")  # "# path" or "# in path"
EXPECTED_FOLDER = re.compile(r"->\s*(\S+?)/?(?:\s|$)")  # "# ... -> runs/<experiment>/<name>/"
PLACEHOLDER = re.compile(r"<[^<>\s]+>")

# Skip rules (see the module docstring).
MULTI_PROCESS_PRESETS = ("ddp", "fsdp", "slurm")
DOWNLOADED = {"dataset": {"mnist", "fashion_mnist", "cifar10"}, "corpus": {"tiny_shakespeare"}, "tokenizer": {"bpe"}}
HELP_FLAGS = ("-h", "--help", "--print_config")


def short_run(epochs: int) -> dict:
    """The trainer settings added to every command: a few batches, no progress bar."""
    return {"trainer": {"max_epochs": epochs, "max_steps": -1, "limit_train_batches": 3, "limit_val_batches": 1,
                        "limit_test_batches": 1, "limit_predict_batches": 1, "num_sanity_val_steps": 0,
                        "log_every_n_steps": 1, "enable_progress_bar": False, "enable_model_summary": False}}


@dataclass
class Command:
    document: str  # path relative to the project
    line: int  # 1-based line of the document
    text: str  # the command, without its comment
    comment: str  # what follows `#` on its line, if anything

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"


def fenced_blocks(path: Path) -> list[tuple[str, int, list[str]]]:
    """(language, line of the first line inside, lines) of each ``` block, dedented to its fence."""
    blocks, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening or not opening.group(2):
            i += 1
            continue
        indent, language, start = len(opening.group(1)), opening.group(2), i + 1
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        blocks.append((language, start + 1, [line[indent:] for line in lines[start:i]]))
        i += 1
    return blocks


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment): the comment starts at the first `#` outside quotes that follows a space."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip(), line[i + 1 :].strip()
    return line.strip(), ""


def documented_commands() -> list[Command]:
    commands = []
    for path in DOCUMENTS:
        for language, first, lines in fenced_blocks(path):
            if language not in ("bash", "sh", "shell", "console"):
                continue
            pending, start = "", first
            for number, line in enumerate(lines, first):
                if not pending:
                    start = number
                if line.rstrip().endswith("\\"):
                    pending += line.rstrip()[:-1] + " "
                    continue
                text, comment = split_comment(pending + line)
                pending = ""
                if RUNNABLE.match(text):
                    commands.append(Command(str(path.relative_to(ROOT)), start, text, comment))
    return commands


def documented_files() -> list[tuple[str, bool, str]]:
    """(path, is_an_edit, code) of every block that starts with a comment naming a file."""
    files = []
    for path in DOCUMENTS:
        for language, _, lines in fenced_blocks(path):
            header = FILE_HEADER.match(lines[0]) if lines and language in ("python", "yaml", "yml") else None
            if header:
                files.append((header.group(2), bool(header.group(1)), "\n".join(lines) + "\n"))
    return files


COMMANDS = documented_commands()


def module_name(path: str) -> str:
    """src/<package>/problems/vision.py -> <package>.problems.vision"""
    return ".".join(Path(path).with_suffix("").relative_to("src").parts)


def config_values(args: list[str]) -> dict[str, str]:
    """The data settings a command ends up with: from its --config files, then its --data flags."""
    values = {}
    for flag, value in zip(args, args[1:], strict=False):
        if flag in ("-c", "--config") and Path(value).is_file():
            data = (yaml.safe_load(Path(value).read_text()) or {}).get("data") or {}
            values.update({key: str(item) for key, item in (data.get("init_args") or data).items()})
        match = re.fullmatch(r"--data\.(?:init_args\.)?(\w+)", flag)
        if match:
            values[match.group(1)] = value
    return values


def skip_reason(args: list[str]) -> str | None:
    """Why a command cannot run here (the skip rules of the module docstring), or None."""
    text = " ".join(args)
    if "<your_" in text:
        return "it names a file of the reader's own"
    presets = {Path(value).stem for flag, value in zip(args, args[1:], strict=False)
               if flag in ("-c", "--config") and Path(value).parent.name == "trainer"}
    if presets & set(MULTI_PROCESS_PRESETS):
        return f"the {', '.join(sorted(presets & set(MULTI_PROCESS_PRESETS)))} preset starts several processes"
    if "gpu" in presets and not torch.cuda.is_available():
        return "it needs a CUDA GPU and none is visible"
    for key, value in config_values(args).items():
        if value in DOWNLOADED.get(key, ()) or (key == "corpus" and "://" in value):
            return f"its data ({key} {value}) must be downloaded, and tests have no network"
    return None


@dataclass
class Outcome:
    skipped: str | None = None
    error: str | None = None


@dataclass
class Run:
    folder: Path  # runs/<experiment>/<name>, relative to the project copy
    experiment: str
    name: str


@dataclass
class Session:
    """The project copy where the documented commands run, one after the other."""

    copy: Path
    short_config: Path  # short_run(1), as YAML
    resume_config: Path  # short_run(2)
    environment: dict[str, str]
    outcomes: list[Outcome] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def run_through(self, index: int) -> Outcome:
        """Run the commands up to `index` that have not run yet; the outcome of command `index`."""
        while len(self.outcomes) <= index:
            command = COMMANDS[len(self.outcomes)]
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                    outcome = self.run(command)
            except (Exception, SystemExit) as error:  # a failure here must not stop the later commands
                where = traceback.extract_tb(error.__traceback__)[-1]
                outcome = Outcome(error=f"{type(error).__name__}: {error} ({Path(where.filename).name}, line "
                                        f"{where.lineno})\nit printed:\n{printed.getvalue()[-3000:]}")
            self.outcomes.append(outcome)
        return self.outcomes[index]

    def run(self, command: Command) -> Outcome:
        args = self.fill_placeholders(shlex.split(command.text))
        os.environ.clear()
        os.environ.update(self.environment)  # a fresh process: nothing left by the last run
        if args[:2] == ["uv", "run"]:
            args = args[2:]
        if args[1] == "train.py":
            return self.train(args[2:], command)
        return self.figures(args[3:])

    def fill_placeholders(self, args: list[str]) -> list[str]:
        if any("<your_" in arg for arg in args):
            return args  # skipped by skip_reason
        filled = []
        for arg in args:
            arg = arg.replace("configs/<experiment>.yaml", f"configs/{DEFAULT.name}")
            if self.runs:
                latest = self.runs[-1]
                arg = arg.replace("<experiment>", latest.experiment).replace("<name>", latest.name)
                arg = arg.replace("<file.ckpt>", str(latest.folder / "checkpoints" / "last.ckpt"))
            if PLACEHOLDER.search(arg):
                raise AssertionError(f"no rule fills in {PLACEHOLDER.search(arg).group()} (in {arg!r}): "
                                     "add one to fill_placeholders in tests/test_docs.py")
            filled.append(arg)
        return filled

    def train(self, args: list[str], command: Command) -> Outcome:
        if reason := skip_reason(args):
            return Outcome(skipped=reason)
        if any(arg in HELP_FLAGS or re.fullmatch(r"--(optimizer|scheduler)\.help", arg) for arg in args):
            output = exit_status_and_output(lambda: main(args, default_config=DEFAULT))
            if "--help" in args or "-h" in args:
                for name in ("adam", "muon", "signsgd", "wsd"):
                    assert re.search(rf"^\s+{name}\s", output, re.M), f"`fit --help` does not list {name}"
            return Outcome()
        resuming = "--ckpt_path" in args and args[args.index("--ckpt_path") + 1] == "last"
        newest = self.newest_checkpointed_run() if resuming else None
        shortened = [*args, "--config", str(self.resume_config if resuming else self.short_config)]
        cli = main(shortened, default_config=DEFAULT)
        assert cli is not None, "the run diverged"
        trainer = cli.trainer
        assert trainer.state.finished, f"{command.text} did not finish"
        if args[0] == "test":
            assert any(name.startswith("test/") for name in trainer.callback_metrics), "no test/ metric logged"
        if args[0] != "fit" or trainer.fast_dev_run:
            return Outcome()  # fast_dev_run writes no run folder
        folder = Path(trainer.log_dir).resolve().relative_to(self.copy.resolve())
        assert (self.copy / folder / "config.yaml").is_file(), f"{folder} has no config.yaml"
        self.runs.append(Run(folder, folder.parent.name, folder.name))
        if expected := EXPECTED_FOLDER.search(command.comment):
            shown = expected.group(1).rstrip("/")
            actual = str(folder) if shown.startswith("runs/") else folder.name
            assert actual == shown, f"the document says the run goes to {shown}/, it went to {actual}/"
        repeated = [value for flag, value in zip(args, args[1:], strict=False)
                    if flag == "--config" and Path(value).parts[:1] == ("runs",)]
        for config in repeated:
            assert folder != Path(config).parent, f"repeating {config} wrote into the same run folder"
        if resuming:
            assert folder == newest, f"--ckpt_path last continued {folder}, not the newest run {newest}"
        return Outcome()

    def newest_checkpointed_run(self) -> Path | None:
        checkpoints = sorted(Path("runs").glob("*/*/checkpoints/last.ckpt"), key=lambda path: path.stat().st_mtime)
        return checkpoints[-1].parent.parent if checkpoints else None

    def figures(self, args: list[str]) -> Outcome:
        if any(arg in ("-h", "--help") for arg in args):
            exit_status_and_output(lambda: figures.main(args))
            return Outcome()
        result = figures.main(args)
        assert result["written"], "the figures command wrote nothing"
        return Outcome()


def exit_status_and_output(call) -> str:
    """Run a --help command; check that it exits with status 0 and return what it printed."""
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        try:
            call()
        except SystemExit as exit:
            assert exit.code in (None, 0), f"exit status {exit.code}: {printed.getvalue()[-2000:]}"
    output = printed.getvalue()
    assert output.strip(), "it printed nothing"
    return output


class ModuleEdits:
    """Runs `# in <file>` blocks inside their module; restore() undoes what they changed."""

    def __init__(self):
        self.saved = []

    def apply(self, path: str, code: str) -> None:
        module = importlib.import_module(module_name(path))
        namespace = vars(module)
        before = dict(namespace)
        contents = {key: dict(value) for key, value in before.items() if type(value) is dict and key != "__builtins__"}
        self.saved.append((module, before, contents))
        exec(compile(code, f"{path} (as edited by the documentation)", "exec"), namespace)

    def restore(self) -> None:
        for module, before, contents in reversed(self.saved):
            namespace = vars(module)
            for key in set(namespace) - set(before):
                del namespace[key]
            namespace.update(before)
            for key, value in contents.items():
                before[key].clear()
                before[key].update(value)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A copy of the project with the documents' files in it, as the current folder."""
    tmp = tmp_path_factory.mktemp("docs")
    copy = tmp / ROOT.name
    ignore = shutil.ignore_patterns("runs", "data", ".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache")
    shutil.copytree(ROOT, copy, ignore=ignore)
    short, resume = tmp / "short.yaml", tmp / "resume.yaml"
    short.write_text(yaml.safe_dump(short_run(1)))
    resume.write_text(yaml.safe_dump(short_run(2)))
    environment = dict(os.environ)
    modules_before = set(sys.modules)
    edits = ModuleEdits()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny runs: one thread is faster than several, and steadier on a shared CPU
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(copy)
        patch.syspath_prepend(str(copy))  # top-level modules that documents create
        # The package is imported from the project itself: let it find the new files in the copy too.
        source = copy / "src" / PACKAGE
        for folder in [source, *sorted(path for path in source.rglob("*") if (path / "__init__.py").is_file())]:
            package = importlib.import_module(".".join([PACKAGE, *folder.relative_to(source).parts]))
            patch.setattr(package, "__path__", [*package.__path__, str(folder)])
        files = documented_files()
        for path, is_edit, code in files:
            if not is_edit:
                (copy / path).parent.mkdir(parents=True, exist_ok=True)
                (copy / path).write_text(code)
        importlib.invalidate_caches()
        try:
            for path, is_edit, code in files:
                if is_edit:
                    edits.apply(path, code)
            yield Session(copy, short, resume, environment)
        finally:
            torch.set_num_threads(threads)
            edits.restore()
            os.environ.clear()
            os.environ.update(environment)
            for name in set(sys.modules) - modules_before:
                if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(copy)):
                    del sys.modules[name]


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[command.id for command in COMMANDS])
def test_documented_command_works(index, session):
    command = COMMANDS[index]
    outcome = session.run_through(index)
    if outcome.skipped:
        pytest.skip(f"{command.text}: {outcome.skipped}")
    if outcome.error:
        earlier = [COMMANDS[i].id for i, previous in enumerate(session.outcomes[:index]) if previous.error]
        note = f" (earlier commands failed too: {', '.join(earlier)})" if earlier else ""
        pytest.fail(f"{command.id}: {command.text}\n{outcome.error}{note}", pytrace=False)


def test_the_readme_shows_the_commands_of_running_experiments():
    texts = [command.text for command in COMMANDS if command.document == "README.md"]
    shown = " ".join(texts)
    for example in ("--optimizer adam", "--optimizer.lr", "--scheduler", f"--optimizer {PACKAGE}.", "--name",
                    "fit --help", "--ckpt_path last", "runs/", "train.py test"):
        assert example in shown, f"README.md shows no command with {example!r}"
    assert any(RUNNABLE.match(text) and "figures" in text for text in texts), "README.md does not show the figures command"


# Commands, as they appear in the documents: each must start with `uv run` (see README.md).
BARE = [
    re.compile(r"(?<!uv run )(?<!\w)python (?:train\.py|-m \w+\.figures)"),
    re.compile(r"(?<!uv run )(?<![%\w])tensorboard --logdir"),
    re.compile(r"(?:^|`)(?:pytest|ruff check)\b"),
]
# The one paragraph that says how to run without uv.
FALLBACK = "drop the `uv run` prefix"


def document_texts() -> dict[str, str]:
    """Every document a student reads commands in, with its text (notebook: all its cells)."""
    paths = [ROOT / "README.md", ROOT / "PROMPT.md", ROOT / "report.md", ROOT / "slides" / "slides.md",
             *sorted((ROOT / "docs").rglob("*.md"))]
    texts = {str(path.relative_to(ROOT)): path.read_text() for path in paths}
    notebook = ROOT / "notebooks" / "demo.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    texts[str(notebook.relative_to(ROOT))] = "\n".join("".join(cell["source"]) for cell in cells)
    return texts


def paragraphs(text: str) -> list[tuple[int, str]]:
    """(number of its first line, text) of each paragraph: lines between blank lines."""
    found, lines, first = [], [], 1
    for number, line in enumerate(text.splitlines() + [""], 1):
        if line.strip():
            first = number if not lines else first
            lines.append(line)
        elif lines:
            found.append((first, "\n".join(lines)))
            lines = []
    return found


def test_every_document_runs_commands_with_uv_run():
    """The same form everywhere: `uv run python train.py`, `uv run tensorboard`, `uv run pytest`, ...

    The generator's printed next steps (template/hooks/post_gen_project.py) are the README's
    Quickstart commands, checked at the end.
    """
    bare, fallbacks = [], []
    for name, text in document_texts().items():
        for first, paragraph in paragraphs(text):
            if FALLBACK in " ".join(paragraph.split()):
                fallbacks.append(f"{name}:{first}")
                continue
            for number, line in enumerate(paragraph.splitlines(), first):
                bare += [f"{name}:{number}: {line.strip()}" for pattern in BARE if pattern.search(line)]
    assert not bare, "commands without `uv run` (or add them to the explained fallback):\n" + "\n".join(bare)
    assert len(fallbacks) == 1, f"one paragraph should explain running without uv, found {fallbacks or 'none'}"
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    steps = ("uv sync --locked --extra dev", "uv run python train.py fit", "uv run pytest", "uv run tensorboard --logdir runs")
    for step in steps:
        assert step in quickstart, f"the Quickstart lacks {step!r}, which the generator prints as a next step"
