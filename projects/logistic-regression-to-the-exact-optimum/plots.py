"""This example's own figures and tables, from the runs of its four sweeps.

    uv run python plots.py            # after the sweeps (bash reproduce.sh runs it last)

Which runs: runs/tabular_logreg_<data>_fullbatch/ (GD and full-batch Adam, every learning rate of
the grid) and runs/tabular_logreg_<data>_minibatch/ (SGD and Adam on batches of 32, 3 seeds each),
and their *_final/ folders (the best learning rate of each method re-run with seeds 100, 101, 102).
What it writes into figures/:

- logreg_curves.png / .pdf: excess training loss F(theta) - F(theta*) and distance to the
  optimum ||theta - theta*|| against epochs (passes over the training set), log scale, one line
  per method (mean over the 3 re-runs, their range shaded), for both datasets;
- logreg_sensitivity.png / .pdf: the final distance to theta* against the learning rate, every
  method on the same grid (search runs: mean over their seeds, range shaded; x: diverged);
- logreg_sgd_floor.png / .pdf: SGD's excess loss at four constant steps (mean over seeds 0, 1, 2
  of the search) beside gradient descent's: each step size levels off at its own floor;
- logreg_results.md: per dataset and method, the tuned learning rate, the final excess loss and
  distance (mean ± standard deviation over the re-runs), the excess loss averaged over the last
  10 epochs (for SGD: its noise floor), the epochs until the excess loss is below 1e-3 and below
  1e-6, and the final validation accuracy. It also goes into report.md and slides/slides.md
  between the markers <!-- logreg:results:start --> and <!-- logreg:results:end -->;
- logreg_conditioning.md: the Hessian's eigenvalues at theta = 0 and at theta*, the rate of
  gradient descent they predict near theta* at its tuned step, max_i |1 - lr * lambda_i|, and the
  rate its runs measured over their last 10 epochs;
- logreg_sgd_floor.md: SGD's excess loss averaged over its last 10 epochs at every step of the grid.
The last two go into report.md between <!-- logreg:conditioning:... --> and <!-- logreg:sgd_floor:... -->.

Epochs here are steps / steps per epoch: the point measured after a run's k-th optimizer step
(which figures.read_scalars reads at step k, not at TensorBoard's k - 1) is at epoch k / s for a
run of s steps per epoch, for every method alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from logistic_regression_to_the_exact_optimum.problems.tabular import TabularDataModule, TabularModel
from logistic_regression_to_the_exact_optimum.report.compare import has_diverged
from logistic_regression_to_the_exact_optimum.report.figures import Run, embed_table, find_runs
from logistic_regression_to_the_exact_optimum.report.runs import logged_after_the_step

DATASETS = {"breast_cancer": "breast cancer (real; 341 training samples)",
            "synthetic": "synthetic (500 training samples, known optimum)"}
METHODS = ["GD", "SGD", "Adam, full batch", "Adam, batch 32"]  # the order of legends and tables
COLORS = {"GD": "#1f77b4", "SGD": "#d62728", "Adam, full batch": "#2ca02c", "Adam, batch 32": "#ff7f0e"}
METRICS = {"train/excess_loss": "excess training loss  F(θ) − F(θ*)", "val/dist_to_opt": "distance to optimum  ‖θ − θ*‖"}
REGIMES = ("fullbatch", "minibatch")  # the two sweeps of each dataset
FLOOR_EPOCHS = 10  # SGD's floor: the excess loss averaged over the last this many epochs
TARGETS = (1e-3, 1e-6)  # excess losses whose epochs-to-reach the table gives: a coarse and a fine answer
FLOOR_LRS = [0.1, 0.3, 1.0, 3.0]  # SGD's steps drawn in logreg_sgd_floor.png
TABLE_START, TABLE_END = "<!-- logreg:results:start -->", "<!-- logreg:results:end -->"
HERE = Path(__file__).resolve().parent  # the project: paths work from any working directory
OUT = HERE / "figures"
RUNS = HERE / "runs"


def method_of(run: Run) -> str:
    """GD, SGD, or Adam on full or mini-batches, from the run's config."""
    full = bool(run.config.get("data.init_args.full_batch"))
    if run.config.get("model.init_args.optimizer.class_path") == "torch.optim.Adam":
        return "Adam, full batch" if full else "Adam, batch 32"
    return "GD" if full else "SGD"


def lr_of(run: Run) -> float:
    return float(run.config["model.init_args.optimizer.init_args.lr"])


def steps_per_epoch(run: Run) -> float:
    series = run.scalars["val/dist_to_opt"]  # measured after the last epoch: read at the total steps
    return series.steps[-1] / int(run.config["trainer.max_epochs"])


def epochs_axis(run: Run, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of a metric logged at validation: the point measured after the k-th
    optimizer step is at epoch k / steps per epoch. figures reads val/ metrics at step k already;
    train/excess_loss, logged at validation under a train/ name, is read at TensorBoard's k - 1."""
    series = run.scalars[metric]
    steps = series.steps if logged_after_the_step(metric) else series.steps + 1
    return steps / steps_per_epoch(run), series.values


def last_epochs(run: Run, metric: str, epochs: int = FLOOR_EPOCHS) -> np.ndarray:
    """The values of a metric logged in the last `epochs` epochs of a run."""
    x, values = epochs_axis(run, metric)
    return values[x > x[-1] - epochs - 1e-9]


def final_runs(dataset: str) -> dict[str, list[Run]]:
    """The re-runs with fresh seeds of each method's best learning rate, by method."""
    found: dict[str, list[Run]] = {method: [] for method in METHODS}
    for regime in REGIMES:
        for run in find_runs([RUNS / f"tabular_logreg_{dataset}_{regime}_final"]):
            found[method_of(run)].append(run)
    return found


def search_runs(dataset: str) -> list[Run]:
    """Every run of the two searches of a dataset (every learning rate of the grid, every seed)."""
    return [run for regime in REGIMES for run in find_runs([RUNS / f"tabular_logreg_{dataset}_{regime}"])]


def grid() -> list[float]:
    sweep = yaml.safe_load((HERE / "configs/sweeps/tabular_logreg_breast_cancer_minibatch.yaml").read_text())
    return [float(lr) for lr in sweep["space"]["optimizer"]["sgd"]["optimizer.lr"]]


# --- the results table ------------------------------------------------------------------------


@dataclass
class Row:
    """One method on one dataset: its numbers over the re-runs."""

    dataset: str
    method: str
    lr: float
    seeds: int
    excess: list[float]  # final train/excess_loss of each seed
    distance: list[float]  # final val/dist_to_opt
    floor: list[float]  # mean excess loss over the last FLOOR_EPOCHS epochs
    to_target: list[list[float | None]]  # per target of TARGETS: each seed's first epoch at or below it (None: never)
    accuracy: list[float]  # final val/acc
    steps_per_epoch: float


def row_of(dataset: str, method: str, runs: list[Run]) -> Row:
    excess, distance, floor, accuracy = [], [], [], []
    to_target = [[] for _ in TARGETS]
    for run in runs:
        epochs, values = epochs_axis(run, "train/excess_loss")
        excess.append(float(values[-1]))
        floor.append(float(np.mean(last_epochs(run, "train/excess_loss"))))
        for target, seeds in zip(TARGETS, to_target, strict=True):
            below = np.nonzero(values <= target)[0]
            seeds.append(float(epochs[below[0]]) if len(below) else None)
        distance.append(float(run.scalars["val/dist_to_opt"].values[-1]))
        accuracy.append(float(run.scalars["val/acc"].values[-1]))
    lrs = {lr_of(run) for run in runs}
    assert len(lrs) == 1, f"{dataset} {method}: the re-runs differ in learning rate ({lrs})"
    return Row(dataset, method, lrs.pop(), len(runs), excess, distance, floor, to_target, accuracy,
               steps_per_epoch(runs[0]))


def rows() -> list[Row]:
    return [row_of(dataset, method, runs) for dataset in DATASETS
            for method, runs in final_runs(dataset).items() if runs]


def mean_std(values: list[float]) -> str:
    """mean ± standard deviation (ddof 1, as the template's tables), 3 significant digits."""
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    std = 0.0 if std <= 1e-9 * abs(mean) else std  # identical runs, up to rounding
    return f"{mean:.3g} ± {std:.2g}"


def reached(values: list[float | None]) -> str:
    hits = [value for value in values if value is not None]
    if len(hits) < len(values):
        return f"not reached ({len(values) - len(hits)}/{len(values)})"
    return mean_std(hits)


def table(found: list[Row]) -> str:
    lines = [
        "| data | method | lr | seeds | steps/epoch | excess loss, final | excess loss, mean of last 10 epochs | "
        "distance to optimum, final | epochs to excess loss 1e-3 | epochs to excess loss 1e-6 | val. accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in found:
        lines.append(f"| {row.dataset.replace('_', ' ')} | {row.method} | {row.lr:g} | {row.seeds} | "
                     f"{row.steps_per_epoch:g} | {mean_std(row.excess)} | {mean_std(row.floor)} | "
                     f"{mean_std(row.distance)} | {' | '.join(map(reached, row.to_target))} | {mean_std(row.accuracy)} |")
    lrs = grid()
    lines.append("")
    lines.append(f"Mean ± standard deviation over the 3 re-runs with fresh seeds (100, 101, 102) of each method's best "
                 f"learning rate on the common grid {lrs[0]:g} to {lrs[-1]:g}; 50 epochs each, float64, distances and "
                 "losses logged every other epoch. Full-batch runs draw nothing at random, hence ± 0. "
                 "Written by `uv run python plots.py`.")
    return "\n".join(lines) + "\n"


# --- curvature and the rate of gradient descent -------------------------------------------------


def hessian_eigenvalues(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of the objective's Hessian at theta = 0 and at theta* (float64), for the data
    and l2 of configs/tabular_logreg_<dataset>.yaml; theta* by the module's own solver."""
    config = yaml.safe_load((HERE / f"configs/tabular_logreg_{dataset}.yaml").read_text())
    data = TabularDataModule(**config["data"]["init_args"])
    (x, y), _, _ = data.load()
    if data.hparams.standardize:  # as TabularDataModule.setup does, with the training split's statistics
        x = (x - x.mean(dim=0)) / x.std(dim=0)
    l2 = float(config["model"]["init_args"]["l2"])
    model = TabularModel(loss="logistic", l2=l2, num_features=x.shape[1], num_classes=2)
    weight, bias, _ = model.solve(x, y)
    features = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)  # theta = (w, b)
    penalty = torch.diag(torch.tensor([l2] * x.shape[1] + [0.0], dtype=x.dtype))  # the bias is not penalised

    def eigenvalues(theta: torch.Tensor) -> np.ndarray:
        p = torch.sigmoid(features @ theta)
        hessian = features.T @ (features * (p * (1 - p))[:, None]) / len(x) + penalty
        return torch.linalg.eigvalsh(hessian).numpy()

    return eigenvalues(torch.zeros(features.shape[1], dtype=x.dtype)), eigenvalues(torch.cat([weight[0], bias]))


def measured_rate(run: Run, epochs: int = FLOOR_EPOCHS) -> float:
    """Per-step contraction of ||theta - theta*|| over a full-batch run's last `epochs` epochs."""
    x, values = epochs_axis(run, "val/dist_to_opt")
    start = int(np.argmin(np.abs(x - (x[-1] - epochs))))
    steps = (x[-1] - x[start]) * steps_per_epoch(run)
    return float((values[-1] / values[start]) ** (1 / steps))


def conditioning_table() -> str:
    lines = ["| data | Hessian eigenvalues at θ = 0 | at θ* | condition number at θ* | GD's lr | "
             "predicted rate max\\|1 − lr·λ\\| | measured rate (last 10 steps) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for dataset in DATASETS:
        start, optimum = hessian_eigenvalues(dataset)
        gd = final_runs(dataset)["GD"]
        lr = lr_of(gd[0])
        predicted = float(np.max(np.abs(1 - lr * optimum)))
        lines.append(f"| {dataset.replace('_', ' ')} | {start[0]:.3g} to {start[-1]:.3g} | {optimum[0]:.3g} to "
                     f"{optimum[-1]:.3g} | {optimum[-1] / optimum[0]:.3g} | {lr:g} | {predicted:.3f} | "
                     f"{measured_rate(gd[0]):.3f} |")
    lines.append("")
    lines.append("Eigenvalues of the Hessian of F(θ) = mean logistic loss + l2/2 ‖w‖² (θ = (w, b)), computed in "
                 "float64 by `uv run python plots.py`; a rate is the factor by which ‖θ − θ*‖ shrinks per step.")
    return "\n".join(lines) + "\n"


def floor_table() -> str:
    lines = ["| SGD's lr | " + " | ".join(f"{dataset.replace('_', ' ')}: mean excess loss, last 10 epochs"
                                         for dataset in DATASETS) + " |",
             "| --- |" + " --- |" * len(DATASETS)]
    runs = {dataset: [run for run in search_runs(dataset) if method_of(run) == "SGD"] for dataset in DATASETS}
    for lr in grid():
        cells = []
        for dataset in DATASETS:
            these = [run for run in runs[dataset] if lr_of(run) == lr]
            diverged = [run for run in these if has_diverged(run, "train/excess_loss")]
            if diverged:
                cells.append(f"diverged ({len(diverged)}/{len(these)})")
            else:
                cells.append(mean_std([float(np.mean(last_epochs(run, "train/excess_loss"))) for run in these]))
        lines.append(f"| {lr:g} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("The search runs of the mini-batch sweeps (batches of 32, 50 epochs), mean ± standard deviation "
                 "over seeds 0, 1, 2. Written by `uv run python plots.py`.")
    return "\n".join(lines) + "\n"


# --- figures ----------------------------------------------------------------------------------------


def style():
    from matplotlib import rc_context

    return rc_context({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                       "axes.grid": True, "grid.alpha": 0.3, "savefig.dpi": 150})


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure, name: str) -> None:
    for suffix in ("png", "pdf"):
        figure.savefig(OUT / f"{name}.{suffix}", bbox_inches="tight")
    print(f"wrote figures/{name}.png and .pdf")


def draw_curves() -> None:
    with style():
        figure = new_figure(7.0, 5.4)
        axes = figure.subplots(len(DATASETS), len(METRICS), sharex=True)
        for i, dataset in enumerate(DATASETS):
            for method, runs in final_runs(dataset).items():
                for j, metric in enumerate(METRICS):
                    if not runs:
                        continue
                    x = epochs_axis(runs[0], metric)[0]
                    stacked = np.stack([epochs_axis(run, metric)[1] for run in runs])
                    axes[i, j].plot(x, stacked.mean(axis=0), color=COLORS[method], lw=1.4, marker=".", ms=3,
                                    label=f"{method} (lr {lr_of(runs[0]):g})")
                    axes[i, j].fill_between(x, stacked.min(axis=0), stacked.max(axis=0), color=COLORS[method],
                                            alpha=0.2, lw=0)
            for j, metric in enumerate(METRICS):
                axes[i, j].set_yscale("log")
                axes[i, j].set_title(DATASETS[dataset], fontsize=8.5)
                axes[i, j].set_ylabel(METRICS[metric])
                if i == len(DATASETS) - 1:
                    axes[i, j].set_xlabel("epochs (passes over the training set)")
            axes[i, 0].legend(fontsize=7, loc="lower left")
        save(figure, "logreg_curves")


def draw_sensitivity() -> None:
    with style():
        figure = new_figure(7.0, 3.0)
        axes = figure.subplots(1, len(DATASETS), sharey=True)
        for ax, dataset in zip(axes, DATASETS, strict=True):
            runs = search_runs(dataset)
            finals = final_runs(dataset)
            top = max(float(run.scalars["val/dist_to_opt"].values[-1]) for run in runs
                      if not has_diverged(run, "val/dist_to_opt"))
            for method in METHODS:
                mine = [run for run in runs if method_of(run) == method]
                lrs = sorted({lr_of(run) for run in mine})
                means, lows, highs, diverged = [], [], [], []
                for lr in lrs:
                    at = [run for run in mine if lr_of(run) == lr]
                    if any(has_diverged(run, "val/dist_to_opt") for run in at):
                        means.append(np.nan), lows.append(np.nan), highs.append(np.nan), diverged.append(lr)
                        continue
                    values = [float(run.scalars["val/dist_to_opt"].values[-1]) for run in at]
                    means.append(np.mean(values)), lows.append(min(values)), highs.append(max(values))
                ax.plot(lrs, means, color=COLORS[method], marker="o", ms=3, lw=1.3, label=method)
                ax.fill_between(lrs, lows, highs, color=COLORS[method], alpha=0.2, lw=0)
                if diverged:
                    ax.plot(diverged, [top * 3] * len(diverged), color=COLORS[method], marker="x", ls="none")
                if finals[method]:
                    best = lr_of(finals[method][0])
                    ax.plot([best], [means[lrs.index(best)]], color=COLORS[method], marker="*", ms=11, ls="none")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(DATASETS[dataset], fontsize=8.5)
            ax.set_xlabel("learning rate (the same grid for every method)")
        axes[0].set_ylabel("distance to optimum after 50 epochs")
        axes[0].legend(fontsize=7, loc="lower left", title="x: diverged, ★: re-run", title_fontsize=7)
        save(figure, "logreg_sensitivity")


def draw_sgd_floor() -> None:
    shades = ["#fc9272", "#ef3b2c", "#a50f15", "#4a0008"]
    with style():
        figure = new_figure(7.0, 2.9)
        axes = figure.subplots(1, len(DATASETS))
        for ax, dataset in zip(axes, DATASETS, strict=True):
            sgd = [run for run in search_runs(dataset) if method_of(run) == "SGD"]
            for lr, shade in zip(FLOOR_LRS, shades, strict=True):
                runs = [run for run in sgd if lr_of(run) == lr]
                if not runs:
                    continue
                x = epochs_axis(runs[0], "train/excess_loss")[0]
                mean = np.stack([epochs_axis(run, "train/excess_loss")[1] for run in runs]).mean(axis=0)
                ax.plot(x, mean, color=shade, lw=1.3, marker=".", ms=3, label=f"SGD lr {lr:g} (seeds 0-2)")
            gd = final_runs(dataset)["GD"]
            if gd:
                x, values = epochs_axis(gd[0], "train/excess_loss")
                ax.plot(x, values, color=COLORS["GD"], ls="--", lw=1.4, label=f"GD lr {lr_of(gd[0]):g}")
            ax.set_yscale("log")
            ax.set_title(DATASETS[dataset], fontsize=8.5)
            ax.set_xlabel("epochs (passes over the training set)")
            ax.set_ylabel("excess training loss")
            ax.legend(fontsize=7, loc="lower left")
        save(figure, "logreg_sgd_floor")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    found = rows()
    if not found:
        raise SystemExit("no runs in runs/tabular_logreg_*_final/: run the sweeps first (bash reproduce.sh)")
    tables = {"results": table(found), "conditioning": conditioning_table(), "sgd_floor": floor_table()}
    for name, text in tables.items():
        (OUT / f"logreg_{name}.md").write_text(text)
        print(f"wrote figures/logreg_{name}.md")
        for document in ("report.md", "slides/slides.md") if name == "results" else ("report.md",):
            if embed_table(HERE / document, text, f"<!-- logreg:{name}:start -->", f"<!-- logreg:{name}:end -->"):
                print(f"  and into {document}")
    draw_curves()
    draw_sensitivity()
    draw_sgd_floor()
    by_method = {(row.dataset, row.method): row for row in found}
    for dataset in DATASETS:
        gd, sgd = by_method.get((dataset, "GD")), by_method.get((dataset, "SGD"))
        if gd and sgd:
            print(f"{dataset}: GD's final excess loss {np.mean(gd.excess):.3g} is {np.mean(sgd.floor) / np.mean(gd.excess):.3g}"
                  f" times below SGD's floor {np.mean(sgd.floor):.3g} (lr {sgd.lr:g}, last {FLOOR_EPOCHS} epochs)")


if __name__ == "__main__":
    main()
