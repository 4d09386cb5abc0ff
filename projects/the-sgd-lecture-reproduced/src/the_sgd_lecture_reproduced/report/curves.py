"""A metric of a group of runs against an x axis (steps, epochs, samples or seconds): the mean
over the group's seeds and their range, smoothed as TensorBoard smooths (pandas' ewm).

    from the_sgd_lecture_reproduced.report.curves import group_curve
    curve = group_curve(group, "val/loss", "samples")  # curve.x, curve.mean, curve.low, curve.high, curve.n
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .groups import Group
from .runs import Run, Series

X_AXES = {
    "step": "optimizer steps",
    "epoch": "epochs",
    "samples": "training samples seen",
    "time": "wall-clock time (s)",
}


def batch_size_of(run: Run) -> float | None:
    """Samples per optimizer step, from the run's config: batch size x devices x nodes x accumulation.

    The batch size is what the run's data class declares (`samples_per_step`, a function of its
    settings: see run/families.py), else its `batch_size` setting (the data's, else the model's).
    None when it is not known (a full-batch run on data whose size the config does not give): the
    run then has no samples axis rather than a wrong one.
    """
    from ..run.families import declared  # (imports the data's class, and so Lightning, only here)

    rule = declared(run.config.get("data.class_path"), "samples_per_step", None)
    if rule is not None:
        size = rule({key.removeprefix("data.init_args."): value for key, value in run.config.items()
                     if key.startswith("data.init_args.")})
    else:
        keys = ("data.init_args.batch_size", "data.batch_size", "model.init_args.batch_size")
        size = next((run.config[key] for key in keys if isinstance(run.config.get(key), int)), None)
    if not isinstance(size, int):
        return None
    devices = run.config.get("trainer.devices", 1)
    devices = devices if isinstance(devices, int) and devices > 0 else 1
    nodes = run.config.get("trainer.num_nodes", 1) or 1
    accumulate = run.config.get("trainer.accumulate_grad_batches", 1) or 1
    return float(size * devices * nodes * accumulate)


def x_values(run: Run, series: Series, x: str) -> np.ndarray | None:
    """The x coordinates of `series` on axis `x`, or None when the run cannot provide them."""
    if x == "step":
        return series.steps
    if x == "time":
        start = min(s.times.min() for s in run.scalars.values() if len(s.times))
        return series.times - start
    if x == "samples":
        size = batch_size_of(run)
        return None if size is None else series.steps * size
    if x == "epoch":
        epochs = run.scalars.get("epoch")
        if epochs is None or not len(epochs.steps):
            return None
        # Lightning logs the current epoch beside the metrics of each epoch's end, one step early
        # (see logged_after_the_step): there the steps taken, step + 1, are (e + 1) x steps per
        # epoch, the largest ratio of all. (A test after training logs the last epoch at the steps
        # taken, a ratio just above: floor, as an epoch has a whole number of steps.)
        steps_per_epoch = max(float(np.floor(np.max((epochs.steps + 1) / (epochs.values + 1)))), 1.0)
        return series.steps / steps_per_epoch
    raise ValueError(f"unknown x axis {x!r}: choose one of {', '.join(X_AXES)}")


def smoothed(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing, a debiased exponential moving average: pandas' ewm with alpha = 1 - weight
    (adjust=True is the debiasing); weight 0 changes nothing."""
    if weight <= 0:
        return values
    return pd.Series(values, dtype=float).ewm(alpha=1 - weight).mean().to_numpy()


@dataclass
class Curve:
    """A group's metric against x: mean over its runs, the lowest and highest run, how many runs."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: int

def group_curve(group: Group, metric: str, x: str, smooth: float = 0.0) -> Curve | None:
    """`metric` of the group's runs against `x`, or None if no run has it on axis `x`.

    Runs with identical x coordinates are averaged point by point; otherwise (wall time, for
    instance) they are interpolated onto the x coordinates of the shortest run, over the range
    all runs cover. The mean, lowest and highest run at each x: pandas' groupby.
    """
    curves = []
    for run in group.runs:
        series = run.scalars.get(metric)
        if series is None or not len(series.values):
            continue
        xs = x_values(run, series, x)
        if xs is not None:
            curves.append((xs, smoothed(series.values, smooth)))
    if not curves:
        return None
    grid = curves[0][0]
    if not all(len(xs) == len(grid) and np.allclose(xs, grid) for xs, _ in curves):
        low, high = max(xs.min() for xs, _ in curves), min(xs.max() for xs, _ in curves)
        grid = min((xs for xs, _ in curves), key=len)
        grid = grid[(grid >= low) & (grid <= high)]
        curves = [(grid, np.interp(grid, xs, ys)) for xs, ys in curves]
    points = pd.concat([pd.DataFrame({"x": grid, "y": ys}) for _, ys in curves])
    stats = points.groupby("x", sort=True)["y"].agg(["mean", "min", "max"])
    return Curve(stats.index.to_numpy(), *(stats[column].to_numpy() for column in ("mean", "min", "max")), len(curves))
