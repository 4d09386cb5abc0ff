"""Tests of the course deliverables: the figures command, the report and slides that show its
output, the other markdown deliverables, the Colab demo notebook and the Marp deck.

    pytest tests/test_deliverables.py
"""

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import QUIET, ROOT, run
from nbclient import NotebookClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from logistic_regression_to_the_exact_optimum.report import figures

PROJECT_NAME = "Logistic Regression to the Exact Optimum"
DOCUMENTS = ["report.md", "PROMPT.md", "slides/slides.md", "docs/self_critique.md", "docs/llm_log.md",
             "docs/development_log.md", "docs/deliverables.md", "docs/weekly/README.md", "figures/README.md"]
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{[%#]")  # Jinja that cookiecutter left in a file
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)


# Optimizers as jsonargparse writes them into config.yaml: class path, then every argument with its default.
OPTIMIZERS = {
    "adam": ("torch.optim.Adam", dict(betas=[0.9, 0.999], eps=1e-08, weight_decay=0.0, amsgrad=False, foreach=None,
                                      maximize=False, capturable=False, differentiable=False, fused=None)),
    "sgd": ("torch.optim.SGD", dict(momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
                                    foreach=None, differentiable=False, fused=None)),
    "signsgd": ("logistic_regression_to_the_exact_optimum.optim.SignSGD", dict(momentum=0.0, weight_decay=0.0)),
    "myopt": ("my_pkg.opt.MyOpt", dict(beta=0.5)),
}


def write_run(folder: Path, optimizer: str, lr: float, seed: int, val_losses: list[float], steps_per_epoch: int = 4,
              scheduler: str = "Cosine", fast_dev_run: bool = False, **optimizer_args) -> None:
    """A fake run folder, as train.py writes one: config.yaml beside TensorBoard events.

    The folder is runs/<experiment>/<run name>; `optimizer_args` change the optimizer's defaults.
    """
    folder.mkdir(parents=True)
    class_path, defaults = OPTIMIZERS[optimizer]
    logger = dict(save_dir="runs", name=folder.parent.name, version=folder.name)
    config = {
        "seed_everything": seed,
        "name": None if folder.name.startswith("version_") else folder.name,
        "trainer": {"max_epochs": len(val_losses), "fast_dev_run": fast_dev_run,
                    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": logger}},
        "model": {"init_args": {
            "optimizer": {"class_path": class_path, "init_args": {"lr": lr, **defaults, **optimizer_args}},
            "scheduler": {"class_path": f"logistic_regression_to_the_exact_optimum.optim.{scheduler}",
                          "init_args": {"warmup_steps": 0, "min_factor": 0.0}},
        }},
        "data": {"init_args": {"batch_size": 32}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    writer = SummaryWriter(str(folder))
    for epoch, val_loss in enumerate(val_losses):
        for batch in range(steps_per_epoch):
            step = epoch * steps_per_epoch + batch
            writer.add_scalar("train/loss", 2.0 * val_loss + 0.01 * batch, step, walltime=100.0 + step)
            writer.add_scalar("opt/lr", lr, step, walltime=100.0 + step)
            writer.add_scalar("epoch", epoch, step, walltime=100.0 + step)
        end = (epoch + 1) * steps_per_epoch  # Lightning logs a validation one step early: at end - 1
        writer.add_scalar("val/loss", val_loss, end - 1, walltime=100.0 + end)
        writer.add_scalar("val/acc", 1.0 - val_loss, end - 1, walltime=100.0 + end)
        writer.add_scalar("epoch", epoch, end - 1, walltime=100.0 + end)
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


def legend_labels(figure) -> list[str]:
    """The labels of a figure's legend (figures.py puts it below the panels, on the figure)."""
    (legend,) = figure.legends
    return [text.get_text() for text in legend.get_texts()]


def test_figures_compare_optimizers_and_average_seeds(tmp_path, capsys):
    runs = tmp_path / "runs" / "cmp"
    write_run(runs / "sgd_lr0.1", "sgd", 0.1, seed=0, val_losses=[1.0, 0.6, 0.5])
    write_run(runs / "adam_lr3e-4", "adam", 3e-4, seed=0, val_losses=[0.9, 0.4, 0.3])
    write_run(runs / "adam_lr3e-4_seed1", "adam", 3e-4, seed=1, val_losses=[0.8, 0.5, 0.35])
    out = tmp_path / "figures"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no matplotlib warning while drawing and saving
        result = figures.main([str(tmp_path / "runs"), "--out", str(out), "--metrics", "train/loss", "val/loss",
                               "val/acc", "opt/lr", "val/missing", "--embed"])
    for name in ("loss", "train_loss", "val_loss", "val_acc", "opt_lr"):
        assert (out / f"{name}.png").stat().st_size > 10_000 and (out / f"{name}.pdf").is_file()
    printed = capsys.readouterr().out
    assert "val/missing: no run logged it; skipped" in printed
    assert "lr = model.init_args.optimizer.init_args.lr" in printed  # what the labels' short keys stand for

    groups = figures.group_runs(figures.find_runs([tmp_path / "runs"]))
    assert sorted(len(group.runs) for group in groups) == [1, 2]  # adam's two seeds are one configuration
    figure = figures.plot_metrics(groups, ["val/loss"])
    (ax,) = figure.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == legend_labels(figure)
    assert sorted(labels) == ["adam lr=3e-4 (2 seeds)", "sgd lr=0.1"]  # what differs, in short; not the seed
    adam_line = next(line for line in ax.get_lines() if "adam" in line.get_label())
    assert list(adam_line.get_ydata()) == pytest.approx([0.85, 0.45, 0.325])  # the mean over seeds
    assert len(ax.collections) == 1  # the range over seeds is shaded for adam only
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("validation loss", "optimizer steps", "validation loss")

    rows = table_rows((out / "results.md").read_text())
    sgd, adam = "sgd lr=0.1", "adam lr=3e-4"  # the table has a column for the number of runs
    assert set(rows) == {sgd, adam} and rows[adam][1] == "2"
    header = result["header"]
    sgd_val = logged(runs / "sgd_lr0.1", "val/loss")
    assert rows[sgd][header.index("val/loss (final)")] == f"{sgd_val[-1]:.4g}"
    assert rows[sgd][header.index("val/loss (best)")] == f"{min(sgd_val):.4g}"
    assert rows[sgd][header.index("val/acc (best)")] == f"{max(logged(runs / 'sgd_lr0.1', 'val/acc')):.4g}"
    assert rows[sgd][header.index("train/loss (final)")] == f"{logged(runs / 'sgd_lr0.1', 'train/loss')[-1]:.4g}"
    finals = [logged(runs / name, "val/loss")[-1] for name in ("adam_lr3e-4", "adam_lr3e-4_seed1")]
    assert rows[adam][header.index("val/loss (final)")].startswith(f"{sum(finals) / 2:.4g} ± ")
    assert not any("opt/lr" in column for column in header)
    latex = (out / "results.tex").read_text()
    assert r"\begin{tabular}" in latex and f"{sgd_val[-1]:.4g}" in latex and "sgd lr=0.1" in latex

    for x in ("epoch", "samples", "time"):
        figure = figures.plot_metrics(groups, ["val/loss"], x=x)
        sgd_line = next(line for line in figure.axes[0].get_lines() if "sgd" in line.get_label())
        expected = {"epoch": [1, 2, 3], "samples": [128, 256, 384], "time": [4, 8, 12]}[x]
        assert list(sgd_line.get_xdata()) == pytest.approx(expected), x
        assert figure.axes[0].get_xlabel() == figures.X_AXES[x]


def test_figures_legend_stays_outside_the_axes_at_report_sizes(tmp_path):
    runs = tmp_path / "runs" / "sweep"
    write_run(runs / "adam", "adam", 1e-3, seed=0, val_losses=[0.9, 0.5])
    one = figures.group_runs(figures.find_runs([runs]))
    for lr in (0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4):
        write_run(runs / f"sgd_lr{lr:g}", "sgd", lr, seed=0, val_losses=[1.0, 0.7], momentum=0.9, nesterov=True)
    eight = figures.group_runs(figures.find_runs([runs]))
    assert len(one) == 1 and len(eight) == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for metrics, width in ((["val/loss"], 3.4), (["train/loss", "val/loss"], 7.0)):
            figure = figures.plot_metrics(eight, metrics)
            figures.save(figure, tmp_path / "figures", f"crowded{len(metrics)}")
            assert figure.get_size_inches() == pytest.approx([width, figures.PANEL_HEIGHT])
            (legend,) = figure.legends
            renderer = figure.canvas.get_renderer()
            assert legend.get_window_extent(renderer).y1 <= min(ax.get_tightbbox(renderer).y0 for ax in figure.axes)
            assert legend.get_window_extent(renderer).width <= figure.bbox.width  # in columns within the width
            assert all(len(label) < 30 for label in legend_labels(figure))
            # Eight legend entries take no room from the axes: they are as large as with no legend.
            figure.draw_without_rendering()
            with_legend = [bound for ax in figure.axes for bound in ax.get_position().bounds]
            legend.remove()
            figure.draw_without_rendering()
            assert [bound for ax in figure.axes for bound in ax.get_position().bounds] == pytest.approx(with_legend)
            assert figures.plot_metrics(one, metrics).legends == []  # one configuration: nothing to tell apart
    assert legend_labels(figures.plot_metrics(eight, ["val/loss"]))[:2] == ["adam lr=1e-3", "sgd lr=1e-4"]
    from matplotlib.image import imread

    height, width, _ = imread(tmp_path / "figures" / "crowded1.png").shape
    assert 2.8 * 200 < width <= 3.4 * 200 and height > figures.PANEL_HEIGHT * 200  # grown to hold the legend


def test_figures_labels_are_short_and_name_only_what_differs(tmp_path, capsys):
    classes = tmp_path / "runs" / "classes"
    write_run(classes / "adam", "adam", 1e-3, seed=0, val_losses=[0.9, 0.5])
    write_run(classes / "signsgd", "signsgd", 1e-3, seed=0, val_losses=[0.9, 0.5])
    write_run(classes / "mine", "myopt", 1e-3, seed=0, val_losses=[0.9, 0.5], scheduler="WarmupCosine")
    labels = {group.runs[0].name: group.label for group in figures.group_runs(figures.find_runs([classes]))}
    # Arguments only one class has (betas, momentum, beta) are not what tells the runs apart: the class is.
    assert labels == {"adam": "adam cosine", "signsgd": "signsgd cosine", "mine": "myopt warmupcosine"}

    sweep = tmp_path / "runs" / "sweep"
    write_run(sweep / "a", "sgd", 0.05, seed=0, val_losses=[0.9, 0.5], momentum=0.9, weight_decay=5e-4)
    write_run(sweep / "b", "sgd", 0.1, seed=0, val_losses=[0.9, 0.5], momentum=0.95, weight_decay=1e-4, dampening=0.1)
    write_run(sweep / "c", "sgd", 0.1, seed=0, val_losses=[0.9, 0.5], momentum=0.95, weight_decay=1e-4, dampening=0.2)
    groups = figures.group_runs(figures.find_runs([sweep]))
    assert [group.full for group in groups] == ["lr=0.05 momentum=0.9 dampening=0 wd=5e-4",
                                                "lr=0.1 momentum=0.95 dampening=0.1 wd=1e-4",
                                                "lr=0.1 momentum=0.95 dampening=0.2 wd=1e-4"]
    labels = [group.label for group in groups]
    assert all(len(label) < 30 for label in labels)
    # Too long: first the keys that tell the runs apart (lr, then dampening), then what fits, then " …".
    assert labels == ["lr=0.05 dampening=0 wd=5e-4 …", "lr=0.1 dampening=0.1 …", "lr=0.1 dampening=0.2 …"]

    figures.main([str(sweep), "--out", str(tmp_path / "figures"), "--embed"])
    printed = capsys.readouterr().out
    assert all(f"in full: {group.full}" in printed for group in groups)  # nothing is hidden by the cut
    assert "wd = model.init_args.optimizer.init_args.weight_decay" in printed
    assert groups[1].full in (tmp_path / "figures" / "results.md").read_text()
    figures.main([str(classes), "--out", str(tmp_path / "figures"), "--embed"])
    assert "adam, myopt, signsgd = model.init_args.optimizer.class_path" in capsys.readouterr().out

    assert [figures.short_number(x) for x in (3e-4, 1e-8, 0.1, 0.9, 0.05, 1000.0, 2.5)] == [
        "3e-4", "1e-8", "0.1", "0.9", "0.05", "1e3", "2.5"]
    assert figures.short_keys(["model.init_args.optimizer.init_args.lr", "model.init_args.scheduler.init_args.lr",
                               "data.init_args.batch_size"]) == {
        "model.init_args.optimizer.init_args.lr": "optimizer.lr", "model.init_args.scheduler.init_args.lr": "scheduler.lr",
        "data.init_args.batch_size": "batch_size"}


def test_figures_axis_labels_are_words():
    assert figures.words("train/loss") == "training loss"
    assert figures.words("val/loss") == "validation loss"
    assert figures.words("val/acc") == "validation accuracy"
    assert figures.words("opt/lr") == "learning rate"
    assert figures.words("val/bpb") == "validation bits per byte"
    assert figures.words("perf/samples_per_sec") == "throughput (samples/s)"
    assert figures.words("train/grad_norm") == "training gradient norm"
    assert figures.words("custom/my_metric") == "custom my metric"  # unknown tags: still readable
    assert list(figures.X_AXES.values()) == ["optimizer steps", "epochs", "training samples seen", "wall-clock time (s)"]


def test_figures_select_runs_by_experiment_name_and_glob(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_run(Path("runs/vision_digits/adam_lr3e-4"), "adam", 3e-4, seed=0, val_losses=[0.9, 0.5, 0.4])
    write_run(Path("runs/vision_digits/sgd_lr0.1"), "sgd", 0.1, seed=0, val_losses=[1.0, 0.6, 0.5])
    write_run(Path("runs/vision_digits/version_0"), "adam", 1e-3, seed=0, val_losses=[0.9, 0.5, 0.4])
    write_run(Path("runs/vision_mnist/adam_lr3e-4"), "adam", 3e-4, seed=0, val_losses=[0.7, 0.3, 0.2])
    write_run(Path("runs/tabular/sgd_lr0.1"), "sgd", 0.1, seed=0, val_losses=[1.0, 0.8, 0.7])

    def selected(*args: str) -> list[str]:
        return sorted(f"{run.experiment}/{run.name}" for run in figures.select_runs(list(args), exclude=[]))

    every = ["tabular/sgd_lr0.1", "vision_digits/adam_lr3e-4", "vision_digits/sgd_lr0.1", "vision_digits/version_0",
             "vision_mnist/adam_lr3e-4"]
    assert selected("runs") == every
    assert selected("vision_digits") == every[1:4]  # an experiment name
    assert selected("adam_lr3e-4") == ["vision_digits/adam_lr3e-4", "vision_mnist/adam_lr3e-4"]  # a run name
    assert selected("vision_*") == every[1:]  # a glob of experiments
    assert selected("adam*", "sgd*") == ["tabular/sgd_lr0.1", *every[1:3], "vision_mnist/adam_lr3e-4"]  # of runs
    assert selected("runs/vision_*/adam*") == ["vision_digits/adam_lr3e-4", "vision_mnist/adam_lr3e-4"]
    assert selected(str(tmp_path / "runs" / "tabular")) == ["tabular/sgd_lr0.1"]  # an absolute folder
    exclude = figures.select_runs(["runs"], exclude=["version_*", "tabular", "runs/vision_mnist/*"])
    assert sorted(run.name for run in exclude) == ["adam_lr3e-4", "sgd_lr0.1"]

    result = figures.main(["vision_digits", "--exclude", "sgd*", "--out", "figures", "--embed"])
    assert sorted(run.name for group in result["groups"] for run in group.runs) == ["adam_lr3e-4", "version_0"]
    printed = capsys.readouterr().out
    assert "note: left out 1 of 3 runs: 1 matching --exclude" in printed
    assert (tmp_path / "figures" / "loss.png").is_file()
    with pytest.raises(SystemExit, match="no runs to plot"):
        figures.main(["no_such_run", "--out", "figures", "--embed"])


def test_figures_leave_out_fast_dev_runs_and_short_runs(tmp_path, capsys):
    runs = tmp_path / "runs" / "vision_digits"
    write_run(runs / "adam", "adam", 3e-4, seed=0, val_losses=[0.9, 0.5, 0.4, 0.35, 0.3], steps_per_epoch=10)  # 50 steps
    write_run(runs / "sgd", "sgd", 0.1, seed=0, val_losses=[1.0, 0.7], steps_per_epoch=10)  # 20 steps: kept
    write_run(runs / "crashed", "sgd", 1.0, seed=0, val_losses=[2.0], steps_per_epoch=4)  # 4 steps < 50 / 10
    write_run(runs / "debug", "adam", 3e-4, seed=0, val_losses=[0.9], steps_per_epoch=1, fast_dev_run=True)
    common = [str(tmp_path / "runs"), "--out", str(tmp_path / "figures"), "--embed"]

    result = figures.main(common)
    assert sorted(run.name for group in result["groups"] for run in group.runs) == ["adam", "sgd"]
    notes = [line for line in capsys.readouterr().out.splitlines() if "left out" in line]
    assert len(notes) == 1  # one line says what was left out and why
    assert "left out 2 of 4 runs" in notes[0] and "1 made with fast_dev_run" in notes[0]
    assert "1 stopped before a tenth of the longest run's 50 steps" in notes[0] and "--all" in notes[0]

    result = figures.main([*common, "--all"])
    assert sorted(run.name for group in result["groups"] for run in group.runs) == ["adam", "crashed", "debug", "sgd"]
    assert "left out" not in capsys.readouterr().out


def test_figures_of_a_real_run_fill_the_report_and_slides(tmp_path, monkeypatch):
    project = tmp_path / "project"
    # A copy of the project as it is: the team's own figures stay, so that its report's links to them hold.
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns("runs", "data", ".git", ".venv", "__pycache__"))
    (project / "figures" / "loss.png").unlink(missing_ok=True)  # this run must draw it again
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
        assert "figures/" in text  # the document shows figures (the template's show figures/loss.png)
    for document in DOCUMENTS:
        path = project / document
        text = path.read_text()
        assert not UNRENDERED.search(text), f"{document} has unrendered Jinja"
        assert PROJECT_NAME in text or document.startswith(("docs/weekly", "figures/")), document
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor
            assert (path.parent / target.split("#")[0]).exists(), f"{document} links to missing {target}"


@pytest.mark.slow
def test_demo_notebook_runs_top_to_bottom(tmp_path):
    path = ROOT / "notebooks" / "demo.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert "google.colab" in "".join(cell.source for cell in notebook.cells)
    assert "https://github.com/stat4830/logistic-regression-to-the-exact-optimum" in path.read_text()
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    tiny = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1",
            "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false"]
    metrics = ["--metrics", "train/loss", "val/loss"]
    parameters.source += f"\nTRAIN_ARGS = {json.dumps(tiny)}\nFIGURE_ARGS = {json.dumps(metrics)}\n"
    parameters.source += f"WORKDIR = {str(tmp_path)!r}\n"
    where = dict(path=str(ROOT / "notebooks"))  # the notebook's own folder, as in Jupyter
    NotebookClient(notebook, timeout=240, kernel_name="python3", resources=dict(metadata=where)).execute()
    assert (tmp_path / "figures" / "loss.png").is_file() and list(tmp_path.glob("runs/*/*/config.yaml"))
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
