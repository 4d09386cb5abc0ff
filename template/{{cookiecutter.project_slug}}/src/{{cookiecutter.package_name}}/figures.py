"""Turn TensorBoard runs into report figures (PNG and PDF) and result tables (markdown, LaTeX).

    python -m {{ cookiecutter.package_name }}.figures                     # every run under runs/, into figures/
    python -m {{ cookiecutter.package_name }}.figures runs/vision_digits --metrics train/loss val/loss --x samples
    python -m {{ cookiecutter.package_name }}.figures runs/ --x time --prefix sweep_  # figures/sweep_loss.png, ...
    python -m {{ cookiecutter.package_name }}.figures --help

What it writes into --out (figures/ by default; rerun it and report.md and the slides follow):
- loss.png / loss.pdf: train/loss and val/loss side by side, one line per configuration;
- <metric>.png / .pdf for every metric plotted (val/acc -> val_acc.png, opt/lr -> opt_lr.png);
- results.md and results.tex: the final (and, for val/ metrics, best) value of each metric
  per configuration, with the run folders behind each row.
The table is also copied into report.md and slides/slides.md between the markers
`<!-- figures:results:start -->` and `<!-- figures:results:end -->`, where those exist.

How runs are grouped and named: each run folder (runs/<experiment>/version_N/) holds the
config.yaml the run was made with. Runs whose configs differ only in `seed_everything` are
repeats of one configuration: they are drawn as their mean with the range over seeds shaded,
and the table gives mean +- standard deviation. Each configuration is labelled by the config
keys that differ between the configurations plotted (e.g. `optimizer.name=adam,
optimizer.lr=0.001`). A metric that a run did not log is skipped with a note.

x axes (--x): `step` (optimizer steps), `epoch` (fractional epochs, from Lightning's `epoch`
scalar), `samples` (steps x batch size x devices x gradient accumulation, from config.yaml)
or `time` (seconds of wall-clock time since the run's first event).

This file is the only one that imports matplotlib: training never does.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

X_AXES = {
    "step": "optimizer steps",
    "epoch": "epochs",
    "samples": "training samples seen",
    "time": "wall-clock time (s)",
}
DEFAULT_METRICS = ["train/loss", "val/loss", "test/loss", "opt/lr"]
LOSS_PANELS = ["train/loss", "val/loss"]  # what loss.png shows
# Config keys that never tell two configurations apart: where a run was resumed from, which
# version folder it logged into, and the seed (repeats over seeds are averaged instead).
IGNORED_KEYS = {"ckpt_path", "trainer.logger.init_args.version", "trainer.logger.version"}
SEED_KEY = "seed_everything"
# Metrics where larger is better; every other metric is best at its minimum.
HIGHER_IS_BETTER = re.compile(r"(acc|accuracy|auc|f1|precision|recall|r2|psnr|ssim)$")
TABLE_START = "<!-- figures:results:start -->"
TABLE_END = "<!-- figures:results:end -->"
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.5,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # TrueType fonts in PDFs: editable, and accepted by conference checkers
}


@dataclass
class Series:
    """One scalar tag of one run: optimizer steps, wall-clock times and values."""

    steps: np.ndarray
    times: np.ndarray
    values: np.ndarray


@dataclass
class Run:
    """One run folder: its flattened config.yaml and every scalar it logged."""

    path: Path
    config: dict[str, object]
    scalars: dict[str, Series]

    @property
    def experiment(self) -> str:
        return self.path.parent.name if self.path.name.startswith("version_") else self.path.name


@dataclass
class Group:
    """Runs that differ at most by their seed: drawn as one line (their mean) and one table row."""

    label: str
    runs: list[Run] = field(default_factory=list)


def flatten(tree: object, prefix: str = "") -> dict[str, object]:
    """Nested dicts to one level with dotted keys (a: b: 1 -> a.b: 1); lists and scalars are leaves."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, object] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def read_scalars(run_dir: Path) -> dict[str, Series]:
    """Every scalar tag of a run folder, read with TensorBoard's own reader (all event files).

    A resumed run may log a step twice; the value logged last is kept.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every event
    accumulator.Reload()
    scalars = {}
    for tag in accumulator.Tags()["scalars"]:
        latest = {event.step: event for event in accumulator.Scalars(tag)}
        events = [latest[step] for step in sorted(latest)]
        scalars[tag] = Series(
            steps=np.array([event.step for event in events], dtype=float),
            times=np.array([event.wall_time for event in events], dtype=float),
            values=np.array([event.value for event in events], dtype=float),
        )
    return scalars


def find_runs(paths: list[Path]) -> list[Run]:
    """Every folder under `paths` that holds TensorBoard event files, in a stable order."""
    folders = set()
    for path in paths:
        if not path.exists():
            print(f"note: {path} does not exist: train first (python train.py fit)", file=sys.stderr)
            continue
        folders.update(event.parent for event in path.rglob("events.out.tfevents.*"))
    runs = []
    for folder in sorted(folders, key=lambda p: (str(p.parent), version_number(p), str(p))):
        config_file = folder / "config.yaml"
        config = flatten(yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
        runs.append(Run(path=folder, config=config, scalars=read_scalars(folder)))
    return runs


def version_number(folder: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", folder.name)
    return int(match.group(1)) if match else -1


def configuration(run: Run) -> tuple:
    """What identifies a run's configuration: its config without the seed and bookkeeping keys."""
    if not run.config:
        return (("run", str(run.path)),)  # no config.yaml: the run stands alone
    return tuple(sorted((key, repr(value)) for key, value in run.config.items()
                        if key != SEED_KEY and key not in IGNORED_KEYS))


def short_keys(keys: list[str]) -> dict[str, str]:
    """Readable names for config keys: `model.init_args.optimizer.lr` -> `optimizer.lr`.

    Drops `init_args`, then keeps the shortest ending of at least two parts that no other key
    in `keys` shares.
    """
    parts = {key: [part for part in key.split(".") if part != "init_args"] for key in keys}
    names = {}
    for key, pieces in parts.items():
        for length in range(min(2, len(pieces)), len(pieces) + 1):
            ending = pieces[-length:]
            if sum(other[-length:] == ending for other in parts.values()) == 1:
                break
        names[key] = ".".join(ending)
    return names


def show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and re.fullmatch(r"[\w.]+\.[A-Z]\w*", value):
        return value.rsplit(".", 1)[1]  # a class path: its class name
    return str(value)


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs with the same configuration up to the seed form a group, labelled by what differs."""
    by_config: dict[tuple, list[Run]] = {}
    for run in runs:
        by_config.setdefault(configuration(run), []).append(run)
    groups = list(by_config.values())
    if len(groups) == 1:
        runs_of_one = groups[0]
        return [Group(label=runs_of_one[0].experiment, runs=runs_of_one)]
    configs = [dict(key_values) for key_values in by_config]
    every_key = sorted(set().union(*configs))
    differing = [key for key in every_key if len({config.get(key, "-") for config in configs}) > 1]
    names = short_keys(differing)
    labelled = []
    for group in groups:
        config = group[0].config
        if not config:
            label = str(group[0].path)
        else:
            label = ", ".join(f"{names[key]}={show(config.get(key, '-'))}" for key in differing)
        labelled.append(Group(label=label, runs=group))
    return labelled


def batch_size_of(run: Run) -> float | None:
    """Samples per optimizer step, from the run's config: batch size x devices x nodes x accumulation."""
    size = None
    for key in ("data.init_args.batch_size", "data.batch_size", "model.init_args.batch_size"):
        if isinstance(run.config.get(key), int):
            size = run.config[key]
            break
    if size is None:
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
        # Lightning logs the current epoch beside every metric; at the end of epoch e the step
        # count is (e + 1) x steps per epoch, the largest ratio of all.
        steps_per_epoch = max(float(np.max(epochs.steps / (epochs.values + 1))), 1.0)
        return series.steps / steps_per_epoch
    raise ValueError(f"unknown x axis {x!r}: choose one of {', '.join(X_AXES)}")


def smoothed(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average (weight 0 changes nothing)."""
    if weight <= 0:
        return values
    out, average = np.empty_like(values), 0.0
    for i, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out[i] = average / (1 - weight ** (i + 1))
    return out


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
    all runs cover.
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
    if len(curves) == 1:
        xs, ys = curves[0]
        return Curve(xs, ys, ys, ys, 1)
    if all(len(xs) == len(curves[0][0]) and np.allclose(xs, curves[0][0]) for xs, _ in curves):
        grid = curves[0][0]
        stacked = np.stack([ys for _, ys in curves])
    else:
        low, high = max(xs.min() for xs, _ in curves), min(xs.max() for xs, _ in curves)
        grid = min((xs for xs, _ in curves), key=len)
        grid = grid[(grid >= low) & (grid <= high)]
        stacked = np.stack([np.interp(grid, xs, ys) for xs, ys in curves])
    return Curve(grid, stacked.mean(0), stacked.min(0), stacked.max(0), len(curves))


def use_log_scale(values: list[np.ndarray]) -> bool:
    """A log y axis when every value is positive and they span more than a factor of 20."""
    joined = np.concatenate(values) if values else np.array([])
    joined = joined[np.isfinite(joined)]
    return bool(len(joined)) and joined.min() > 0 and joined.max() / joined.min() > 20


def plot_metrics(groups: list[Group], metrics: list[str], x: str = "step", smooth: float = 0.0,
                 log_y: str = "auto", notes: list[str] | None = None):
    """A matplotlib Figure with one panel per metric and one labelled line per group.

    Metrics that no run logged are left out (and named in `notes`); returns None if none is left.
    A group of several seeds is drawn as their mean, with the range from the lowest to the highest
    run shaded (always positive for a positive metric, so it also suits log axes).
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    notes = [] if notes is None else notes
    panels = []
    for metric in metrics:
        curves = [(group, group_curve(group, metric, x, smooth)) for group in groups]
        curves = [(group, curve) for group, curve in curves if curve is not None]
        if curves:
            panels.append((metric, curves))
        else:
            notes.append(f"{metric}: no run logged it against {x}; skipped")
    if not panels:
        return None
    with rc_context(STYLE):
        figure = Figure(figsize=(3.4 * len(panels) + 0.4, 2.9), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        colors = [f"C{i % 10}" for i in range(len(groups))]
        for ax, (metric, curves) in zip(axes, panels, strict=True):
            for group, curve in curves:
                color = colors[groups.index(group)]
                label = group.label + (f" ({curve.n} seeds)" if curve.n > 1 else "")
                marker = "o" if len(curve.x) <= 30 else None
                ax.plot(curve.x, curve.mean, color=color, label=label, marker=marker, markersize=3)
                if curve.n > 1:
                    ax.fill_between(curve.x, curve.low, curve.high, color=color, alpha=0.2, linewidth=0)
            scale = log_y == "on" or (log_y == "auto" and use_log_scale([c.low for _, c in curves]))
            if scale:
                ax.set_yscale("log")
            ax.set_title(metric)
            ax.set_xlabel(X_AXES[x])
            ax.set_ylabel(metric)
        if len(groups) > 1:
            axes[-1].legend(frameon=False)
    return figure


def save(figure, out: Path, stem: str) -> list[Path]:
    """Write `figure` as stem.png (200 dpi) and stem.pdf (vector) into `out`."""
    from matplotlib import rc_context

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with rc_context(STYLE):
        for suffix, options in ((".png", {"dpi": 200}), (".pdf", {})):
            path = out / f"{stem}{suffix}"
            figure.savefig(path, **options)
            written.append(path)
    return written


def best_of(metric: str, values: np.ndarray) -> float:
    name = metric.rsplit("/", 1)[-1]
    return float(values.max() if HIGHER_IS_BETTER.search(name) else values.min())


def columns_for(metric: str) -> list[str]:
    """Final value for every metric; the best one too for validation metrics."""
    return ["final", "best"] if metric.startswith("val/") else ["final"]


def results_table(groups: list[Group], metrics: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, run folders per row) of the final and best value of each metric per group.

    A cell is the value, or mean +- std over the group's seeds; `-` where no run logged it.
    Learning rates (opt/ metrics) are left out: their final value says nothing about results.
    """
    metrics = [metric for metric in metrics if not metric.startswith("opt/")
               and any(metric in run.scalars for group in groups for run in group.runs)]
    header = ["configuration", "runs"]
    for metric in metrics:
        header += [f"{metric} ({column})" for column in columns_for(metric)]
    rows, sources = [], []
    for group in groups:
        row = [group.label, str(len(group.runs))]
        for metric in metrics:
            logged = [run.scalars[metric].values for run in group.runs if metric in run.scalars]
            for column in columns_for(metric):
                numbers = [float(v[-1]) if column == "final" else best_of(metric, v) for v in logged if len(v)]
                row.append(format_cell(numbers))
        rows.append(row)
        sources.append(", ".join(str(run.path) for run in group.runs))
    return header, rows, sources


def format_cell(numbers: list[float]) -> str:
    if not numbers:
        return "-"
    if len(numbers) == 1:
        return f"{numbers[0]:.4g}"
    return f"{np.mean(numbers):.4g} ± {np.std(numbers, ddof=1):.2g}"


def to_markdown(header: list[str], rows: list[list[str]], sources: list[str] | None = None) -> str:
    def line(cells):
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    text = [line(header), "| " + " | ".join(["---"] * len(header)) + " |", *map(line, rows)]
    if sources:
        text += ["", "Runs behind each row:", ""]
        text += [f"- {row[0]}: `{source}`" for row, source in zip(rows, sources, strict=True)]
    return "\n".join(text) + "\n"


def latex_escape(text: str) -> str:
    text = text.replace("\\", r"\textbackslash ")
    for char in "&%$#_":
        text = text.replace(char, "\\" + char)
    return text.replace("±", r"$\pm$")


def to_latex(header: list[str], rows: list[list[str]]) -> str:
    """A booktabs table (\\usepackage{booktabs}) to \\input into a LaTeX report."""
    align = "l" + "r" * (len(header) - 1)
    body = [" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in rows]
    lines = [
        r"\begin{tabular}" + "{" + align + "}",
        r"\toprule",
        " & ".join(latex_escape(cell) for cell in header) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def embed_table(document: Path, table: str) -> bool:
    """Put `table` between the figures:results markers of `document`; False if it has none."""
    if not document.is_file():
        return False
    text = document.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        return False
    updated = text[: start + len(TABLE_START)] + "\n" + table + text[end:]
    if updated != text:
        document.write_text(updated)
    return True


def metric_stem(metric: str) -> str:
    return re.sub(r"[^\w.-]+", "_", metric).strip("_")


def default_metrics(runs: list[Run]) -> list[str]:
    """train/loss, val/loss, test/loss, opt/lr, then every other val/ and test/ metric logged."""
    logged = sorted(set().union(*(run.scalars for run in runs))) if runs else []
    extra = [tag for tag in logged if tag.startswith(("val/", "test/")) and tag not in DEFAULT_METRICS]
    return DEFAULT_METRICS + extra


def make_figures(paths: list[Path], out: Path = Path("figures"), metrics: list[str] | None = None,
                 x: str = "step", smooth: float = 0.0, log_y: str = "auto", prefix: str = "",
                 embed: list[Path] | None = None) -> dict[str, object]:
    """Everything the command does; returns what it wrote, its notes, groups and table."""
    runs = find_runs(paths)
    if not runs:
        raise SystemExit(f"error: no TensorBoard runs under {', '.join(map(str, paths))}: "
                         "train first (python train.py fit), or name the run folders")
    metrics = metrics or default_metrics(runs)
    groups = group_runs(runs)
    notes: list[str] = []
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
    header, rows, sources = results_table(groups, metrics)
    markdown = to_markdown(header, rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{prefix}results.md").write_text(to_markdown(header, rows, sources))
    (out / f"{prefix}results.tex").write_text(to_latex(header, rows))
    written += [out / f"{prefix}results.md", out / f"{prefix}results.tex"]
    embedded = [doc for doc in (embed or []) if embed_table(doc, markdown)]
    return {"written": written, "notes": notes, "groups": groups, "header": header, "rows": rows,
            "embedded": embedded}


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}.figures",
        description="Plot TensorBoard runs and tabulate their results for the report and slides.",
    )
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("runs")],
                        help="run folders, or folders that hold them (default: runs)")
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
    parser.add_argument("--embed", nargs="*", type=Path, default=[Path("report.md"), Path("slides/slides.md")],
                        help="markdown files whose figures:results markers receive the table "
                             "(default: report.md slides/slides.md; give none to skip)")
    args = parser.parse_args(argv)
    if not 0 <= args.smooth < 1 or math.isnan(args.smooth):
        parser.error("--smooth must be in [0, 1)")
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    result = make_figures(args.paths, args.out, args.metrics, args.x, args.smooth, args.log_y, args.prefix,
                          args.embed)
    for note in result["notes"]:
        print(f"note: {note}")
    groups = result["groups"]
    print(f"{sum(len(g.runs) for g in groups)} run(s) in {len(groups)} configuration(s):")
    for group in groups:
        print(f"  {group.label}: {', '.join(str(run.path) for run in group.runs)}")
    print("wrote " + ", ".join(str(path) for path in result["written"]))
    if result["embedded"]:
        print("updated the results table in " + ", ".join(map(str, result["embedded"])))
    return result


if __name__ == "__main__":
    main()
