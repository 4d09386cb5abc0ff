"""Compare optimizers from a sweep's runs: learning-rate sensitivity, best runs, and a results table.

    # a sweep file: reads runs/<name>/ (and runs/<name>_final/ when present)
    uv run python -m {{ cookiecutter.package_name }}.compare --sweep configs/sweeps/<name>.yaml
    # a folder of runs, with what to compare given on the command line ([--by optimizer] [--x optimizer.lr]
    # are the defaults: one line per optimizer, its learning rate on the x axis)
    uv run python -m {{ cookiecutter.package_name }}.compare runs/<folder> --metric val/acc --mode max --target 0.95
    uv run python -m {{ cookiecutter.package_name }}.compare runs/<folder> --by optimizer --x optimizer.lr
    # each run's best value instead of its final one, into another folder
    uv run python -m {{ cookiecutter.package_name }}.compare --sweep configs/sweeps/<name>.yaml --summary best --out figures/best
    uv run python -m {{ cookiecutter.package_name }}.compare --help

Which runs: every run folder (config.yaml and TensorBoard events) under runs/<name>/, the trials
of the sweep, and under runs/<name>_final/, the best setting of each optimizer re-run with fresh
seeds. Other files there (the sweep's study storage) and fast_dev_run runs are left out. With
--sweep, the metric, mode (max or min), summary (final or best), target and the compared key
come from the sweep file; options given on the command line win. Without a sweep file the
metric and mode default to the runs' `checkpoint.monitor` and `checkpoint.mode`.

What each run contributes: its summary value, the `final` (last logged) or `best` (highest for
--mode max, lowest for min) value of the metric; whether it diverged (it logged the scalar
`diverged`, or its metric is not a finite number); and the optimizer step and the seconds of
wall-clock time (since the run's first event) at which the metric first reached the target
(>= it for max, <= for min). Runs whose configs differ only in the seed are one setting. A run
that stopped before its last epoch without diverging (a sweep with `prune: true` stops hopeless
runs) is left out of the numbers too, and drawn as an o beside the x's.

What it writes into --out (figures/ by default), each file named after the sweep:
- <name>_sensitivity.png / .pdf: the summary metric against the learning rate (log axis), one
  line per optimizer (per value of --by): the mean over seeds, the range from the lowest to the
  highest seed shaded. A run that diverged is not a number to average: it is an x at the bottom
  edge (for min: the top edge) at its learning rate, and "diverged" is in the legend. Where
  other settings were swept too, each point is the best setting at that learning rate.
- <name>_best_steps.png / .pdf and <name>_best_time.png / .pdf: the metric of each optimizer's
  best setting against optimizer steps and against wall-clock seconds (mean and range over its
  seeds; the target as a dotted line). The best setting has the best mean summary value over
  its seeds among the settings where no seed diverged; when runs/<name>_final/ has re-runs of
  an optimizer, those are drawn instead, as the protocol reports them.
- <name>_results.md / .tex: one row per optimizer: its best setting, the number of seeds, the
  final and best metric (mean ± standard deviation over seeds), and the steps and seconds to
  reach the target (mean ± standard deviation, or "not reached (k/n)" when k of the n seeds
  never reached it). Rows come from the _final re-runs when there are any.
The table is also copied into report.md and slides/slides.md between the markers
`<!-- compare:results:start -->` and `<!-- compare:results:end -->`, where those exist.

How optimizers are named: the lowercase name train.py's --optimizer uses (optim.OPTIMIZERS) for
the run's class and arguments, so torch.optim.SGD is `sgd`, `momentum` (momentum > 0) or
`nesterov` (nesterov: true); a class of your own is its class name in lowercase.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .figures import plot_metrics, x_values
from .groups import (
    Group,
    class_name,
    configuration,
    differing_keys,
    fit,
    is_class_key,
    settings_of,
    short_keys,
    short_number,
    show,
)
from .metrics import higher_is_better
from .runs import Run, find_runs, is_fast_dev_run
from .style import ONE_COLUMN, PANEL_HEIGHT, STYLE, add_legend, legend_label, save, words
from .tables import embed_table, format_cell, latex, markdown

TABLE_START = "<!-- compare:results:start -->"
TABLE_END = "<!-- compare:results:end -->"
# Config keys that differ between a sweep's trials and its re-runs without changing the setting.
LOGGER_KEYS = ("trainer.logger.init_args.name", "trainer.logger.name", "trainer.logger.init_args.save_dir")
DIVERGED_TAG = "diverged"
ZERO_MARKER = dict(marker="v", markersize=5, markeredgecolor="white", markeredgewidth=0.5, linestyle="none")
DIVERGED_MARKER = dict(marker="X", markersize=6, markeredgecolor="white", markeredgewidth=0.5, linestyle="none")
STOPPED_MARKER = dict(marker="o", markersize=5, markerfacecolor="white", markeredgewidth=1.2, linestyle="none")


@dataclass
class Options:
    """What to compare, from the sweep file and the command line."""

    name: str
    folder: Path  # the sweep's runs
    final: Path  # the re-runs with fresh seeds (may not exist)
    metric: str
    mode: str  # max or min
    summary: str = "final"  # final or best
    target: float | None = None
    by: str = "optimizer"
    x: str = "optimizer.lr"
    order: list[str] = field(default_factory=list)  # the compared values in the sweep file's order, as named here


@dataclass
class Setting:
    """Runs of one configuration (up to the seed): one point of the sensitivity plot, one table row."""

    choice: str  # the value of the compared key, as a short name (adam, momentum, ...)
    runs: list[Run]
    config: dict[str, object] = field(default_factory=dict)
    x: float | None = None
    label: str = ""  # what tells it from the other settings of its choice (lr=1e-3)
    values: list[float] = field(default_factory=list)  # the summary value of each run that did not diverge
    diverged: int = 0  # how many of its runs diverged
    stopped: int = 0  # how many stopped early without diverging (a sweep with `prune: true` stops hopeless runs)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan


# Reading a run


def resolve(flag: str, config: dict[str, object]) -> str | None:
    """The flattened config key that a train.py flag names: `optimizer.lr` ->
    `model.init_args.optimizer.init_args.lr`, `optimizer` -> `model.init_args.optimizer.class_path`,
    `data.batch_size` -> `data.init_args.batch_size`. None when the config has no such key.
    """
    plain = {key: ".".join(part for part in key.split(".") if part != "init_args") for key in config}
    flag = ".".join(part for part in flag.split(".") if part != "init_args")  # the long form names it too
    for wanted in (flag, f"model.{flag}", f"data.{flag}"):
        for candidate in (wanted, f"{wanted}.class_path"):
            for key, name in plain.items():
                if name == candidate:
                    return key
    endings = [key for key, name in plain.items() if name.endswith(f".{flag}") or name.endswith(f".{flag}.class_path")]
    return endings[0] if len(endings) == 1 else None


def optimizer_name(class_path: str, arguments: dict[str, object]) -> str:
    """The --optimizer name of a class and its arguments: SGD -> sgd, momentum or nesterov.

    Among the names of optim.OPTIMIZERS with this class, the one whose starting values (other than
    learning rates) the arguments share most, where sharing means equal for a word (preconditioner
    newton) and, for a number or a switch, both zero/false or both not (momentum 0.95 is still
    `momentum`); a class that is not there: its name in lowercase.
    """

    def shares(key: str, start: object) -> bool:
        if key not in arguments:
            return False
        return arguments[key] == start if isinstance(start, str) else bool(arguments[key]) == bool(start)

    from .optim import OPTIMIZERS

    best, matched = class_name(class_path).lower(), -1
    for name, (path, starting) in OPTIMIZERS.items():
        if path != class_path:
            continue
        keys = [key for key in starting if key != "lr" and not key.endswith("_lr")]
        if all(shares(key, starting[key]) for key in keys) and len(keys) > matched:
            best, matched = name, len(keys)
    return best


def choice_of(run: Run, by: str) -> str | None:
    """The value of the compared key in a run, in short: an optimizer's name, else key=value."""
    key = resolve(by, run.config)
    if key is None:
        return None
    value = run.config[key]
    if is_class_key(key):
        prefix = key.removesuffix("class_path") + "init_args."
        arguments = {k.removeprefix(prefix): v for k, v in run.config.items() if k.startswith(prefix)}
        return optimizer_name(str(value), arguments) if "optimizer" in key.split(".") else class_name(value).lower()
    return f"{by.rsplit('.', 1)[-1]}={show(value)}"


def sweep_order(space: object, by: str) -> list[str]:
    """The values of `by` in a sweep's space, in the file's order, named as choice_of names them."""
    values = space.get(by) if isinstance(space, dict) else None
    values = list(values) if isinstance(values, (dict, list)) else []
    return [name for value in values for name in (str(show(value)).lower(), f"{by.rsplit('.', 1)[-1]}={show(value)}")]


def choice_order(choice: str, order: list[str]) -> tuple:
    """Where a compared value goes: the sweep file's order, else by number (batch_size=4 before 16), else by name."""
    number = choice.rpartition("=")[2]
    try:
        value = float(number)
    except ValueError:
        value = math.inf
    return (order.index(choice) if choice in order else len(order), value, choice)


def number_at(run: Run, flag: str) -> float | None:
    key = resolve(flag, run.config)
    value = run.config.get(key) if key else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def has_diverged(run: Run, metric: str) -> bool:
    """Whether the run logged `diverged` (train.py does when the loss blows up) or a non-finite metric."""
    flag = run.scalars.get(DIVERGED_TAG)
    if flag is not None and len(flag.values) and np.nanmax(flag.values) > 0:
        return True
    series = run.scalars.get(metric)
    return series is not None and not np.all(np.isfinite(series.values))


def stopped_early(run: Run) -> bool:
    """Whether the run ended before its last epoch (trainer.max_epochs) without diverging: a sweep
    with `prune: true` stops hopeless runs so, and an interrupted run looks the same. Not decided
    (False) for runs limited by trainer.max_steps or without the `epoch` scalar."""
    max_epochs, max_steps, epochs = (run.config.get("trainer.max_epochs"), run.config.get("trainer.max_steps"),
                                     run.scalars.get("epoch"))
    if not isinstance(max_epochs, int) or max_epochs <= 0 or (isinstance(max_steps, int) and max_steps > 0):
        return False
    return epochs is not None and len(epochs.values) > 0 and float(np.max(epochs.values)) < max_epochs - 1


def final_value(run: Run, metric: str) -> float | None:
    series = run.scalars.get(metric)
    return float(series.values[-1]) if series is not None and len(series.values) else None


def best_value(run: Run, metric: str, mode: str) -> float | None:
    series = run.scalars.get(metric)
    if series is None or not len(series.values):
        return None
    return float(np.nanmax(series.values) if mode == "max" else np.nanmin(series.values))


def summary_value(run: Run, options: Options) -> float | None:
    if options.summary == "best":
        return best_value(run, options.metric, options.mode)
    return final_value(run, options.metric)


def time_to_target(run: Run, metric: str, target: float, mode: str) -> tuple[float, float] | None:
    """(optimizer step, seconds since the run's first event) of the first logged point of `metric`
    at or past `target` (>= for max, <= for min); None if the run never reached it."""
    series = run.scalars.get(metric)
    if series is None or not len(series.values):
        return None
    reached = series.values >= target if mode == "max" else series.values <= target
    if not reached.any():
        return None
    first = int(np.argmax(reached))
    return float(series.steps[first]), float(x_values(run, series, "time")[first])


# Settings


def setting_key(run: Run) -> tuple:
    """A run's configuration without its seed, bookkeeping, and the folder it logged into."""
    return tuple(item for item in configuration(run) if item[0] not in LOGGER_KEYS)


def make_settings(runs: list[Run], options: Options, notes: list[str]) -> list[Setting]:
    """The runs grouped into settings (same configuration up to the seed), with their numbers."""
    by_key: dict[tuple, Setting] = {}
    skipped = []
    for run in runs:
        choice = choice_of(run, options.by)
        if choice is None:
            skipped.append(run)
            continue
        setting = by_key.setdefault(setting_key(run), Setting(choice=choice, runs=[], x=number_at(run, options.x)))
        setting.runs.append(run)
        setting.config = {key: value for key, value in settings_of(run).items() if key not in LOGGER_KEYS}
    if skipped:
        notes.append(f"{len(skipped)} run(s) have no {options.by!r} in their config.yaml; left out "
                     f"({', '.join(str(run.path) for run in skipped[:3])}{', ...' if len(skipped) > 3 else ''})")
    for setting in by_key.values():
        for run in setting.runs:
            value = summary_value(run, options)
            if has_diverged(run, options.metric):
                setting.diverged += 1
            elif stopped_early(run):
                setting.stopped += 1
            elif value is None:
                notes.append(f"{run.path}: logged no {options.metric}; left out of the numbers")
            else:
                setting.values.append(value)
    return sorted(by_key.values(), key=lambda s: (choice_order(s.choice, options.order), math.inf if s.x is None else s.x,
                                                  str(s.runs[0].path)))


def label_settings(settings: list[Setting], options: Options, reruns: list[Setting] = ()) -> None:
    """Label each setting by what differs between the sweep's settings of its choice: `lr=1e-3 wd=0.1`.

    Re-runs are labelled with the same keys (their configs may differ from the sweep's in what the
    sweep adds to its own runs, such as a pruning callback).
    """
    for choice in dict.fromkeys(setting.choice for setting in [*settings, *reruns]):
        mine = [setting for setting in settings if setting.choice == choice]
        again = [setting for setting in reruns if setting.choice == choice]
        keys = [key for key in differing_keys([s.config for s in mine or again]) if not is_class_key(key)]
        x_key = resolve(options.x, (mine or again)[0].config)
        if not keys and x_key:
            keys = [x_key]  # one setting: still say its learning rate
        names = short_keys(keys)
        for setting in mine + again:
            parts = [f"{names[key]}={show(setting.config[key])}" for key in keys if key in setting.config]
            setting.label = fit(parts) if parts else choice


def better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def rank(setting: Setting, mode: str) -> tuple[float, float]:
    """Smaller is better: first the share of runs that diverged or stopped early, then the mean."""
    return (setting.diverged + setting.stopped) / len(setting.runs), -setting.mean if mode == "max" else setting.mean


def best_settings(settings: list[Setting], mode: str) -> dict[str, Setting]:
    """The best setting of each choice: the best mean summary value among those where every seed
    finished (if none did: among those with the fewest that diverged or stopped early)."""
    best: dict[str, Setting] = {}
    for setting in settings:
        if not setting.values:
            continue
        old = best.get(setting.choice)
        if old is None or rank(setting, mode) < rank(old, mode):
            best[setting.choice] = setting
    return best


# Figures


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


# The table


def target_cell(reached: list[float | None]) -> str:
    """The steps or seconds to target over seeds, or `not reached (k/n)`: k of n seeds never did."""
    missing = sum(value is None for value in reached)
    if missing or not reached:
        return f"not reached ({missing}/{len(reached)})"
    return format_cell([float(value) for value in reached])


def table(rows_from: dict[str, tuple[Setting, str]], options: Options) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, run folders behind each row): one row per choice."""
    metric = options.metric
    header = [options.by.rsplit(".", 1)[-1], "setting", "seeds", f"final {metric}", f"best {metric}"]
    if options.target is not None:
        header += [f"steps to {short_number(options.target)}", f"seconds to {short_number(options.target)}"]
    rows, sources = [], []
    for choice, (setting, source) in rows_from.items():
        finished = [run for run in setting.runs if not has_diverged(run, metric) and not stopped_early(run)]
        failed = [f"{count} {what}" for count, what in ((setting.diverged, "diverged"), (setting.stopped, "stopped early"))
                  if count]
        seeds = str(len(setting.runs)) + (f" ({', '.join(failed)})" if failed else "")
        finals = [v for v in (final_value(run, metric) for run in finished) if v is not None]
        bests = [v for v in (best_value(run, metric, options.mode) for run in finished) if v is not None]
        row = [choice.removeprefix(f"{header[0]}="), setting.label, seeds, format_cell(finals), format_cell(bests)]
        if options.target is not None:
            reached = [time_to_target(run, metric, options.target, options.mode) for run in setting.runs]
            row += [target_cell([None if r is None else r[0] for r in reached]),
                    target_cell([None if r is None else r[1] for r in reached])]
        rows.append(row)
        sources.append(f"{source}: `" + ", ".join(str(run.path) for run in setting.runs) + "`")
    return header, rows, sources


def explanation(rows_from: dict[str, tuple[Setting, str]], header: list[str], rows: list[list[str]],
                options: Options, trials: int) -> str:
    """The sentences under the table: where the numbers come from, and how to cite them."""
    finals = [row[0] for row, (_, source) in zip(rows, rows_from.values(), strict=True) if source == "final"]
    sweeps = [row[0] for row, (_, source) in zip(rows, rows_from.values(), strict=True) if source == "sweep"]
    direction = "highest" if options.mode == "max" else "lowest"
    text = (f"The setting of each {header[0]} is the one with the {direction} mean {options.summary} "
            f"{words(options.metric)} ({options.metric}) over seeds among the {trials} runs of the sweep in "
            f"{options.folder}. ")
    if finals:
        text += (f"The numbers of {joined(finals)} are from re-runs of that setting with fresh seeds "
                 f"({options.final}){', those of ' + joined(sweeps) + ' from the sweep itself' if sweeps else ''}. ")
    # n: the runs behind a row's numbers (its seeds, less those that diverged or stopped early)
    counts = [len(setting.runs) - setting.diverged - setting.stopped for setting, _ in rows_from.values()]
    example = next((i for i, row in enumerate(rows) if "±" in row[3]), None)
    if example is not None:
        text += (f"Each cell is the mean ± standard deviation over the row's seeds; cite it with their number, e.g. "
                 f"{rows[example][0]}: {rows[example][3]} ({header[3]}, mean ± standard deviation over "
                 f"{counts[example]} seeds)")
        text += "." if len(set(counts)) == 1 else " (the seeds column gives n for the other rows)."
    else:
        text += "Each row has one seed: no standard deviation; re-run with more seeds before you compare."
    if options.target is not None:
        sign = ">=" if options.mode == "max" else "<="
        text += (f" Steps and seconds to target: the first logged {options.metric} {sign} "
                 f"{short_number(options.target)} (seconds of wall-clock time since the run's first event); "
                 "\"not reached (k/n)\": k of the n seeds never got there.")
    return text + "\n"


def joined(names: list[str]) -> str:
    """a, b and c."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


# The command


def load_options(args: argparse.Namespace, notes: list[str]) -> Options:
    """The sweep file's settings, overridden by the command line's; defaults from the runs' config."""
    sweep: dict = {}
    if args.sweep:
        if not Path(args.sweep).is_file():
            raise SystemExit(f"error: no sweep file {args.sweep} (the project's sweeps are in configs/sweeps/)")
        sweep = yaml.safe_load(Path(args.sweep).read_text()) or {}
        name = str(sweep.get("name") or Path(args.sweep).stem)
        folder = (args.root or runs_root(sweep.get("experiment"), Path(args.sweep))) / name
    else:
        folder, root = Path(args.runs), args.root or Path("runs")
        if not folder.is_dir() and (root / args.runs).is_dir():
            folder = root / args.runs
        name = folder.name
    final = folder.parent / f"{folder.name}_final"
    metric, mode = args.metric or sweep.get("metric"), args.mode or sweep.get("mode")
    if metric is None or mode is None:
        monitor = monitored(folder)
        if metric is None:
            metric = monitor[0] if monitor else "val/loss"
            notes.append(f"metric: {metric} (the runs' checkpoint.monitor; choose another with --metric)")
        if mode is None:
            mode = monitor[1] if monitor and monitor[0] == metric else (
                "max" if higher_is_better(metric) else "min")
    target = args.target if args.target is not None else sweep.get("target")
    by = str(args.by or sweep.get("compare") or "optimizer")
    return Options(name=name, folder=folder, final=final, metric=str(metric), mode=str(mode),
                   summary=str(args.summary or sweep.get("summary") or "final"),
                   target=None if target is None else float(target), by=by, x=str(args.x or "optimizer.lr"),
                   order=sweep_order(sweep.get("space"), by))


def runs_root(experiment: object, sweep_file: Path) -> Path:
    """Where a sweep's runs are: the save_dir of its experiment's logger (runs/ if none is set)."""
    root = Path("runs")
    for config in experiment if isinstance(experiment, list) else [experiment] if experiment else []:
        for folder in (Path.cwd(), *sweep_file.resolve().parents[:3]):  # as sweep.py looks for it
            if (folder / str(config)).is_file():
                logger = ((yaml.safe_load((folder / str(config)).read_text()) or {}).get("trainer") or {}).get("logger")
                if isinstance(logger, dict):
                    root = Path((logger.get("init_args") or {}).get("save_dir", root))
                break
    return root


def monitored(folder: Path) -> tuple[str, str] | None:
    """(checkpoint.monitor, checkpoint.mode) of the first config.yaml under `folder`."""
    for path in sorted(folder.rglob("config.yaml")):
        config = yaml.safe_load(path.read_text()) or {}
        checkpoint = config.get("checkpoint") or {}
        if checkpoint.get("monitor"):
            return str(checkpoint["monitor"]), str(checkpoint.get("mode") or "min")
    return None


def read_folder(folder: Path, notes: list[str]) -> list[Run]:
    """The runs under a folder, without fast_dev_run runs (their numbers mean nothing)."""
    if not folder.is_dir():
        return []
    runs = find_runs([folder], root=folder.parent)
    fast = [run for run in runs if is_fast_dev_run(run)]
    if fast:
        notes.append(f"{folder}: left out {len(fast)} fast_dev_run run(s)")
    return [run for run in runs if not is_fast_dev_run(run)]


def compare(options: Options, out: Path = Path("figures"), embed: list[Path] | None = None) -> dict[str, object]:
    """Everything the command does; returns what it wrote, its notes, settings, best settings and table."""
    if options.mode not in ("max", "min") or options.summary not in ("final", "best"):
        raise SystemExit(f"error: mode must be max or min (got {options.mode}), summary final or best (got {options.summary})")
    notes: list[str] = []
    runs = read_folder(options.folder, notes)
    if not runs:
        raise SystemExit(f"error: no runs in {options.folder}: run the sweep first (uv run python sweep.py --config ...), "
                         "or name the folder of its runs")
    if not any(options.metric in run.scalars for run in runs):
        logged = sorted({tag for run in runs for tag in run.scalars if "/" in tag})
        raise SystemExit(f"error: no run in {options.folder} logged {options.metric}; logged: {', '.join(logged)}")
    settings = make_settings(runs, options, notes)
    best = best_settings(settings, options.mode)
    finals = make_settings(read_folder(options.final, notes), options, notes)
    label_settings(settings, options, finals)
    choices = sorted({setting.choice for setting in settings + finals}, key=lambda c: choice_order(c, options.order))
    rows_from: dict[str, tuple[Setting, str]] = {}
    for choice in choices:
        reruns = best_settings([s for s in finals if s.choice == choice], options.mode)
        if choice in reruns:
            rows_from[choice] = (reruns[choice], "final")
        elif choice in best:
            rows_from[choice] = (best[choice], "sweep")
    for choice in dict.fromkeys(setting.choice for setting in settings):
        if choice not in rows_from:
            notes.append(f"{choice}: every run diverged, stopped early or logged no {options.metric}; no row in the table")
    diverged, stopped = sum(setting.diverged for setting in settings), sum(setting.stopped for setting in settings)
    if diverged:
        notes.append(f"{diverged} of {len(runs)} sweep runs diverged (marked x on the sensitivity plot)")
    if stopped:
        notes.append(f"{stopped} of {len(runs)} sweep runs stopped before their last epoch (pruned, or interrupted): "
                     "left out of the numbers, marked o on the sensitivity plot")
    if options.target is None:
        notes.append("no target: give --target (or `target:` in the sweep file) for the steps and seconds to reach it")

    written: list[Path] = []
    figure = plot_sensitivity(settings, choices, options, notes)
    if figure is not None:
        written += save(figure, out, f"{options.name}_sensitivity")
    # One group per choice, empty where it has no row, so that each keeps its colour (plot_metrics
    # colours a group by its place in the list).
    groups = [Group(label=choice, runs=rows_from[choice][0].runs if choice in rows_from else []) for choice in choices]
    for x, stem in (("step", "best_steps"), ("time", "best_time")):
        figure = plot_best(groups, options, x) if rows_from else None
        if figure is not None:
            written += save(figure, out, f"{options.name}_{stem}")
    header, rows, sources = table(rows_from, options)
    sentence = explanation(rows_from, header, rows, options, len(runs))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{options.name}_results.md").write_text(markdown(header, rows) + "\n" + sentence + "\n"
                                                    + markdown(header, rows, sources).split("\n\n", 1)[1])
    (out / f"{options.name}_results.tex").write_text(latex(header, rows) + "% " + sentence)
    written += [out / f"{options.name}_results.md", out / f"{options.name}_results.tex"]
    embedded = [doc for doc in (embed or []) if embed_table(doc, markdown(header, rows) + "\n" + sentence,
                                                            TABLE_START, TABLE_END)]
    return {"written": written, "notes": notes, "settings": settings, "finals": finals, "rows_from": rows_from,
            "header": header, "rows": rows, "embedded": embedded, "options": options}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="uv run python -m {{ cookiecutter.package_name }}.compare",
        description="Compare optimizers from a sweep's runs: sensitivity to the learning rate, the best run of each, "
                    "and a table of mean ± standard deviation over seeds.",
    )
    parser.add_argument("runs", nargs="?", default=None, metavar="FOLDER",
                        help="the folder of the sweep's runs (runs/<name>, or just <name>); or give --sweep")
    parser.add_argument("--sweep", type=Path, default=None,
                        help="a sweep file (configs/sweeps/<name>.yaml): its runs, metric, mode, summary and target")
    parser.add_argument("--metric", default=None, help="the metric compared, e.g. val/acc (default: the sweep's)")
    parser.add_argument("--mode", choices=["max", "min"], default=None, help="whether higher (max) or lower is better")
    parser.add_argument("--summary", choices=["final", "best"], default=None,
                        help="each run's number: its final or its best value of the metric (default: the sweep's, else final)")
    parser.add_argument("--target", type=float, default=None, help="the metric value for the steps and seconds to target")
    parser.add_argument("--by", default=None,
                        help="the train.py flag whose values are compared (default: the sweep's `compare`, else optimizer)")
    parser.add_argument("--x", default=None, help="the flag on the sensitivity plot's x axis (default: optimizer.lr)")
    parser.add_argument("--root", type=Path, default=None,
                        help="the folder of experiments (default: the sweep experiment's save_dir, else runs)")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: figures)")
    parser.add_argument("--embed", nargs="*", type=Path, default=[Path("report.md"), Path("slides/slides.md")],
                        help="markdown files whose compare:results markers receive the table "
                             "(default: report.md slides/slides.md; give none to skip)")
    args = parser.parse_args(argv)
    if (args.runs is None) == (args.sweep is None):
        parser.error("give either a sweep file (--sweep configs/sweeps/<name>.yaml) or the folder of its runs")
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    notes: list[str] = []
    options = load_options(args, notes)
    result = compare(options, args.out, args.embed)
    for note in notes + result["notes"]:
        print(f"note: {note}")
    settings = result["settings"]
    print(f"{sum(len(s.runs) for s in settings)} run(s) of {options.name} in {len(settings)} setting(s); "
          f"{options.summary} {options.metric}, {'higher' if options.mode == 'max' else 'lower'} is better")
    for choice, (setting, source) in result["rows_from"].items():
        seeds = f"{len(setting.runs)} seed{'s' if len(setting.runs) > 1 else ''}"
        print(f"  best {choice}: {setting.label} ({seeds}{', re-runs with fresh seeds' if source == 'final' else ''})")
    print(markdown(result["header"], result["rows"]), end="")
    print("wrote " + ", ".join(str(path) for path in result["written"]))
    if result["embedded"]:
        print("updated the comparison table in " + ", ".join(map(str, result["embedded"])))
    return result


if __name__ == "__main__":
    main()
