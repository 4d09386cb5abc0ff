"""Turn TensorBoard runs into report figures (PNG and PDF) and result tables (markdown, LaTeX).

    uv run python -m {{ cookiecutter.package_name }}.figures                      # every run under runs/, into figures/
    uv run python -m {{ cookiecutter.package_name }}.figures vision_digits        # the runs of one experiment (runs/vision_digits/)
    uv run python -m {{ cookiecutter.package_name }}.figures adam_lr3e-4 sgd_lr0.1  # runs by name (runs/*/adam_lr3e-4/, ...)
    uv run python -m {{ cookiecutter.package_name }}.figures 'runs/vision_*/adam*' 'sgd*'  # globs (quote them)
    uv run python -m {{ cookiecutter.package_name }}.figures vision_digits --exclude 'version_*' '*old*'
    uv run python -m {{ cookiecutter.package_name }}.figures --all                # keep fast_dev_run and short runs too
    uv run python -m {{ cookiecutter.package_name }}.figures vision_digits --metrics train/loss val/loss --x samples
    uv run python -m {{ cookiecutter.package_name }}.figures --x time --prefix sweep_  # figures/sweep_loss.png, ...
    uv run python -m {{ cookiecutter.package_name }}.figures objective_rosenbrock --animate  # also trajectories.gif
    uv run python -m {{ cookiecutter.package_name }}.figures --help

Which runs: a run is a folder runs/<experiment>/<run name>/ (the run name is version_N, or the
name you gave the run) with TensorBoard event files and the config.yaml it was made with. Each
argument is a folder (every run under it), an experiment name (runs/<name>/), a run name
(runs/*/<name>/), or a glob of any of these (`vision_*`, `adam*`, `runs/vision_*/adam*`); with
no argument, every run under runs/ (--root names another folder). `--exclude GLOB ...` leaves
out runs whose path, name or experiment matches. By default it also leaves out runs made with
`trainer.fast_dev_run` and runs whose last logged step is under a tenth of the longest selected
run's (crashed or interrupted runs); a note says how many and why, and `--all` keeps them.

What it writes into --out (figures/ by default; rerun it and report.md and the slides follow):
- loss.png / loss.pdf: training and validation loss side by side, one line per configuration;
- <metric>.png / .pdf for every metric plotted (val/acc -> val_acc.png, opt/lr -> opt_lr.png);
- trajectories.png / .pdf, when runs saved their path (trajectory.npz): the iterates over the
  contours of the objective (see Trajectories below);
- results.md and results.tex: the final (and, for val/ metrics, best) value of each metric
  per configuration, with the run folders behind each row.
The table is also copied into report.md and slides/slides.md between the markers
`<!-- figures:results:start -->` and `<!-- figures:results:end -->`, where those exist.
Sizes: a one-metric figure is 3.4 in wide (one column of a two-column paper), loss.png 7 in
(the page width); both read well on a 16:9 slide. The legend sits below the panels, outside
them, so it never takes room from the curves. Axes are labelled in words (`val/acc` ->
"validation accuracy", `opt/lr` -> "learning rate").

How runs are grouped and named: runs whose configs differ only in `seed_everything` (and in
bookkeeping: the run's `name`, the logger's version, `ckpt_path`) are repeats of one
configuration: they are drawn as their mean with the range over seeds shaded, and the table
gives mean +- standard deviation. Each configuration is labelled by the settings that differ
between the configurations plotted, in short: an optimizer or schedule by its class name in
lowercase, any other setting as key=value with the shortest key that is not ambiguous, as in
`adam lr=3e-4` and `sgd lr=0.1 momentum=0.9`. Labels stay under 30 characters: the command
prints what each short key stands for and the full settings behind any label it had to cut.
A metric that a run did not log is skipped with a note.

Theory lines: a run may log what theory predicts as scalar tags `theory/<name>` (the objective
family does): each panel of `<stage>/<name>` shows them as dashed lines in the configuration's
colour (theory/noise_floor and theory/rate_bound on the suboptimality panels, theory/loss, the
optimal value, on the loss panels). They never decide the log scale, and a line far from the
measured curves is cut off rather than stretching the y axis. They get no figure or table
column of their own unless --metrics names them.

Trajectories: when a run folder holds a trajectory.npz (the objective family writes one), the
command also draws the paths of the iterates over the contours of the objective, into
trajectories.png / .pdf (see objective_trajectories.py); `--animate` adds trajectories.gif.

Your own plot: runs.load_runs gives every run, tag and step as one pandas DataFrame (the
README shows a plot of it in a few lines), runs.run_table one row per run.

x axes (--x): `step` (optimizer steps taken before the point was measured: a validation after
the first epoch of 50 steps is at 50, where TensorBoard shows 49), `epoch` (fractional epochs,
from Lightning's `epoch` scalar), `samples` (steps x batch size x devices x gradient
accumulation, from config.yaml) or `time` (seconds of wall-clock time since the run's first event).

Built from runs.py (reading runs), groups.py (seeds and labels), curves.py (mean and range over
seeds), style.py and tables.py. Only this reporting side imports matplotlib and pandas: training
never does.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from .curves import X_AXES, group_curve
from .curves import batch_size_of as batch_size_of
from .curves import smoothed as smoothed
from .curves import x_values as x_values
from .groups import Group, group_runs, key_names, settings_of  # noqa: F401  (settings_of: for your own code)
from .groups import short_keys as short_keys
from .groups import short_number as short_number
from .runs import Run, run_results, select_runs, tidy_frame
from .runs import Series as Series
from .runs import find_runs as find_runs
from .runs import read_run as read_run
from .runs import read_scalars as read_scalars
from .style import LINE_STYLES, STYLE, add_legend, figure_size, legend_label, metric_stem, save, words
from .style import ONE_COLUMN as ONE_COLUMN
from .style import PANEL_HEIGHT as PANEL_HEIGHT
from .tables import embed_table, format_cell, latex, markdown

try:  # the objective family's paths over contours, which leave a project with the family
    from .objective_trajectories import check_animation_format, write_trajectories
except ModuleNotFoundError:
    check_animation_format = write_trajectories = None

DEFAULT_METRICS = ["train/loss", "val/loss", "test/loss", "opt/lr"]
LOSS_PANELS = ["train/loss", "val/loss"]  # what loss.png shows
TABLE_START = "<!-- figures:results:start -->"
TABLE_END = "<!-- figures:results:end -->"
# Theory lines: the tag theory/<name> is drawn on the panels of every metric <stage>/<name>
# (theory/suboptimality on train/suboptimality and val/suboptimality, theory/loss on the loss
# panels); the kinds below belong to another metric's panels.
THEORY_PANELS = {"noise_floor": "suboptimality", "rate_bound": "suboptimality"}
THEORY_NAMES = {"loss": "optimal value", "suboptimality": "expected suboptimality"}  # legend: "theory: ..."
THEORY_DASHES = {"noise_floor": (0, (1, 1.5)), "rate_bound": (0, (5, 1.5, 1, 1.5))}  # others: "--"


# Figures


def use_log_scale(values: list[np.ndarray]) -> bool:
    """A log y axis when every value is positive and they span more than a factor of 20."""
    joined = np.concatenate(values) if values else np.array([])
    joined = joined[np.isfinite(joined)]
    return bool(len(joined)) and joined.min() > 0 and joined.max() / joined.min() > 20


def log_y_axis(lows: list[np.ndarray], log_y: str, metric: str, notes: list[str]) -> bool:
    """Whether to draw `metric` on a log y axis: --log-y on, off, or auto (see use_log_scale)."""
    if log_y == "off":
        return False
    if log_y == "auto":
        return use_log_scale(lows)
    finite = [values[np.isfinite(values)] for values in lows]
    if any(len(values) and values.min() <= 0 for values in finite):
        notes.append(f"{metric}: has values <= 0, so its y axis stays linear")
        return False
    return True


def theory_tags(groups: list[Group], metric: str) -> list[str]:
    """The theory/ tags the runs logged that belong on the panel of `metric` (see THEORY_PANELS)."""
    stage, _, name = metric.rpartition("/")
    if not stage or stage == "theory":
        return []
    logged = sorted({tag for group in groups for run in group.runs for tag in run.scalars if tag.startswith("theory/")})
    return [tag for tag in logged if THEORY_PANELS.get(tag[len("theory/"):], tag[len("theory/"):]) == name]


def theory_dashes(tag: str) -> object:
    """The line style of a kind of theory line: dashed, dotted for the noise floor, dash-dot for a bound."""
    return THEORY_DASHES.get(tag[len("theory/"):], "--")


def theory_label(tag: str) -> str:
    """`theory/noise_floor` -> `theory: noise floor`, for the legend."""
    name = tag[len("theory/"):]
    return "theory: " + THEORY_NAMES.get(name, name.replace("_", " "))


def draw_theory(ax, groups: list[Group], metric: str, x: str, smooth: float = 0.0) -> list[str]:
    """Dashed lines (see THEORY_DASHES), in each group's colour, of the theory tags that belong to
    `metric`: the mean over the group's runs, not shaded, smoothed as the measured curves are (so
    that smoothing shifts both alike). Returns the tags drawn.

    Theory does not move the view: the y limits stay those of the measured curves, widened only
    to show theory values close to them (within a quarter of the panel's height), so a noise
    floor just under the curves shows and a bound far below them is cut off at the edge. On a
    log axis, values <= 0 are left out.
    """
    log = ax.get_yscale() == "log"
    low, high = ax.get_ylim()  # the measured curves' limits, before any theory line is drawn
    drawn, values = [], []
    for tag in theory_tags(groups, metric):
        for number, group in enumerate(groups):
            curve = group_curve(group, tag, x, smooth)
            if curve is None:
                continue
            ys = np.where(curve.mean > 0, curve.mean, np.nan) if log else curve.mean
            ax.plot(curve.x, ys, color=f"C{number % 10}", linestyle=theory_dashes(tag), linewidth=1.0,
                    label=theory_label(tag), gid=tag)
            values.append(ys[np.isfinite(ys)])
            if tag not in drawn:
                drawn.append(tag)
    if not drawn:
        return drawn
    scale = np.log10 if log else np.asarray
    low, high = scale(low), scale(high)
    near = scale(np.concatenate(values))
    near = near[(near >= low - (high - low) / 4) & (near <= high + (high - low) / 4)]
    below, above, margin = near[near < low], near[near > high], (high - low) / 20
    low = below.min() - margin if len(below) else low
    high = above.max() + margin if len(above) else high
    ax.set_ylim((10**low, 10**high) if log else (low, high))
    return drawn


def plot_metrics(groups: list[Group], metrics: list[str], x: str = "step", smooth: float = 0.0,
                 log_y: str = "auto", notes: list[str] | None = None):
    """A matplotlib Figure with one panel per metric and one labelled line per group.

    Metrics that no run logged are left out (and named in `notes`); returns None if none is left.
    A group of several seeds is drawn as their mean, with the range from the lowest to the highest
    run shaded (always positive for a positive metric, so it also suits log axes). Theory tags
    that belong to a panel are drawn dashed (see draw_theory). The legend goes below the panels
    (see add_legend), with one grey dashed entry per kind of theory line.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    notes = [] if notes is None else notes
    panels = []
    for metric in metrics:
        curves = [(group, group_curve(group, metric, x, smooth)) for group in groups]
        missing = [group.label for group, curve in curves if curve is None and any(metric in run.scalars for run in group.runs)]
        curves = [(group, curve) for group, curve in curves if curve is not None]
        if curves:
            panels.append((metric, curves))
            if missing and x == "samples":  # a full-batch run on data of unknown size (see batch_size_of)
                notes.append(f"{metric}: no samples axis for {', '.join(missing)}; left out (try --x step or epoch)")
        else:
            notes.append(f"{metric}: no run logged it against {x}; skipped")
    if not panels:
        return None
    with rc_context(STYLE):
        figure = Figure(figsize=figure_size(len(panels)), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        lines = {}  # group number -> its first line, for the legend
        theory: list[str] = []  # the kinds of theory lines drawn, for the legend
        for ax, (metric, curves) in zip(axes, panels, strict=True):
            for group, curve in curves:
                number = groups.index(group)
                color, style = f"C{number % 10}", LINE_STYLES[number // 10 % len(LINE_STYLES)]
                marker = "o" if len(curve.x) <= 30 else None
                (line,) = ax.plot(curve.x, curve.mean, color=color, linestyle=style, marker=marker, markersize=3,
                                  label=legend_label(group.label, curve.n))
                lines.setdefault(number, line)
                if curve.n > 1:
                    ax.fill_between(curve.x, curve.low, curve.high, color=color, alpha=0.2, linewidth=0)
            if log_y_axis([curve.low for _, curve in curves], log_y, metric, notes):
                ax.set_yscale("log")
            theory += [tag for tag in draw_theory(ax, groups, metric, x, smooth) if tag not in theory]
            ax.set_title(words(metric))
            ax.set_xlabel(X_AXES[x])
            ax.set_ylabel(words(metric))
        if len(groups) > 1 or theory:
            handles = [lines[number] for number in sorted(lines)]
            handles += [Line2D([], [], color="0.45", linestyle=theory_dashes(tag), linewidth=1.0, label=theory_label(tag))
                        for tag in theory]
            add_legend(figure, handles, [line.get_label() for line in handles])
    return figure


# The table


def results_table(groups: list[Group], metrics: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, what is behind each row) of the final and best value of each metric per group.

    A cell is the value, or mean +- std over the group's seeds; `-` where no run logged it; the
    best value only for val/ metrics. Learning rates (opt/ metrics) are left out: their final
    value says nothing about results. Behind each row: its run folders, after the full label
    when the label had to be cut.
    """
    runs = [run for group in groups for run in group.runs]
    metrics = [metric for metric in metrics if not metric.startswith("opt/") and any(metric in run.scalars for run in runs)]
    results = run_results(tidy_frame(runs)).reset_index()
    results["group"] = results["run"].map({run.path.as_posix(): number for number, group in enumerate(groups)
                                           for run in group.runs})
    cells = results.groupby(["group", "tag"])[["final", "best"]].agg(format_cell)
    columns = [(metric, column) for metric in metrics
               for column in (["final", "best"] if metric.startswith("val/") else ["final"])]
    header = ["configuration", "runs", *(f"{metric} ({column})" for metric, column in columns)]
    rows = [[group.label, str(len(group.runs)),
             *(cells.at[(number, metric), column] if (number, metric) in cells.index else "-" for metric, column in columns)]
            for number, group in enumerate(groups)]
    folders = ["`" + ", ".join(str(run.path) for run in group.runs) + "`" for group in groups]
    sources = [where if group.full in ("", group.label) else f"{group.full}: {where}"
               for group, where in zip(groups, folders, strict=True)]
    return header, rows, sources


# The command


def default_metrics(runs: list[Run]) -> list[str]:
    """train/loss, val/loss, test/loss, opt/lr, then every other val/ and test/ metric logged."""
    logged = sorted(set().union(*(run.scalars for run in runs))) if runs else []
    extra = [tag for tag in logged if tag.startswith(("val/", "test/")) and tag not in DEFAULT_METRICS]
    return DEFAULT_METRICS + extra


def make_figures(paths: list[Path | str] | None = None, out: Path = Path("figures"), metrics: list[str] | None = None,
                 x: str = "step", smooth: float = 0.0, log_y: str = "auto", prefix: str = "",
                 embed: list[Path] | None = None, *, root: Path = Path("runs"), exclude: list[str] | None = None,
                 keep_all: bool = False, animate: str | None = None) -> dict[str, object]:
    """Everything the command does; returns what it wrote, its notes, groups and table.

    `paths` selects the runs (folders, experiment or run names, globs; all of `root` if empty),
    `exclude`, `keep_all`: see select_runs. Runs with a trajectory.npz also get trajectories.png
    (see objective_trajectories.py); `animate` ("gif" or "mp4") adds its animation.
    """
    if check_animation_format:
        check_animation_format(animate)
    elif animate:
        raise SystemExit("error: --animate draws the objective family's paths, and this project has no such family")
    selectors = [str(path) for path in paths or [root]]
    notes: list[str] = []
    runs = select_runs(selectors, root, exclude, keep_all, notes)
    if not runs:
        raise SystemExit("\n".join(f"note: {note}" for note in notes) + "\n"
                         f"error: no runs to plot in {', '.join(selectors)}: train first (uv run python train.py fit), "
                         "name experiments, runs or folders that exist, or add --all")
    metrics = metrics or default_metrics(runs)
    groups = group_runs(runs)
    written: list[Path] = []
    for metric in metrics:
        if not any(metric in run.scalars for run in runs):
            notes.append(f"{metric}: no run logged it; skipped")
    panels = [metric for metric in LOSS_PANELS if metric in metrics]
    if panels:
        figure = plot_metrics(groups, panels, x, smooth, log_y, notes=[])
        if figure is not None:
            written += save(figure, out, f"{prefix}loss")
    for metric in metrics:
        if not any(metric in run.scalars for run in runs):
            continue
        figure = plot_metrics(groups, [metric], x, smooth, log_y, notes=notes)
        if figure is not None:
            written += save(figure, out, prefix + metric_stem(metric))
    if write_trajectories:
        written += write_trajectories(runs, groups, out, prefix, animate, notes)
    header, rows, sources = results_table(groups, metrics)
    table = markdown(header, rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{prefix}results.md").write_text(markdown(header, rows, sources))
    (out / f"{prefix}results.tex").write_text(latex(header, rows))
    written += [out / f"{prefix}results.md", out / f"{prefix}results.tex"]
    embedded = [doc for doc in (embed or []) if embed_table(doc, table, TABLE_START, TABLE_END)]
    return {"written": written, "notes": notes, "groups": groups, "header": header, "rows": rows,
            "embedded": embedded}


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(
        prog="uv run python -m {{ cookiecutter.package_name }}.figures",
        description="Plot TensorBoard runs and tabulate their results for the report and slides.",
    )
    parser.add_argument("runs", nargs="*", metavar="RUNS",
                        help="which runs: folders (every run under them), experiment names (runs/NAME), run names "
                             "(runs/*/NAME) or globs of these, e.g. 'adam*' (default: every run under --root)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="GLOB",
                        help="leave out runs whose path, name or experiment matches one of these globs "
                             "(put it after the runs: it takes every word up to the next option)")
    parser.add_argument("--all", action="store_true", dest="keep_all",
                        help="keep fast_dev_run runs and runs shorter than a tenth of the longest (left out by default)")
    parser.add_argument("--root", type=Path, default=Path("runs"),
                        help="the folder of experiments, where names are looked up (default: runs)")
    parser.add_argument("--metrics", nargs="+", default=None,
                        help="scalar tags to plot (default: train/loss val/loss test/loss opt/lr and every "
                             "other val/ and test/ metric logged)")
    parser.add_argument("--x", choices=list(X_AXES), default="step", help="the x axis (default: step)")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: figures)")
    parser.add_argument("--prefix", default="", help="prefix of every file name, to keep several sets apart")
    parser.add_argument("--smooth", type=float, default=0.0,
                        help="TensorBoard-style smoothing weight in [0, 1) (default: 0, none)")
    parser.add_argument("--log-y", choices=["auto", "on", "off"], default="auto",
                        help="log-scale y axis (auto: when values are positive and span a factor of 20)")
    parser.add_argument("--animate", nargs="?", const="gif", choices=["gif", "mp4"], default=None,
                        help="also animate the trajectories (runs with a trajectory.npz): trajectories.gif, "
                             "or trajectories.mp4 with --animate mp4 (needs ffmpeg); put it after the runs")
    parser.add_argument("--embed", nargs="*", type=Path, default=[Path("report.md"), Path("slides/slides.md")],
                        help="markdown files whose figures:results markers receive the table "
                             "(default: report.md slides/slides.md; give none to skip)")
    args = parser.parse_args(argv)
    if not 0 <= args.smooth < 1 or math.isnan(args.smooth):
        parser.error("--smooth must be in [0, 1)")
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    result = make_figures(args.runs, args.out, args.metrics, args.x, args.smooth, args.log_y, args.prefix,
                          args.embed, root=args.root, exclude=args.exclude, keep_all=args.keep_all,
                          animate=args.animate)
    for note in result["notes"]:
        print(f"note: {note}")
    groups = result["groups"]
    print(f"{sum(len(g.runs) for g in groups)} run(s) in {len(groups)} configuration(s):")
    for group in groups:
        print(f"  {group.label}: {', '.join(str(run.path) for run in group.runs)}")
        if group.full and group.full != group.label:
            print(f"    in full: {group.full}")
    names = key_names(groups)
    if names:
        print("in the labels:\n" + "\n".join(f"  {line}" for line in names))
    print("wrote " + ", ".join(str(path) for path in result["written"]))
    if result["embedded"]:
        print("updated the results table in " + ", ".join(map(str, result["embedded"])))
    return result


if __name__ == "__main__":
    main()
