"""Tests of the tidy table of runs (src/logistic_regression_to_the_exact_optimum/report/runs.py) on real runs: two
optimizers x two seeds of the tabular family's default experiment, trained here in seconds; and
the README's own-plot example, run as written on them.

    pytest tests/test_tabular_runs.py

Named after the tabular family, whose runs it trains: a project without that family has no such file.
"""

import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from conftest import CONFIGS, QUIET, ROOT, run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from logistic_regression_to_the_exact_optimum.report.runs import load_runs, run_table

OPTIMIZERS = {"sgd": 0.3, "adam": 0.05}  # name: learning rate
SEEDS = [0, 1]
EPOCHS = 3  # full-batch gradient descent: one step an epoch


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory) -> Path:
    """A folder holding runs/tabular_breast_cancer/<optimizer>_s<seed>/ for each optimizer and seed."""
    folder = tmp_path_factory.mktemp("runs_table")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for optimizer, lr in OPTIMIZERS.items():
            for seed in SEEDS:
                run("fit", "--config", str(CONFIGS / "tabular.yaml"), "--optimizer", optimizer, "--optimizer.lr", str(lr),
                    "--seed_everything", str(seed), "--name", f"{optimizer}_s{seed}", "--trainer.max_epochs", str(EPOCHS),
                    *QUIET)
    return folder


def events(folder: Path) -> dict[str, list]:
    """Every scalar tag of a run folder, read straight from its event files: tag -> events."""
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: accumulator.Scalars(tag) for tag in accumulator.Tags()["scalars"]}


def test_the_tidy_frame_holds_every_logged_value_with_its_run_settings(runs_folder, monkeypatch):
    monkeypatch.chdir(runs_folder)
    frame = load_runs("tabular_breast_cancer")
    assert list(frame.columns[:2]) == ["run", "experiment"] and list(frame.columns[-4:]) == ["tag", "step", "value", "wall_time"]
    assert frame["run"].nunique() == len(OPTIMIZERS) * len(SEEDS) and set(frame["experiment"]) == {"tabular_breast_cancer"}
    for optimizer, lr in OPTIMIZERS.items():
        for seed in SEEDS:
            folder = Path("runs/tabular_breast_cancer") / f"{optimizer}_s{seed}"
            mine = frame[frame["run"] == folder.as_posix()]
            assert set(mine["seed_everything"]) == {seed}
            assert set(mine["model.init_args.optimizer.init_args.lr"]) == {lr}
            class_path = "torch.optim.SGD" if optimizer == "sgd" else "torch.optim.Adam"
            assert set(mine["model.init_args.optimizer.class_path"]) == {class_path}
            logged = events(folder)
            assert set(mine["tag"]) == set(logged)
            for tag, scalars in logged.items():
                rows = mine[mine["tag"] == tag].sort_values("step")
                last = {event.step: event for event in scalars}  # a step logged twice: its last value
                # A validation is logged one step early; so is the excess training objective, which it measures.
                shift = 1 if tag.startswith(("val/", "test/")) or tag == "train/excess_loss" else 0
                assert list(rows["step"]) == [step + shift for step in sorted(last)]
                np.testing.assert_allclose(rows["value"], [last[step].value for step in sorted(last)])
                np.testing.assert_allclose(rows["wall_time"], [last[step].wall_time for step in sorted(last)])
            excess, validated = (sorted(mine[mine["tag"] == tag]["step"]) for tag in ("train/excess_loss", "val/loss"))
            assert excess == validated == list(range(1, EPOCHS + 1))  # the weights after 1, 2, ... steps
    table = run_table(frame)
    assert len(table) == 4 and "val/acc final" in table and "val/loss best" in table
    for folder, row in table.iterrows():
        accs = [event.value for event in events(Path(folder))["val/acc"]]
        losses = [event.value for event in events(Path(folder))["val/loss"]]
        assert row["val/acc final"] == pytest.approx(accs[-1]) and row["val/acc best"] == pytest.approx(max(accs))
        assert row["val/loss final"] == pytest.approx(losses[-1]) and row["val/loss best"] == pytest.approx(min(losses))


def own_plot_example(document: Path) -> str:
    """The ```python block of `document` that plots from load_runs."""
    blocks = re.findall(r"^```python\n(.*?)^```", document.read_text(), flags=re.DOTALL | re.MULTILINE)
    (example,) = [block for block in blocks if "load_runs" in block]
    return example


@pytest.mark.parametrize("document", ["README.md", "docs/comparing.md"])
def test_the_own_plot_example_runs_as_written(runs_folder, monkeypatch, document):
    monkeypatch.chdir(runs_folder)
    (runs_folder / "figures").mkdir(exist_ok=True)
    matplotlib.use("Agg")
    namespace: dict = {}
    exec(compile(own_plot_example(ROOT / document), document, "exec"), namespace)
    import matplotlib.pyplot as plt

    (ax,) = plt.gcf().axes
    assert sorted(text.get_text() for text in ax.get_legend().get_texts()) == sorted(OPTIMIZERS)
    plt.close("all")
    (written,) = (runs_folder / "figures").glob("*.png")
    assert written.stat().st_size > 5_000
    written.unlink()
    means = namespace["stats"].set_index(["optimizer", "lr"])["mean"]  # the numbers plotted: mean over seeds
    for optimizer, lr in OPTIMIZERS.items():
        finals = [events(Path(f"runs/tabular_breast_cancer/{optimizer}_s{seed}"))["val/acc"][-1].value for seed in SEEDS]
        assert math.isclose(means[optimizer, lr], sum(finals) / len(finals), rel_tol=1e-6)
