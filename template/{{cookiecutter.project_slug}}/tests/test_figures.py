"""Tests of the theory lines of the figures command (src/{{ cookiecutter.package_name }}/figures.py):
runs that log `theory/<name>` tags get dashed lines on the panels of `<stage>/<name>`, which
change neither the y range nor the log scale, and stay out of the results table.

    pytest tests/test_figures.py

The runs are built in memory (figures.Run), as the command reads them from TensorBoard files.
"""

from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.report import figures

STEPS = np.arange(0, 200, 10)
FLOOR = {0.1: 0.05, 0.5: 0.25}  # the noise floor of each learning rate


def series(values) -> figures.Series:
    values = np.broadcast_to(np.asarray(values, dtype=float), STEPS.shape)
    return figures.Series(steps=STEPS.astype(float), times=100.0 + STEPS, values=values.copy())


def noise_floor_run(lr: float, seed: int, theory: bool = True) -> figures.Run:
    """SGD on the noisy quadratic: suboptimality falling to its noise floor, with what theory expects."""
    floor = FLOOR[lr] * (1 + 0.1 * seed)  # the seeds' floors differ a little: the line is their mean
    rate = 5.0 * (1 - lr) ** STEPS
    scalars = {"train/suboptimality": series(rate + floor * (1 + 0.5 * np.sin(STEPS))),  # about the floor
               "train/loss": series(rate + floor + 1.0), "val/loss": series(rate + floor + 1.0)}
    if theory:
        scalars |= {
            "theory/suboptimality": series(rate + floor),
            "theory/noise_floor": series(floor),
            "theory/rate_bound": series(np.r_[0.0, -1.0, 1e-12 * rate[2:]]),  # far below, and not all positive
            "theory/loss": series(1.0),  # the optimal value f*
        }
    config = {"seed_everything": seed, "model.init_args.optimizer.init_args.lr": lr}
    return figures.Run(path=Path("runs/noise") / f"lr{lr}_s{seed}", config=config, scalars=scalars)


def groups_of(theory: bool = True) -> list[figures.Group]:
    return figures.group_runs([noise_floor_run(lr, seed, theory) for lr in FLOOR for seed in (0, 1)])


def theory_lines(ax) -> dict[str, list]:
    lines: dict[str, list] = {}
    for line in ax.get_lines():
        if str(line.get_gid()).startswith("theory/"):
            lines.setdefault(line.get_gid(), []).append(line)
    return lines


def test_theory_lines_are_dashed_in_each_configuration_colour_on_their_panels():
    groups = groups_of()
    figure = figures.plot_metrics(groups, ["train/suboptimality", "val/loss"])
    suboptimality, loss = figure.axes
    on_suboptimality, on_loss = theory_lines(suboptimality), theory_lines(loss)
    assert sorted(on_suboptimality) == ["theory/noise_floor", "theory/rate_bound", "theory/suboptimality"]
    assert sorted(on_loss) == ["theory/loss"]  # the optimal value goes on the loss panels only
    measured = {line.get_label(): line.get_color() for line in suboptimality.get_lines() if line.get_gid() is None}
    for number, group in enumerate(groups):
        (floor,) = [line for line in on_suboptimality["theory/noise_floor"] if line.get_color() == f"C{number}"]
        assert measured[figures.legend_label(group.label, 2)] == f"C{number}"  # the colour of the group's curve
        assert floor.get_linestyle() != "-"  # dashed (dotted for the noise floor)
        lr = group.runs[0].config["model.init_args.optimizer.init_args.lr"]
        assert floor.get_ydata() == pytest.approx(FLOOR[lr] * 1.05)  # the mean over the seeds' floors
    assert all(line.get_linestyle() == "--" for line in on_loss["theory/loss"])
    assert len(suboptimality.collections) == 2  # the seeds' ranges of the two curves; theory is not shaded
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        "lr=0.1 (2 seeds)", "lr=0.5 (2 seeds)", "theory: noise floor", "theory: rate bound",
        "theory: expected suboptimality", "theory: optimal value"]  # one entry per kind, in grey
    assert {handle.get_color() for handle in legend.legend_handles[2:]} == {"0.45"}


def test_theory_lines_change_neither_the_log_scale_nor_the_view():
    with_theory, without = (figures.plot_metrics(groups_of(theory), ["train/suboptimality", "train/loss"])
                            for theory in (True, False))
    for ax, plain in zip(with_theory.axes, without.axes, strict=True):
        assert ax.get_yscale() == plain.get_yscale()
        assert ax.get_ylim() == pytest.approx(plain.get_ylim())  # the rate bound, 1e-12 times lower, is cut off
    assert with_theory.axes[0].get_yscale() == "log" and without.axes[1].get_yscale() == "linear"
    (bound, *_) = theory_lines(with_theory.axes[0])["theory/rate_bound"]
    assert np.isnan(bound.get_ydata()[:2]).all()  # 0 and -1 have no place on a log axis
    # A noise floor just under the measured curve is shown: the view widens a little (downwards only) to hold it.
    plain = figures.plot_metrics(figures.group_runs([noise_floor_run(0.1, 0, theory=False)]), ["train/suboptimality"])
    run = noise_floor_run(0.1, 0)
    run.scalars["theory/noise_floor"] = series(0.012)
    (ax,) = figures.plot_metrics(figures.group_runs([run]), ["train/suboptimality"]).axes
    (low, high), (plain_low, plain_high) = ax.get_ylim(), plain.axes[0].get_ylim()
    assert low < 0.012 < plain_low and high == pytest.approx(plain_high)


def test_theory_tags_stay_out_of_the_default_metrics_and_the_table():
    groups = groups_of()
    runs = [run for group in groups for run in group.runs]
    metrics = figures.default_metrics(runs)
    assert "val/loss" in metrics and not [metric for metric in metrics if metric.startswith("theory/")]
    header, _, _ = figures.results_table(groups, [*metrics, "train/suboptimality"])
    assert not [column for column in header if "theory" in column]
    # Named with --metrics, a theory tag is a metric like any other: its own panel and table column.
    header, _, _ = figures.results_table(groups, ["theory/noise_floor"])
    assert header[2:] == ["theory/noise_floor (final)"]
    (ax,) = figures.plot_metrics(groups, ["theory/noise_floor"]).axes
    assert [line.get_linestyle() for line in ax.get_lines()] == ["-", "-"] and not theory_lines(ax)


def test_smoothing_shifts_theory_lines_as_it_shifts_the_measured_curve():
    groups = figures.group_runs([noise_floor_run(0.1, 0)])
    smoothed = figures.plot_metrics(groups, ["train/suboptimality"], smooth=0.9).axes[0]
    (expected,) = theory_lines(smoothed)["theory/suboptimality"]
    series = groups[0].runs[0].scalars["theory/suboptimality"]
    np.testing.assert_allclose(expected.get_ydata(), figures.smoothed(series.values, 0.9))  # not the raw values


def test_samples_axis_counts_every_sample_of_a_step():
    def run(name: str, **config) -> figures.Run:
        return figures.Run(Path("runs/sizes") / name, config, {"val/loss": series(1.0)})

    assert figures.batch_size_of(run("one", **{"data.init_args.batch_size": 16})) == 16
    # Each device, node and accumulated batch adds its samples to a step.
    assert figures.batch_size_of(run("many", **{"data.init_args.batch_size": 16, "trainer.devices": 2,
                                                 "trainer.num_nodes": 2, "trainer.accumulate_grad_batches": 3})) == 192
    assert figures.batch_size_of(run("model", **{"model.init_args.batch_size": 8})) == 8  # a model that draws its own
    assert figures.batch_size_of(run("none", **{"trainer.devices": 1})) is None  # no size given: no axis, not a wrong one



def test_the_best_value_follows_what_the_runs_module_declared(tmp_path):
    from {{ cookiecutter.package_name }}.report.runs import read_run, run_results, tidy_frame

    for name, declared in [("declared", "metrics_higher_is_better:\n- loss\n"), ("unrecorded", ""), ("usual", "")]:
        folder = tmp_path / "runs" / "direction" / name
        folder.mkdir(parents=True)
        # Lightning's hparams.yaml holds Python-only values too (!!python/tuple), which must not stop the reading.
        (folder / "hparams.yaml").write_text(f"input_shape: !!python/tuple\n- 1\n- 8\n{declared}")
        if name == "usual":
            (folder / "hparams.yaml").unlink()
    runs = [read_run(folder) for folder in sorted((tmp_path / "runs" / "direction").iterdir())]
    assert [run.higher_is_better for run in runs] == [("loss",), None, None]
    for run in runs:
        run.scalars = {"val/loss": series(np.linspace(3, 1, len(STEPS))), "val/acc": series(np.linspace(0.1, 0.9, len(STEPS)))}
    best = run_results(tidy_frame(runs))["best"]
    declared, unrecorded = (run.path.as_posix() for run in runs[:2])
    assert best[(declared, "val/loss")] == 3.0 and best[(declared, "val/acc")] == pytest.approx(0.1)  # as declared
    assert best[(unrecorded, "val/loss")] == 1.0 and best[(unrecorded, "val/acc")] == pytest.approx(0.9)  # the usual names


def test_a_cut_off_event_file_is_left_out_with_a_note_not_read_to_its_middle(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from {{ cookiecutter.package_name }}.report.compare import read_folder
    from {{ cookiecutter.package_name }}.report.runs import load_runs, select_runs

    for name in ("whole", "cut"):
        writer = SummaryWriter(tmp_path / "runs" / "sweep" / name)
        for step in range(100):
            writer.add_scalar("val/loss", 1.0 / (step + 1), step)
        writer.close()
    (events,) = (tmp_path / "runs" / "sweep" / "cut").glob("events.out.tfevents.*")
    events.write_bytes(events.read_bytes()[: events.stat().st_size // 2])  # as a kill during a copy leaves it
    notes: list[str] = []
    runs = select_runs([str(tmp_path / "runs")], tmp_path / "runs", notes=notes)
    assert [run.name for run in runs] == ["whole"]
    assert any(note.startswith(f"left out {events.parent}: its event file {events.name} is cut off") for note in notes), notes
    notes = []
    assert [run.name for run in read_folder(tmp_path / "runs" / "sweep", notes)] == ["whole"]  # the compare command
    assert any("is cut off" in note for note in notes)
    with pytest.warns(UserWarning, match="is cut off"):
        assert set(load_runs("sweep", root=tmp_path / "runs")["run"]) == {(tmp_path / "runs" / "sweep" / "whole").as_posix()}
