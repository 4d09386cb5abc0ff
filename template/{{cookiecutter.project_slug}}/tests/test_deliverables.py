"""Tests of the course deliverables: the figures command, the report and slides that show its
output, the other markdown deliverables, the Colab demo notebook and the Marp deck.

    pytest tests/test_deliverables.py
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import QUIET, ROOT, run
from nbclient import NotebookClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from {{ cookiecutter.package_name }} import figures

PROJECT_NAME = {{ cookiecutter.project_name|tojson }}
DOCUMENTS = ["report.md", "PROMPT.md", "slides/slides.md", "docs/self_critique.md", "docs/llm_log.md",
             "docs/development_log.md", "docs/deliverables.md", "docs/weekly/README.md", "figures/README.md"]
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{[%#]")  # Jinja that cookiecutter left in a file
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)


def write_run(folder: Path, optimizer: str, lr: float, seed: int, val_losses: list[float]) -> None:
    """A fake run folder, as train.py writes one: config.yaml beside TensorBoard events."""
    folder.mkdir(parents=True)
    config = f"""
seed_everything: {seed}
trainer:
  max_epochs: {len(val_losses)}
  logger:
    init_args:
      save_dir: runs
      name: cmp
model:
  init_args:
    optimizer:
      name: {optimizer}
      lr: {lr}
data:
  init_args:
    batch_size: 32
"""
    assert yaml.safe_load(config)["model"]["init_args"]["optimizer"] == dict(name=optimizer, lr=lr)
    (folder / "config.yaml").write_text(config)
    writer = SummaryWriter(str(folder))
    for epoch, val_loss in enumerate(val_losses):
        for batch in range(4):
            step = epoch * 4 + batch
            writer.add_scalar("train/loss", 2.0 * val_loss + 0.01 * batch, step, walltime=100.0 + step)
            writer.add_scalar("opt/lr", lr, step, walltime=100.0 + step)
            writer.add_scalar("epoch", epoch, step, walltime=100.0 + step)
        end = (epoch + 1) * 4
        writer.add_scalar("val/loss", val_loss, end, walltime=100.0 + end)
        writer.add_scalar("val/acc", 1.0 - val_loss, end, walltime=100.0 + end)
        writer.add_scalar("epoch", epoch, end, walltime=100.0 + end)
    writer.close()


def logged(folder: Path, tag: str) -> list[float]:
    """The values of `tag` in a run folder's event files."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The rows of the first markdown table in `markdown`, by their first cell."""
    rows = [line.strip("| ").split(" | ") for line in markdown.splitlines() if line.startswith("| ")]
    return {row[0]: row for row in rows[2:]}  # after the header and the --- line


def test_figures_compare_optimizers_and_average_seeds(tmp_path, capsys):
    runs = tmp_path / "runs" / "cmp"
    write_run(runs / "version_0", "sgd", 0.1, seed=0, val_losses=[1.0, 0.6, 0.5])
    write_run(runs / "version_1", "adam", 0.01, seed=0, val_losses=[0.9, 0.4, 0.3])
    write_run(runs / "version_2", "adam", 0.01, seed=1, val_losses=[0.8, 0.5, 0.35])
    out = tmp_path / "figures"
    result = figures.main([str(tmp_path / "runs"), "--out", str(out), "--metrics", "train/loss", "val/loss",
                           "val/acc", "opt/lr", "val/missing", "--embed"])
    for name in ("loss", "train_loss", "val_loss", "val_acc", "opt_lr"):
        assert (out / f"{name}.png").stat().st_size > 10_000 and (out / f"{name}.pdf").is_file()
    assert "val/missing: no run logged it; skipped" in capsys.readouterr().out

    groups = figures.group_runs(figures.find_runs([tmp_path / "runs"]))
    assert sorted(len(group.runs) for group in groups) == [1, 2]  # adam's two seeds are one configuration
    figure = figures.plot_metrics(groups, ["val/loss"])
    (ax,) = figure.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == 2 and labels == [text.get_text() for text in ax.get_legend().get_texts()]
    sgd, adam = sorted(labels, key=lambda label: "adam" in label)
    assert "optimizer.name=sgd" in sgd and "optimizer.lr=0.1" in sgd
    assert "optimizer.name=adam" in adam and "optimizer.lr=0.01" in adam and "2 seeds" in adam
    assert "seed" not in sgd
    adam_line = next(line for line in ax.get_lines() if "adam" in line.get_label())
    assert list(adam_line.get_ydata()) == pytest.approx([0.85, 0.45, 0.325])  # the mean over seeds
    assert len(ax.collections) == 1  # the range over seeds is shaded for adam only

    rows = table_rows((out / "results.md").read_text())
    sgd, adam = sgd, adam.removesuffix(" (2 seeds)")  # the table has a column for the number of runs
    assert set(rows) == {sgd, adam} and rows[adam][1] == "2"
    header = result["header"]
    sgd_val = logged(runs / "version_0", "val/loss")
    assert rows[sgd][header.index("val/loss (final)")] == f"{sgd_val[-1]:.4g}"
    assert rows[sgd][header.index("val/loss (best)")] == f"{min(sgd_val):.4g}"
    assert rows[sgd][header.index("val/acc (best)")] == f"{max(logged(runs / 'version_0', 'val/acc')):.4g}"
    assert rows[sgd][header.index("train/loss (final)")] == f"{logged(runs / 'version_0', 'train/loss')[-1]:.4g}"
    finals = [logged(runs / f"version_{i}", "val/loss")[-1] for i in (1, 2)]
    assert rows[adam][header.index("val/loss (final)")].startswith(f"{sum(finals) / 2:.4g} ± ")
    assert not any("opt/lr" in column for column in header)
    latex = (out / "results.tex").read_text()
    assert r"\begin{tabular}" in latex and f"{sgd_val[-1]:.4g}" in latex and r"optimizer.name=sgd" in latex

    for x in ("epoch", "samples", "time"):
        figure = figures.plot_metrics(groups, ["val/loss"], x=x)
        sgd_line = next(line for line in figure.axes[0].get_lines() if "sgd" in line.get_label())
        expected = {"epoch": [1, 2, 3], "samples": [128, 256, 384], "time": [4, 8, 12]}[x]
        assert list(sgd_line.get_xdata()) == pytest.approx(expected), x


def test_figures_of_a_real_run_fill_the_report_and_slides(tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns("runs", "data", ".git", ".venv", "__pycache__"))
    shutil.rmtree(project / "figures")
    (project / "figures").mkdir()
    shutil.copy(ROOT / "figures" / "README.md", project / "figures" / "README.md")
    monkeypatch.chdir(project)
    cli = run("fit", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "4",
              "--trainer.limit_val_batches", "2", "--trainer.log_every_n_steps", "1", *QUIET)
    run_dir = Path(cli.trainer.log_dir)
    figures.main([])  # what `python -m <package>.figures` does after `python train.py fit`
    assert (project / "figures" / "loss.png").stat().st_size > 10_000

    final_val_loss = f"{logged(run_dir, 'val/loss')[-1]:.4g}"
    for document in ("report.md", "slides/slides.md"):
        text = (project / document).read_text()
        block = text.split(figures.TABLE_START)[1].split(figures.TABLE_END)[0]
        assert final_val_loss in block, document  # the table from this run, not the placeholder
        assert "figures/loss.png" in text
    for document in DOCUMENTS:
        path = project / document
        text = path.read_text()
        assert not UNRENDERED.search(text), f"{document} has unrendered Jinja"
        assert PROJECT_NAME in text or document.startswith(("docs/weekly", "figures/")), document
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor
            assert (path.parent / target.split("#")[0]).exists(), f"{document} links to missing {target}"


def test_demo_notebook_runs_top_to_bottom(tmp_path):
    path = ROOT / "notebooks" / "demo.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert "google.colab" in "".join(cell.source for cell in notebook.cells)
    assert "https://github.com/{{ cookiecutter.github_owner }}/{{ cookiecutter.project_slug }}" in path.read_text()
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    tiny = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1",
            "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false"]
    metrics = ["--metrics", "train/loss", "val/loss"]
    parameters.source += f"\nTRAIN_ARGS = {json.dumps(tiny)}\nFIGURE_ARGS = {json.dumps(metrics)}\n"
    parameters.source += f"WORKDIR = {str(tmp_path)!r}\n"
    where = dict(path=str(ROOT / "notebooks"))  # the notebook's own folder, as in Jupyter
    NotebookClient(notebook, timeout=240, kernel_name="python3", resources=dict(metadata=where)).execute()
    assert (tmp_path / "figures" / "loss.png").is_file() and list(tmp_path.glob("runs/*/version_0/config.yaml"))
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert any("image/png" in output.get("data", {}) for output in outputs)  # the loss figure is shown
    assert not any(output.output_type == "error" for output in outputs)


def test_slides_render_with_marp(tmp_path):
    npx = shutil.which("npx")
    if npx is None or shutil.which("node") is None:
        pytest.skip("Node.js (node and npx) is not installed: Marp cannot render the slides here")
    html = tmp_path / "slides.html"
    command = [npx, "--yes", "@marp-team/marp-cli@latest", str(ROOT / "slides" / "slides.md"), "-o", str(html)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("npx took over 5 minutes: the npm registry is probably unreachable")
    if result.returncode != 0 and re.search(r"ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|ECONNRESET|network|E4\d\d",
                                            result.stderr):
        pytest.skip(f"@marp-team/marp-cli could not be fetched from npm: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    rendered = html.read_text()
    assert rendered.count("<section") >= 6  # title, problem, approach, two results slides, next steps
    assert "../figures/loss.png" in rendered
