"""This example's results: what report.md states is what the committed runs hold (fast), and a
shrunk re-run still shows the headline (slow).

    uv run pytest tests/test_results.py -m "not slow"   # seconds: the numbers and figures against runs/
    uv run pytest tests/test_results.py                 # also the re-run of GD and SGD (16 s on our 2-core CPU)

The numbers come from runs/tabular_logreg_*_final/ (the best learning rate of each method re-run
with seeds 100, 101, 102), read with the same code that wrote the report's table (plots.py).
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, QUIET, ROOT, run

from logistic_regression_to_the_exact_optimum.report.figures import TABLE_END, TABLE_START, read_run, read_scalars

sys.path.insert(0, str(ROOT))  # plots.py sits beside train.py
import plots  # noqa: E402

REPORT = (ROOT / "report.md").read_text()
SWEEPS = {f"tabular_logreg_{data}_{regime}": (1 if regime == "fullbatch" else 3)  # sweep -> seeds per point
          for data in plots.DATASETS for regime in plots.REGIMES}
GRID = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]  # every sweep's learning rates

# The headline numbers as report.md writes them (3 significant digits): dataset -> method -> value.
FINAL_EXCESS = {  # final train/excess_loss, mean over the 3 re-runs
    "breast_cancer": {"GD": "2.26e-08", "SGD": "0.000155", "Adam, full batch": "0.00115", "Adam, batch 32": "0.000245"},
    "synthetic": {"GD": "4.43e-09", "SGD": "7.26e-05", "Adam, full batch": "0.000688", "Adam, batch 32": "4.55e-05"},
}
SGD_FLOOR = {"breast_cancer": "0.00014", "synthetic": "7.03e-05"}  # SGD's excess loss, mean of its last 10 epochs
FLOOR_OVER_GD = {"breast_cancer": "6,200", "synthetic": "15,900"}  # SGD's floor / GD's final excess loss, to 100
TUNED_LR = {  # each method's best learning rate on the grid
    "breast_cancer": {"GD": 3.0, "SGD": 0.3, "Adam, full batch": 0.03, "Adam, batch 32": 0.01},
    "synthetic": {"GD": 10.0, "SGD": 0.3, "Adam, full batch": 0.1, "Adam, batch 32": 0.01},
}


@pytest.fixture(scope="module")
def rows() -> dict[tuple[str, str], "plots.Row"]:
    """Each method's numbers on each dataset, read from the committed runs by plots.py."""
    return {(row.dataset, row.method): row for row in plots.rows()}


def test_every_method_was_re_run_with_three_fresh_seeds(rows):
    assert set(rows) == {(data, method) for data in plots.DATASETS for method in plots.METHODS}
    for row in rows.values():
        assert row.seeds == 3


def test_the_report_table_is_the_one_the_runs_give(rows):
    block = REPORT.split(plots.TABLE_START)[1].split(plots.TABLE_END)[0]
    assert block.strip() == plots.table(list(rows.values())).strip()


@pytest.mark.parametrize("data", plots.DATASETS)
def test_headline_numbers_in_the_report_match_the_runs(rows, data):
    text = REPORT.split(plots.TABLE_START)[0] + REPORT.split(plots.TABLE_END)[1]  # the prose, not the table
    for method, written in FINAL_EXCESS[data].items():
        assert f"{np.mean(rows[data, method].excess):.3g}" == written, (data, method)
        if method != "SGD":  # (the report states SGD's floor, checked below, rather than its last value)
            assert written in text, f"report.md does not state {data} {method}'s final excess loss {written}"
        assert rows[data, method].lr == TUNED_LR[data][method], (data, method)
    assert f"{np.mean(rows[data, 'SGD'].floor):.3g}" == SGD_FLOOR[data]
    assert SGD_FLOOR[data] in text
    ratio = np.mean(rows[data, "SGD"].floor) / np.mean(rows[data, "GD"].excess)
    assert f"{round(ratio, -2):,.0f}" == FLOOR_OVER_GD[data]
    assert f"{FLOOR_OVER_GD[data]} times" in text


@pytest.mark.parametrize("data", plots.DATASETS)
def test_gd_ends_far_below_every_other_method(rows, data):
    """GD's final excess loss is over 1000 times below the level where every other method sits at
    the end (its excess loss averaged over the last 10 epochs, lowest seed)."""
    gd = np.max(rows[data, "GD"].excess)
    for method in ("SGD", "Adam, full batch", "Adam, batch 32"):
        assert gd < np.min(rows[data, method].floor) / 1000, method


def test_on_the_real_data_sgd_is_ahead_early(rows):
    """Breast cancer: SGD reaches an excess loss of 1e-3 in fewer epochs than GD (on the synthetic
    problem GD, with its step of 10, is ahead from the start)."""
    assert max(rows["breast_cancer", "SGD"].to_target[0]) < min(rows["breast_cancer", "GD"].to_target[0])
    assert min(rows["synthetic", "GD"].to_target[0]) < min(rows["synthetic", "SGD"].to_target[0])


@pytest.mark.parametrize("sweep", SWEEPS)
def test_no_best_learning_rate_is_at_the_edge_of_the_grid(sweep):
    """The grid is wide enough: each optimizer's best mean final distance is inside it, and the
    re-runs with fresh seeds are of that learning rate."""
    for optimizer in ("sgd", "adam"):
        means = []
        for lr in GRID:
            folders = sorted((ROOT / "runs" / sweep).glob(f"{optimizer}_lr{lr}_s*"))
            assert len(folders) == SWEEPS[sweep], (sweep, optimizer, lr)
            values = [read_scalars(folder)["val/dist_to_opt"].values[-1] for folder in folders]
            means.append(np.mean(values) if np.all(np.isfinite(values)) else np.inf)
        best = int(np.argmin(means))
        assert 0 < best < len(GRID) - 1, f"{sweep} {optimizer}: best lr {GRID[best]} is at the edge of the grid"
        final = sorted((ROOT / "runs" / f"{sweep}_final").glob(f"{optimizer}_lr{GRID[best]}_s10*"))
        assert len(final) == 3, f"{sweep}: the re-runs are not of the best lr {GRID[best]}"


def test_figures_and_tables_exist():
    names = ["logreg_curves.png", "logreg_sensitivity.png", "logreg_sgd_floor.png", "logreg_results.md",
             "logreg_conditioning.md", "logreg_sgd_floor.md", "loss.png", "results.md", "synthetic_loss.png",
             "synthetic_results.md"]
    names += [f"{sweep}_{kind}" for sweep in SWEEPS for kind in ("sensitivity.png", "best_steps.png", "results.md")]
    for name in names:
        assert (ROOT / "figures" / name).stat().st_size > 500, name
    for target in ("figures/logreg_curves.png", "figures/logreg_sensitivity.png", "figures/logreg_sgd_floor.png",
                   "figures/loss.png"):
        assert target in REPORT
    block = REPORT.split(TABLE_START)[1].split(TABLE_END)[0]
    assert "adam" in block and "sgd" in block  # the figures command's table, not its placeholder


def test_runs_hold_no_checkpoints_and_stay_small():
    assert not list((ROOT / "runs").glob("tabular_logreg_*/*/checkpoints"))
    size = sum(path.stat().st_size for path in (ROOT / "runs").rglob("*") if path.is_file())
    assert size < 5_000_000


def run_for(config: Path, data: str, method: str, seed: int):
    """A re-run of one method at its tuned learning rate; returns its excess losses, one per epoch."""
    args = ["--optimizer.lr", str(TUNED_LR[data][method]), "--seed_everything", str(seed), "--name", method]
    if method == "SGD":
        args += ["--data.init_args.full_batch", "false"]
    run("fit", "--config", str(config), *args, *QUIET)
    folder = Path("runs") / f"tabular_logreg_{data}" / method
    assert read_run(folder).config["model.init_args.optimizer.init_args.lr"] == TUNED_LR[data][method]
    return read_scalars(folder)["train/excess_loss"].values


@pytest.mark.slow
@pytest.mark.parametrize("data", plots.DATASETS)
def test_gd_falls_below_sgd_noise_floor_in_a_re_run(data, in_tmp):
    """The headline, re-run at full length (50 epochs) with one seed per method.

    Claim: GD's final excess loss ends at least 100 times below SGD's noise floor (its excess loss
    averaged over its last 10 epochs); the committed runs give about 6,200 times (breast cancer)
    and 15,900 times (synthetic). Tolerances: GD does not depend on the seed, so its final value
    matches the report's (3 significant digits) to 0.5%; SGD's floor, from a seed the sweeps did
    not use, is within a factor of 3 of the committed mean.
    """
    config = CONFIGS / f"tabular_logreg_{data}.yaml"
    gd = run_for(config, data, "GD", seed=0)
    sgd = run_for(config, data, "SGD", seed=7)
    floor = float(np.mean(sgd[-plots.FLOOR_EPOCHS:]))
    assert gd[-1] < floor / 100, (gd[-1], floor)
    assert gd[-1] == pytest.approx(float(FINAL_EXCESS[data]["GD"]), rel=5e-3)  # the report's 3 digits
    assert float(SGD_FLOOR[data]) / 3 < floor < 3 * float(SGD_FLOOR[data])
