"""Tests of the compare command (src/the_sgd_lecture_reproduced/compare.py) on fake sweep runs written here.

    pytest tests/test_compare.py

The fake sweep: sgd, momentum and adam, three learning rates each, seeds 1 and 2, in
runs/vision_optimizers/ (one momentum run diverges, one sgd run is pruned), and re-runs of the best adam and momentum
settings with seeds 11, 12, 13 in runs/vision_optimizers_final/. Every number the tests expect is
computed here from what the event files hold.
"""

import dataclasses
import statistics
import warnings
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from the_sgd_lecture_reproduced.report import compare, figures

NAME = "vision_optimizers"
STEPS_PER_EPOCH = 5  # val/acc is logged at steps 5, 10, 15, 20
START = 1.7e9  # the wall time of each run's first event
TARGET = 0.9
OPTIMIZERS = {  # name: (class path, arguments besides lr, seconds per step)
    "sgd": ("torch.optim.SGD", {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False}, 0.1),
    "momentum": ("torch.optim.SGD", {"momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False}, 0.1),
    "adam": ("torch.optim.Adam", {"betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0.0, "amsgrad": False}, 0.2),
}
# Final validation accuracy (before the seed's small offset) of each optimizer at each learning rate.
PEAK = {
    "sgd": {0.01: 0.6, 0.1: 0.8, 1.0: 0.85},
    "momentum": {0.01: 0.8, 0.1: 0.95, 1.0: 0.9},
    "adam": {0.001: 0.93, 0.01: 0.97, 0.1: 0.7},
}
SEEDS = [1, 2]
DIVERGED = ("momentum", 1.0, 2)  # this run blows up after one validation
PRUNED = ("sgd", 0.01, 2)  # this run is stopped after 2 of its 4 epochs (a sweep with `prune: true` does that)
# The re-runs of the best settings with fresh seeds: (optimizer, lr) -> val/acc of each seed.
FINAL = {
    ("adam", 0.01): {11: [0.70, 0.88, 0.97, 0.96], 12: [0.72, 0.91, 0.98, 0.97], 13: [0.69, 0.905, 0.975, 0.98]},
    ("momentum", 0.1): {11: [0.66, 0.86, 0.96, 0.95], 12: [0.65, 0.87, 0.955, 0.96], 13: [0.6, 0.8, 0.85, 0.88]},
}


def sweep_curve(optimizer: str, lr: float, seed: int) -> list[float]:
    """val/acc at the end of each of 4 epochs: rising, best at epoch 3, a little lower at the end."""
    peak, offset = PEAK[optimizer][lr], 0.005 * seed
    return [peak - 0.3 + offset, peak - 0.1 + offset, peak + 0.01 + offset, peak + offset]


def seconds_per_step(optimizer: str, seed: int) -> float:
    return OPTIMIZERS[optimizer][2] * (1 + 0.05 * (seed % 10))


def write_trial(folder: Path, optimizer: str, lr: float, seed: int, accs: list[float], diverge: bool = False,
                search: bool = True) -> None:
    """A run folder as sweep.py leaves one: the full config.yaml beside TensorBoard events.

    `search`: a run of the search, to which a sweep with `prune: true` adds its pruning callback
    (the re-runs with fresh seeds have none).
    """
    folder.mkdir(parents=True)
    class_path, arguments, _ = OPTIMIZERS[optimizer]
    config = {
        "seed_everything": seed,
        "name": folder.name,
        "trainer": {"max_epochs": 4, "fast_dev_run": False,
                    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                               "init_args": {"save_dir": "runs", "name": folder.parent.name, "version": folder.name}}},
        "model": {"class_path": "the_sgd_lecture_reproduced.problems.vision.ImageClassifier", "init_args": {
            "net": "mlp",
            "optimizer": {"class_path": class_path, "init_args": {"lr": lr, **arguments}},
            "scheduler": {"class_path": "the_sgd_lecture_reproduced.optim.Cosine", "init_args": {"warmup_steps": 0}},
        }},
        "data": {"class_path": "the_sgd_lecture_reproduced.problems.vision.VisionDataModule", "init_args": {"batch_size": 64}},
        "checkpoint": {"monitor": "val/acc", "mode": "max"},
    }
    config["trainer"]["callbacks"] = [{"class_path": "the_sgd_lecture_reproduced.sweep.PruneHopeless"}] if search else None
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    dt = seconds_per_step(optimizer, seed)
    writer = SummaryWriter(str(folder))
    for epoch, acc in enumerate(accs):
        for batch in range(STEPS_PER_EPOCH):
            step = epoch * STEPS_PER_EPOCH + batch
            writer.add_scalar("train/loss", 1.0 - acc + 0.01 * batch, step, walltime=START + step * dt)
            writer.add_scalar("opt/lr", lr, step, walltime=START + step * dt)
            writer.add_scalar("epoch", epoch, step, walltime=START + step * dt)
        end = (epoch + 1) * STEPS_PER_EPOCH  # Lightning logs a validation one step early: at end - 1
        writer.add_scalar("val/acc", acc, end - 1, walltime=START + end * dt)
        writer.add_scalar("val/loss", 1.0 - acc, end - 1, walltime=START + end * dt)
    if diverge:
        writer.add_scalar("diverged", 1.0, len(accs) * STEPS_PER_EPOCH + 1, walltime=START + 100)
    writer.close()


def write_sweep(root: Path) -> Path:
    """The fake sweep's runs under root/runs/, and its sweep file; returns the sweep file."""
    for optimizer, lrs in PEAK.items():
        for lr in lrs:
            for seed in SEEDS:
                diverged = (optimizer, lr, seed) == DIVERGED
                accs = [0.3] if diverged else sweep_curve(optimizer, lr, seed)
                accs = accs[:2] if (optimizer, lr, seed) == PRUNED else accs
                write_trial(root / "runs" / NAME / f"{optimizer}_lr{lr:g}_s{seed}", optimizer, lr, seed, accs, diverged)
    for (optimizer, lr), runs in FINAL.items():
        for seed, accs in runs.items():
            write_trial(root / "runs" / f"{NAME}_final" / f"{optimizer}_lr{lr:g}_s{seed}", optimizer, lr, seed, accs,
                        search=False)
    (root / "runs" / NAME / "study.journal").write_text("{}\n")  # the study storage: not a run
    sweep = {
        "experiment": "configs/vision.yaml", "budget": {"trainer.max_epochs": 4}, "seeds": SEEDS,
        "metric": "val/acc", "mode": "max", "summary": "final", "method": "grid", "trials": 9, "target": TARGET,
        "space": {"optimizer": {name: {"optimizer.lr": list(lrs)} for name, lrs in PEAK.items()}},
        "final_seeds": [11, 12, 13], "compare": "optimizer",
    }
    path = root / "configs" / "sweeps" / f"{NAME}.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def logged(folder: Path, tag: str) -> tuple[list[float], list[float], list[float]]:
    """(steps, wall times, values) of `tag` in a run folder's event files."""
    events = EventAccumulator(str(folder))
    events.Reload()
    scalars = events.Scalars(tag)
    return [e.step for e in scalars], [e.wall_time for e in scalars], [e.value for e in scalars]


def first_wall_time(folder: Path) -> float:
    events = EventAccumulator(str(folder))
    events.Reload()
    return min(e.wall_time for tag in events.Tags()["scalars"] for e in events.Scalars(tag))


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The rows of the first markdown table in `markdown`, by their first cell."""
    lines = markdown.split("\n\n")[0].splitlines()
    rows = [line.strip("| ").split(" | ") for line in lines if line.startswith("| ")]
    return {row[0]: row for row in rows[2:]}


def assert_mean_std(cell: str, numbers: list[float]) -> None:
    """A table cell `mean ± std` holds the mean and the standard deviation (n - 1) of `numbers`."""
    mean, std = (float(part) for part in cell.split(" ± "))
    assert mean == pytest.approx(statistics.mean(numbers), rel=1e-3), cell
    assert std == pytest.approx(statistics.stdev(numbers), rel=0.05, abs=1e-9), cell


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The fake sweep, compared once with warnings as errors; (folder, sweep file, result, report.md)."""
    root = tmp_path_factory.mktemp("compare")
    sweep_file = write_sweep(root)
    report = root / "report.md"
    report.write_text("# Report\n\n<!-- figures:results:start -->\nold figures table\n<!-- figures:results:end -->\n\n"
                      "<!-- compare:results:start -->\nold comparison\n<!-- compare:results:end -->\n\nThe end.\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no matplotlib (or other) warning while drawing and saving
        result = compare.main(["--sweep", str(sweep_file), "--root", str(root / "runs"), "--out", str(root / "figures"),
                               "--embed", str(report), str(root / "no_such_report.md")])
    return root, sweep_file, result, report


def test_compare_writes_every_figure_and_table(swept):
    root, _, result, _ = swept
    out = root / "figures"
    for stem in ("sensitivity", "best_steps", "best_time"):
        assert (out / f"{NAME}_{stem}.png").stat().st_size > 10_000 and (out / f"{NAME}_{stem}.pdf").is_file()
    assert (out / f"{NAME}_results.md").is_file() and (out / f"{NAME}_results.tex").is_file()
    from matplotlib.image import imread

    height, width, _ = imread(out / f"{NAME}_sensitivity.png").shape
    assert 2.8 * 200 < width <= 3.4 * 200 and height > figures.PANEL_HEIGHT * 200  # one column, legend below
    # The study storage beside the runs is no run: 3 optimizers x 3 learning rates x 2 seeds.
    assert sum(len(setting.runs) for setting in result["settings"]) == 18 and len(result["settings"]) == 9


def test_compare_names_optimizers_like_the_command_line():
    assert compare.optimizer_name("torch.optim.SGD", {"momentum": 0.0, "nesterov": False}) == "sgd"
    assert compare.optimizer_name("torch.optim.SGD", {"momentum": 0.95, "nesterov": False}) == "momentum"
    assert compare.optimizer_name("torch.optim.SGD", {"momentum": 0.9, "nesterov": True}) == "nesterov"
    assert compare.optimizer_name("torch.optim.AdamW", {"weight_decay": 0.1}) == "adamw"
    assert compare.optimizer_name("the_sgd_lecture_reproduced.optim.MuonWithAdamW", {"adamw_lr": 3e-3}) == "muon"
    assert compare.optimizer_name("my_pkg.opt.MyOpt", {}) == "myopt"
    config = {"model.init_args.optimizer.init_args.lr": 0.1, "data.init_args.batch_size": 64,
              "model.init_args.optimizer.class_path": "torch.optim.SGD"}
    assert compare.resolve("optimizer.lr", config) == "model.init_args.optimizer.init_args.lr"
    assert compare.resolve("optimizer", config) == "model.init_args.optimizer.class_path"
    assert compare.resolve("data.batch_size", config) == "data.init_args.batch_size"
    assert compare.resolve("batch_size", config) == "data.init_args.batch_size"
    assert compare.resolve("scheduler", config) is None


def test_compare_table_holds_the_means_and_stds_of_the_runs(swept):
    root, _, result, _ = swept
    markdown = (root / "figures" / f"{NAME}_results.md").read_text()
    rows = table_rows(markdown)
    header = result["header"]
    assert header == ["optimizer", "setting", "seeds", "final val/acc", "best val/acc", "steps to 0.9", "seconds to 0.9"]
    assert list(rows) == ["sgd", "momentum", "adam"]  # in the sweep file's order
    final = root / "runs" / f"{NAME}_final"
    for optimizer, lr in FINAL:  # the re-runs with fresh seeds are what the table reports
        folders = [final / f"{optimizer}_lr{lr:g}_s{seed}" for seed in FINAL[optimizer, lr]]
        values = [logged(folder, "val/acc")[2] for folder in folders]
        row = rows[optimizer]
        assert row[1] == f"lr={lr:g}" and row[2] == "3"  # what tells the settings apart, not their callbacks
        assert_mean_std(row[3], [v[-1] for v in values])
        assert_mean_std(row[4], [max(v) for v in values])
    # sgd has no re-runs: its best setting of the sweep (lr=1, the highest mean final accuracy).
    sweep = root / "runs" / NAME
    sgd_values = [logged(sweep / f"sgd_lr1_s{seed}", "val/acc")[2] for seed in SEEDS]
    assert rows["sgd"][1:3] == ["lr=1", "2"]
    assert_mean_std(rows["sgd"][3], [v[-1] for v in sgd_values])
    assert_mean_std(rows["sgd"][4], [max(v) for v in sgd_values])
    # How to cite, under the table: with the number of seeds (2 for sgd; the seeds column gives the others' 3).
    assert f"sgd: {rows['sgd'][3]} (final val/acc, mean ± standard deviation over 2 seeds)" in markdown
    assert f"runs/{NAME}_final/adam_lr0.01_s11" in markdown  # the runs behind each row
    latex = (root / "figures" / f"{NAME}_results.tex").read_text()
    assert r"\begin{tabular}" in latex and r"$\pm$" in latex and "not reached (1/3)" in latex


def test_compare_steps_and_seconds_to_target(swept):
    root, _, result, _ = swept
    rows = table_rows((root / "figures" / f"{NAME}_results.md").read_text())
    final = root / "runs" / f"{NAME}_final"
    steps, seconds = [], []
    for seed in FINAL["adam", 0.01]:
        folder = final / f"adam_lr0.01_s{seed}"
        logged_steps, times, values = logged(folder, "val/acc")
        first = next(i for i, value in enumerate(values) if value >= TARGET)
        steps.append(logged_steps[first] + 1)  # the steps taken: TensorBoard shows a validation one step early
        seconds.append(times[first] - first_wall_time(folder))
    assert steps == [15, 10, 10]  # as written: seed 11 reaches 0.9 an epoch later
    assert seconds == pytest.approx([15 * seconds_per_step("adam", 11), 10 * seconds_per_step("adam", 12),
                                     10 * seconds_per_step("adam", 13)])
    assert_mean_std(rows["adam"][5], steps)
    assert_mean_std(rows["adam"][6], seconds)
    assert rows["momentum"][5:] == ["not reached (1/3)", "not reached (1/3)"]  # seed 13 stays below 0.9
    assert rows["sgd"][5:] == ["not reached (2/2)", "not reached (2/2)"]
    run = figures.read_run(final / "adam_lr0.01_s11")
    assert compare.time_to_target(run, "val/acc", 0.99, "max") is None
    assert compare.time_to_target(run, "val/acc", 0.5, "min") is None  # for min: at or below the target
    assert compare.time_to_target(run, "val/loss", 0.1, "min") == (15.0, pytest.approx(15 * seconds_per_step("adam", 11)))


def test_compare_marks_a_diverged_run_instead_of_averaging_it(swept):
    root, _, result, _ = swept
    optimizer, lr, seed = DIVERGED
    (setting,) = [s for s in result["settings"] if s.choice == optimizer and s.x == lr]
    assert setting.diverged == 1 and len(setting.runs) == 2
    finished = logged(root / "runs" / NAME / f"{optimizer}_lr{lr:g}_s1", "val/acc")[2][-1]
    assert setting.values == pytest.approx([finished])  # only the seed that finished is a number
    choices = list(PEAK)  # in the sweep file's order: sgd, momentum, adam
    figure = compare.plot_sensitivity(result["settings"], choices, result["options"], [])
    (ax,) = figure.axes
    line = next(line for line in ax.get_lines() if line.get_label().startswith(optimizer))
    xs, ys = list(line.get_xdata()), list(line.get_ydata())
    assert xs == [0.01, 0.1, 1.0] and ys[2] == pytest.approx(finished)
    means = [statistics.mean(logged(root / "runs" / NAME / f"{optimizer}_lr{x:g}_s{s}", "val/acc")[2][-1] for s in SEEDS)
             for x in (0.01, 0.1)]
    assert ys[:2] == pytest.approx(means)  # elsewhere: the mean over both seeds
    marks = [mark for mark in ax.get_lines() if mark.get_marker() == "X"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [lr] and marks[0].get_color() == line.get_color()
    assert marks[0].get_ydata()[0] == 0.0 and marks[0].get_transform() == ax.get_xaxis_transform()  # the bottom edge
    # A pruned run (stopped before its last epoch) is not averaged in either, and has its own mark.
    optimizer, lr, seed = PRUNED
    (pruned,) = [s for s in result["settings"] if s.choice == optimizer and s.x == lr]
    assert (pruned.stopped, pruned.diverged) == (1, 0)
    assert pruned.values == pytest.approx([logged(root / "runs" / NAME / f"{optimizer}_lr{lr:g}_s1", "val/acc")[2][-1]])
    (mark,) = [mark for mark in ax.get_lines() if mark.get_marker() == "o" and mark.get_linestyle() == "None"]
    assert list(mark.get_xdata()) == [lr] and mark.get_markerfacecolor() == "white"
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["sgd (2 seeds)", "momentum (2 seeds)", "adam (2 seeds)", "diverged", "stopped early"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate"
    assert ax.get_ylabel() == "final validation accuracy"
    # A long metric name is written whole on the axis, not cut to fit a legend entry.
    long_name = dataclasses.replace(result["options"], metric="val/bpb")
    (ax,) = compare.plot_sensitivity(result["settings"], choices, long_name, []).axes
    assert ax.get_ylabel() == "final validation bits per byte"


def test_compare_figures_follow_the_report_style(swept):
    root, _, result, _ = swept
    options = result["options"]
    groups = [figures.Group(label=choice, runs=setting.runs) for choice, (setting, _) in result["rows_from"].items()]
    for x, xlabel in (("step", "optimizer steps"), ("time", "wall-clock time (s)")):
        figure = compare.plot_best(groups, options, x)
        ax = figure.axes[0]
        assert ax.get_xlabel() == xlabel and ax.get_ylabel() == "validation accuracy"
        assert figure.get_size_inches() == pytest.approx([figures.ONE_COLUMN, figures.PANEL_HEIGHT])
        (legend,) = figure.legends
        labels = [text.get_text() for text in legend.get_texts()]
        assert labels == ["sgd (2 seeds)", "momentum (3 seeds)", "adam (3 seeds)", "target 0.9"]  # the sweep's order
        assert all(len(label) < 30 for label in [*labels, ax.get_xlabel(), ax.get_ylabel(), ax.get_title()])
        figure.draw_without_rendering()  # lays the figure out, as saving it does
        renderer = figure.canvas.get_renderer()
        assert legend.get_window_extent(renderer).y1 <= ax.get_tightbbox(renderer).y0  # below the axes
    adam = next(line for line in compare.plot_best(groups, options, "step").axes[0].get_lines()
                if line.get_label().startswith("adam"))
    runs = [logged(root / "runs" / f"{NAME}_final" / f"adam_lr0.01_s{seed}", "val/acc")[2] for seed in (11, 12, 13)]
    assert list(adam.get_ydata()) == pytest.approx([statistics.mean(values) for values in zip(*runs, strict=True)])


def test_compare_embeds_its_table_in_the_report(swept):
    root, sweep_file, result, report = swept
    text = report.read_text()
    embedded = text.split("<!-- compare:results:start -->")[1].split("<!-- compare:results:end -->")[0]
    assert "old comparison" not in embedded and "| optimizer | setting | seeds |" in embedded
    assert "mean ± standard deviation" in embedded
    assert "old figures table" in text and text.endswith("The end.\n")  # the rest of the report is left alone
    assert result["embedded"] == [report]  # a file without the markers (or none) is skipped
    # The folder form, with everything on the command line, gives the same table (in alphabetical order, without
    # the sweep file's).
    again = compare.main([str(root / "runs" / NAME), "--metric", "val/acc", "--mode", "max", "--target", str(TARGET),
                          "--by", "optimizer", "--x", "optimizer.lr", "--out", str(root / "again"), "--embed"])
    assert sorted(again["rows"]) == sorted(result["rows"]) and [row[0] for row in again["rows"]] == ["adam", "momentum", "sgd"]
    assert again["embedded"] == [] and report.read_text() == text


def test_each_sweeps_table_keeps_its_place_in_the_report(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("# Report\n\n<!-- compare:results:start -->\nplaceholder\n<!-- compare:results:end -->\n\nThe end.\n")
    assert compare.embed_comparison(report, "| a | table |\n", "first")
    assert compare.embed_comparison(report, "| b | table |\n", "second")  # another sweep: under the first
    assert compare.embed_comparison(report, "| a | again |\n", "first")  # the same sweep: its own place
    assert compare.embed_comparison(report, "| b | again |\n", "second")
    text = report.read_text()
    assert "placeholder" not in text and "| a | table |" not in text and "| b | table |" not in text
    assert text.index("| a | again |") < text.index("<!-- compare:second:start -->") < text.index("| b | again |")
    assert text.count("| a | again |") == 1 and text.count("| b | again |") == 1 and text.endswith("The end.\n")
    assert not compare.embed_comparison(tmp_path / "no_markers.md", "| c |\n", "third")


def test_compare_marks_exact_zeros_on_a_log_axis():
    """A loss minus its minimum can reach exactly 0 (a quadratic solved to the last bit): on a log axis
    it is a triangle at the bottom edge, and the line breaks there instead of joining its neighbours."""
    options = compare.Options(name="steps", folder=Path("runs/steps"), final=Path("runs/steps_final"),
                              metric="val/loss", mode="min")
    settings = [compare.Setting(choice="gd", runs=[], x=lr, values=[value])
                for lr, value in ((0.1, 1e-2), (0.5, 1e-6), (1.0, 0.0), (1.5, 1e-9))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = compare.plot_sensitivity(settings, ["gd"], options, [])
        figure.draw_without_rendering()
    (ax,) = figure.axes
    assert ax.get_yscale() == "log"
    line = next(line for line in ax.get_lines() if line.get_label() == "gd")
    ys = list(line.get_ydata())
    assert ys[0] == 1e-2 and ys[3] == 1e-9 and ys[2] != ys[2]  # NaN: no point at 0 on a log axis
    (zero,) = [mark for mark in ax.get_lines() if mark.get_marker() == "v"]
    assert list(zero.get_xdata()) == [1.0] and zero.get_ydata()[0] == 0.0  # at the bottom edge
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["gd", "exactly 0"]
