"""The figures of a comparison of optimizers (compare.py): the summary metric against the
learning rate, one line per optimizer (sensitivity), and each optimizer's best runs against steps
and seconds, with the target.

    figure = plot_sensitivity(settings, choices, options, notes)  # see compare.py for where these come from
    save(figure, Path("figures"), "my_sweep_sensitivity")
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .comparison import Options, Setting, better
from .figures import plot_metrics
from .groups import Group, fit, short_number
from .style import ONE_COLUMN, PANEL_HEIGHT, STYLE, add_legend, legend_label, words

ZERO_MARKER = dict(marker="v", markersize=5, markeredgecolor="white", markeredgewidth=0.5, linestyle="none")
DIVERGED_MARKER = dict(marker="X", markersize=6, markeredgecolor="white", markeredgewidth=0.5, linestyle="none")
STOPPED_MARKER = dict(marker="o", markersize=5, markerfacecolor="white", markeredgewidth=1.2, linestyle="none")


@dataclass
class Point:
    x: float
    mean: float
    low: float
    high: float
    seeds: int
    diverged: int
    stopped: int


def sensitivity_points(settings: list[Setting], mode: str) -> dict[str, list[Point]]:
    """For each choice, one point per x value: the best setting there (by mean), over its seeds."""
    points: dict[str, list[Point]] = {}
    for choice in dict.fromkeys(setting.choice for setting in settings):
        at: dict[float, list[Setting]] = {}
        for setting in settings:
            if setting.choice == choice and setting.x is not None:
                at.setdefault(setting.x, []).append(setting)
        line = []
        for x in sorted(at):
            finished = [s for s in at[x] if s.values]
            diverged, stopped = sum(s.diverged for s in at[x]), sum(s.stopped for s in at[x])
            if finished:
                best = finished[0]
                for s in finished[1:]:
                    if better(s.mean, best.mean, mode):
                        best = s
                line.append(Point(x, best.mean, min(best.values), max(best.values), len(best.values), diverged, stopped))
            else:
                line.append(Point(x, math.nan, math.nan, math.nan, 0, diverged, stopped))
        points[choice] = line
    return points


def log_y(points: dict[str, list[Point]]) -> bool:
    """A log y axis when the means are positive and span more than a factor of 20 (figures.py's rule),
    apart from means of exactly zero (a loss minus its minimum, reached), which are marked instead."""
    means = np.array([p.mean for line in points.values() for p in line if p.seeds], dtype=float)
    positive = means[means > 0]
    return bool(len(positive)) and means.min() >= 0 and positive.max() / positive.min() > 20


def x_words(flag: str) -> str:
    """The sensitivity plot's x label: `optimizer.lr` -> learning rate, others by their last part."""
    name = flag.rsplit(".", 1)[-1]
    return words(f"opt/{name}") if name in ("lr", "weight_decay") else name.replace("_", " ")


def plot_sensitivity(settings: list[Setting], choices: list[str], options: Options, notes: list[str]):
    """The summary metric against x (log axis), one line per choice: mean, range shaded, divergences marked.

    Diverged runs (x) and runs stopped early (o) are drawn at the worst edge (the bottom for --mode
    max, the top for min); on a log y axis, a mean of exactly 0 is a triangle at the bottom edge.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    points = sensitivity_points(settings, options.mode)
    points = {choice: line for choice, line in points.items() if line}
    if not points:
        notes.append(f"no run has {options.x!r} in its config: no sensitivity plot (choose another with --x)")
        return None
    xs = [point.x for line in points.values() for point in line]
    log_x = min(xs) > 0 and (options.x.endswith("lr") or max(xs) / min(xs) >= 10)
    log = log_y(points)
    with rc_context(STYLE):
        figure = Figure(figsize=(ONE_COLUMN, PANEL_HEIGHT), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.subplots()
        handles, edge_count, any_zero = [], {}, False
        worst_edge = 0.0 if options.mode == "max" else 1.0  # where a diverged run is drawn: the worst end
        for choice, line in points.items():
            color = f"C{choices.index(choice) % 10}"
            done = [point for point in line if point.seeds]
            zeros = [point for point in done if point.mean <= 0 and log]  # no place on a log axis: the line breaks
            any_zero = any_zero or bool(zeros)
            seeds = max((point.seeds + point.diverged + point.stopped for point in line), default=1)
            (handle,) = ax.plot([p.x for p in done], [math.nan if p in zeros else p.mean for p in done], color=color,
                                marker="o", markersize=3, label=legend_label(choice, seeds))
            handles.append(handle)
            if any(point.low < point.high for point in done):
                lows = [p.low if p.low > 0 or not log else math.nan if p in zeros else p.mean for p in done]
                ax.fill_between([p.x for p in done], lows, [p.high for p in done], color=color, alpha=0.2, linewidth=0)
            for point in line:
                for count, marker, edge in ((point.diverged, DIVERGED_MARKER, worst_edge),
                                            (point.stopped, STOPPED_MARKER, worst_edge),
                                            (point in zeros, ZERO_MARKER, 0.0)):
                    if count:  # at the edge, stacked inwards where several share an x
                        stacked = edge_count.get((point.x, edge), 0)
                        edge_count[point.x, edge] = stacked + 1
                        y = edge + (0.07 if edge == 0 else -0.07) * stacked
                        ax.plot([point.x], [y], color=color, transform=ax.get_xaxis_transform(), clip_on=False,
                                zorder=5, **marker)
        if log_x:
            ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        if any(point.diverged for line in points.values() for point in line):
            handles.append(Line2D([], [], color="0.4", label="diverged", **DIVERGED_MARKER))
        if any(point.stopped for line in points.values() for point in line):
            handles.append(Line2D([], [], color="0.4", label="stopped early", **STOPPED_MARKER))
        if any_zero:
            handles.append(Line2D([], [], color="0.4", label="exactly 0", **ZERO_MARKER))
        ax.set_title("learning-rate sensitivity" if options.x.rsplit(".", 1)[-1] == "lr"
                     else fit([f"sensitivity to {options.x.rsplit('.', 1)[-1]}"]))
        ax.set_xlabel(x_words(options.x))
        ax.set_ylabel(f"{options.summary} {words(options.metric)}")  # whole: an axis has room for it
        if len(handles) > 1:
            add_legend(figure, handles, [handle.get_label() for handle in handles])
    return figure


def plot_best(groups: list[Group], options: Options, x: str):
    """The metric of each choice's best runs against steps or time (figures.plot_metrics), with the target."""
    from matplotlib import rc_context

    figure = plot_metrics(groups, [options.metric], x=x)
    if figure is None:
        return figure
    if options.target is None:
        return figure
    with rc_context(STYLE):
        ax = figure.axes[0]
        handles = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        seen = {}
        for handle in handles:
            seen.setdefault(handle.get_color(), handle)  # one entry per group
        target = ax.axhline(options.target, color="0.3", linestyle=":", linewidth=1,
                            label=f"target {short_number(options.target)}")
        for legend in list(figure.legends):
            legend.remove()
        entries = [*seen.values(), target]
        add_legend(figure, entries, [entry.get_label() for entry in entries])
    return figure
