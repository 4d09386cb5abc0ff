"""Turn TensorBoard runs into report figures (PNG and PDF) and result tables (markdown, LaTeX).

    uv run python -m the_sgd_lecture_reproduced.figures                      # every run under runs/, into figures/
    uv run python -m the_sgd_lecture_reproduced.figures vision_digits        # the runs of one experiment (runs/vision_digits/)
    uv run python -m the_sgd_lecture_reproduced.figures adam_lr3e-4 sgd_lr0.1  # runs by name (runs/*/adam_lr3e-4/, ...)
    uv run python -m the_sgd_lecture_reproduced.figures 'runs/vision_*/adam*' 'sgd*'  # globs (quote them)
    uv run python -m the_sgd_lecture_reproduced.figures vision_digits --exclude 'version_*' '*old*'
    uv run python -m the_sgd_lecture_reproduced.figures --all                # keep fast_dev_run and short runs too
    uv run python -m the_sgd_lecture_reproduced.figures vision_digits --metrics train/loss val/loss --x samples
    uv run python -m the_sgd_lecture_reproduced.figures --x time --prefix sweep_  # figures/sweep_loss.png, ...
    uv run python -m the_sgd_lecture_reproduced.figures objective_rosenbrock --animate  # also trajectories.gif
    uv run python -m the_sgd_lecture_reproduced.figures --help

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
trajectories.png / .pdf (see trajectories.py); `--animate` adds trajectories.gif.

x axes (--x): `step` (optimizer steps taken before the point was measured: a validation after
the first epoch of 50 steps is at 50, where TensorBoard shows 49), `epoch` (fractional epochs,
from Lightning's `epoch` scalar), `samples` (steps x batch size x devices x gradient
accumulation, from config.yaml) or `time` (seconds of wall-clock time since the run's first event).

This file is the only one that imports matplotlib: training never does.
"""

from __future__ import annotations

import argparse
import glob
import math
import re
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
# Scalar tags in words, for axis labels and panel titles: the part before the slash, then the
# part after it (`val/acc` -> "validation accuracy"). Other parts keep their name, without `_`.
TAG_PREFIXES = {"train": "training", "val": "validation", "test": "test", "opt": "", "perf": ""}
TAG_NAMES = {
    "loss": "loss",
    "acc": "accuracy",
    "bpb": "bits per byte",
    "lr": "learning rate",
    "dist_to_opt": "distance to the optimum",
    "grad_norm": "gradient norm",
    "param_norm": "parameter norm",
    "update_ratio": "update-to-weight ratio",
    "noise_scale": "gradient noise scale",
    "step_time": "step time (s)",
    "samples_per_sec": "throughput (samples/s)",
}
# Config keys that never tell two configurations apart: the run's name, where it was resumed
# from, which folder it logged into, and the seed (repeats over seeds are averaged instead).
IGNORED_KEYS = {"name", "ckpt_path", "trainer.logger.init_args.version", "trainer.logger.version"}
SEED_KEY = "seed_everything"
LABEL_LIMIT = 29  # characters: every legend label stays under 30
# Usual short names of settings in labels (`wd=0.1`); other settings keep their own name.
KEY_ABBREVIATIONS = {"weight_decay": "wd", "learning_rate": "lr", "warmup_steps": "warmup",
                     "accumulate_grad_batches": "accumulate", "gradient_clip_val": "clip"}
CLASS_PATH = re.compile(r"[A-Za-z_][\w.]*\.[A-Z]\w*")  # torch.optim.Adam, my_pkg.opt.MyOpt
GLOB_CHARACTERS = re.compile(r"[*?[]")
# Metrics where larger is better; every other metric is best at its minimum.
HIGHER_IS_BETTER = re.compile(r"(acc|accuracy|auc|f1|precision|recall|r2|psnr|ssim)$")
TABLE_START = "<!-- figures:results:start -->"
TABLE_END = "<!-- figures:results:end -->"
ONE_COLUMN = 3.4  # inches: one column of a two-column paper, for a figure of one metric
PAGE_WIDTH = 7.0  # inches: the width of the page, for figures of several panels (loss.png)
PANEL_HEIGHT = 2.4  # inches, without the legend (it goes below)
LINE_STYLES = ["-", "--", ":", "-."]  # after ten colours, the lines change style
# Theory lines: the tag theory/<name> is drawn on the panels of every metric <stage>/<name>
# (theory/suboptimality on train/suboptimality and val/suboptimality, theory/loss on the loss
# panels); the kinds below belong to another metric's panels.
THEORY_PANELS = {"noise_floor": "suboptimality", "rate_bound": "suboptimality"}
THEORY_NAMES = {"loss": "optimal value", "suboptimality": "expected suboptimality"}  # legend: "theory: ..."
THEORY_DASHES = {"noise_floor": (0, (1, 1.5)), "rate_bound": (0, (5, 1.5, 1, 1.5))}  # others: "--"
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
    "savefig.bbox": "tight",  # the saved image grows to hold the legend below the panels
    "savefig.pad_inches": 0.02,  # and stays as wide as the figure: 3.4 in is one column
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
    def name(self) -> str:
        """The run's name: its folder's name (version_N, or the name given to the run)."""
        return self.path.name

    @property
    def experiment(self) -> str:
        """The experiment: the name of the folder that holds the run folder."""
        return self.path.parent.name


@dataclass
class Group:
    """Runs that differ at most by their seed: drawn as one line (their mean) and one table row.

    `label` is short (under 30 characters) for legends and tables; `full` is the label before it
    was cut, and `settings` the config values that tell this group from the others.
    """

    label: str
    runs: list[Run] = field(default_factory=list)
    full: str = ""
    settings: dict[str, object] = field(default_factory=dict)


# Finding and reading runs


def flatten(tree: object, prefix: str = "") -> dict[str, object]:
    """Nested dicts to one level with dotted keys (a: b: 1 -> a.b: 1); lists and scalars are leaves."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, object] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def logged_after_the_step(tag: str) -> bool:
    """Whether Lightning logs `tag` one step early: it logs what a validation measures (val/ and
    test/ metrics) before it counts the epoch's last step, so the weights after k steps show at
    step k - 1 in TensorBoard. A training step's metrics (train/loss at step k, logged before the
    step's update) are of the weights after k steps, as logged. (A test run after training logs
    at the steps taken: its one point is read one step late.)"""
    return tag.startswith(("val/", "test/"))


def read_scalars(run_dir: Path) -> dict[str, Series]:
    """Every scalar tag of a run folder, read with TensorBoard's own reader (all event files).

    Steps are the optimizer steps taken before the measurement: the val/ and test/ metrics that
    TensorBoard shows at step k - 1 are read at k (see logged_after_the_step). Without this, a
    full-batch run, which takes one step an epoch, would look one epoch ahead on every x axis.
    A resumed run may log a step twice; the value logged last is kept.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every event
    accumulator.Reload()
    scalars = {}
    for tag in accumulator.Tags()["scalars"]:
        latest = {event.step: event for event in accumulator.Scalars(tag)}
        events = [latest[step] for step in sorted(latest)]
        shift = 1 if logged_after_the_step(tag) else 0
        scalars[tag] = Series(
            steps=np.array([event.step + shift for event in events], dtype=float),
            times=np.array([event.wall_time for event in events], dtype=float),
            values=np.array([event.value for event in events], dtype=float),
        )
    return scalars


def read_run(folder: Path) -> Run:
    """A run folder's config.yaml (flattened; empty if it has none) and its scalars."""
    config_file = folder / "config.yaml"
    config = flatten(yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    return Run(path=folder, config=config, scalars=read_scalars(folder))


def version_number(folder: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", folder.name)
    return int(match.group(1)) if match else -1


def run_order(folder: Path) -> tuple:
    """Runs sorted by experiment, then version_0, version_1, ..., version_10 in that order, then by name."""
    return str(folder.parent), version_number(folder), folder.name


def matching_folders(selector: str, root: Path) -> list[Path]:
    """The folders that one selector names: a path, an experiment or run name under `root`, or a glob.

    A glob is tried as a path (`runs/vision_*/adam*`), then under `root` as an experiment
    (`vision_*`) and as a run (`adam*`, that is root/*/adam*).
    """
    if GLOB_CHARACTERS.search(selector):
        matches = [Path(path) for path in glob.glob(selector)]
        if not Path(selector).is_absolute():
            for pattern in (selector, str(Path("*", selector))):
                matches += [root / path for path in glob.glob(pattern, root_dir=root)]
        return sorted({path for path in matches if path.is_dir()})
    for path in (Path(selector), root / selector):
        if path.is_dir():
            return [path]
    if not root.is_dir():
        return []
    return sorted(experiment / selector for experiment in root.iterdir() if (experiment / selector).is_dir())


def run_folders(selectors: list[str], root: Path = Path("runs"), notes: list[str] | None = None) -> list[Path]:
    """Every run folder (a folder with event files) at or under what the selectors name, each once."""
    notes = [] if notes is None else notes
    found: dict[Path, Path] = {}  # the absolute path -> the path as found
    for selector in selectors:
        folders = {event.parent for path in matching_folders(str(selector), root)
                   for event in path.rglob("events.out.tfevents.*")}
        if not folders:
            notes.append(f"{selector}: no run there (not a folder with runs, nor an experiment or run under {root})")
        for folder in folders:
            found.setdefault(folder.absolute(), folder)
    return sorted(found.values(), key=run_order)


def find_runs(paths: list[Path | str], root: Path = Path("runs"), notes: list[str] | None = None) -> list[Run]:
    """Every run that `paths` name (folders, experiment or run names, globs), read, in a stable order."""
    return [read_run(folder) for folder in run_folders([str(path) for path in paths], root, notes)]


def excluded(folder: Path, patterns: list[str]) -> bool:
    """Whether the run folder, its name or its experiment matches one of the glob patterns."""
    path = folder.absolute()
    return any(path.match(pattern) or path.parent.match(pattern) for pattern in patterns if pattern.strip("/"))


def is_fast_dev_run(run: Run) -> bool:
    """Whether the run was made with `trainer.fast_dev_run` (a check of the code, not a result)."""
    return bool(run.config.get("trainer.fast_dev_run"))


def last_step(run: Run) -> float:
    """The last optimizer step the run logged anything at (0 if it logged nothing)."""
    return max((float(series.steps[-1]) for series in run.scalars.values() if len(series.steps)), default=0.0)


def select_runs(selectors: list[str], root: Path = Path("runs"), exclude: list[str] | None = None,
                keep_all: bool = False, notes: list[str] | None = None) -> list[Run]:
    """The runs to plot: those the selectors name, less --exclude, fast_dev_run and short runs.

    Runs made with `trainer.fast_dev_run`, and runs whose last step is under a tenth of the
    longest selected run's, are left out unless `keep_all`. One note says what was left out.
    """
    notes = [] if notes is None else notes
    folders = run_folders(selectors, root, notes)
    kept = [folder for folder in folders if not excluded(folder, exclude or [])]
    reasons = [f"{len(folders) - len(kept)} matching --exclude"] if len(kept) < len(folders) else []
    runs = [read_run(folder) for folder in kept]
    left_out = []
    if not keep_all:
        fast = [run for run in runs if is_fast_dev_run(run)]
        runs = [run for run in runs if not is_fast_dev_run(run)]
        longest = max(map(last_step, runs), default=0.0)
        short = [run for run in runs if last_step(run) < longest / 10]
        runs = [run for run in runs if last_step(run) >= longest / 10]
        if fast:
            reasons.append(f"{len(fast)} made with fast_dev_run")
        if short:
            reasons.append(f"{len(short)} stopped before a tenth of the longest run's {longest:g} steps")
        left_out = fast + short
    if reasons:
        names = ", ".join(f"{run.experiment}/{run.name}" for run in left_out[:4]) + (", ..." if len(left_out) > 4 else "")
        notes.append(f"left out {len(folders) - len(runs)} of {len(folders)} runs: {'; '.join(reasons)}"
                     + (f" ({names}; --all keeps them)" if left_out else ""))
    return runs


# Grouping runs and labelling them


def settings_of(run: Run) -> dict[str, object]:
    """The run's config without the seed and the bookkeeping keys."""
    return {key: value for key, value in run.config.items() if key != SEED_KEY and key not in IGNORED_KEYS}


def configuration(run: Run) -> tuple:
    """What identifies a run's configuration: its settings, as a sorted tuple."""
    if not run.config:
        return (("run", str(run.path)),)  # no config.yaml: the run stands alone
    return tuple(sorted((key, repr(value)) for key, value in settings_of(run).items()))


def is_class_key(key: str) -> bool:
    """Whether a config key holds a class (jsonargparse's `class_path`)."""
    return key == "class_path" or key.endswith(".class_path")


def class_name(path: object) -> str:
    """torch.optim.Adam -> Adam."""
    return str(path).rsplit(".", 1)[-1]


def short_number(number: float) -> str:
    """A float in few characters: 0.0003 -> 3e-4, 1e-08 -> 1e-8, 0.1 -> 0.1, 0.9 -> 0.9."""
    plain = f"{number:g}"
    if not math.isfinite(number) or number == 0:
        return plain
    mantissa, exponent = f"{number:.5e}".split("e")  # %g shows 6 significant digits: so does this
    scientific = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return scientific if len(scientific) < len(plain) else plain


def show(value: object) -> str:
    """A config value in short: numbers by short_number, lists joined by commas, classes by name."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return short_number(value)
    if isinstance(value, (list, tuple)):
        return ",".join(show(item) for item in value)
    if isinstance(value, str) and CLASS_PATH.fullmatch(value):
        return class_name(value)
    return str(value)


def short_keys(keys: list[str]) -> dict[str, str]:
    """Short names for config keys: `model.init_args.optimizer.init_args.lr` -> `lr`.

    Drops `init_args`, keeps the shortest ending that no other key in `keys` shares (`lr`, or
    `optimizer.lr` beside `scheduler.lr`), then uses the usual abbreviation (`wd`) if it is free.
    """
    parts = {key: [part for part in key.split(".") if part != "init_args"] for key in keys}
    names = {}
    for key, pieces in parts.items():
        for length in range(1, len(pieces) + 1):
            ending = pieces[-length:]
            if sum(other[-length:] == ending for other in parts.values()) == 1:
                break
        names[key] = ".".join(ending)
    for key, name in names.items():
        short = KEY_ABBREVIATIONS.get(name)
        if short and short not in names.values():
            names[key] = short
    return names


def key_order(key: str) -> tuple[int, bool]:
    """Labels show the optimizer first, then the schedule, then the rest; a class before its arguments."""
    parts = key.split(".")
    section = 0 if "optimizer" in parts else 1 if "scheduler" in parts or "lr_scheduler" in parts else 2
    return section, not is_class_key(key)


def differing_keys(configs: list[dict[str, object]], strict: bool = True) -> list[str]:
    """The keys that tell configurations apart, in label order.

    Strict: keys with two values or more among the configurations that have them. A key that
    only some configurations have (`momentum` of SGD beside Adam) is left out when it has one
    value: the class in the label already says it. Not strict: every key whose value (or
    absence) is not the same in all configurations.
    """
    keys = list(dict.fromkeys(key for config in configs for key in config))

    def values(key: str) -> set[str]:
        return {repr(config.get(key, "<absent>")) for config in configs if key in config or not strict}

    return sorted((key for key in keys if len(values(key)) > 1), key=key_order)


def fit(parts: list[str], limit: int = LABEL_LIMIT) -> str:
    """`parts` joined by spaces; when that is over `limit` characters, the parts that fit and ` …`."""
    label = " ".join(parts)
    if len(label) <= limit:
        return label
    kept: list[str] = []
    for part in parts:
        if len(" ".join([*kept, part])) > limit - 2:
            break
        kept.append(part)
    return " ".join(kept) + " …" if kept else label[: limit - 1] + "…"


def describe(config: dict[str, object], keys: list[str], names: dict[str, str]) -> dict[str, str]:
    """The parts of one configuration's label, by key: `adam`, `lr=3e-4`, ... for the keys it has."""
    return {key: class_name(config[key]).lower() if is_class_key(key) else f"{names[key]}={show(config[key])}"
            for key in keys if key in config}


def short_labels(rows: list[dict[str, str]], keys: list[str], limit: int = LABEL_LIMIT) -> list[str]:
    """One label per row (its parts by key), the parts in the order of `keys`, each under `limit` characters.

    When a full label is too long, every label keeps the keys that tell the rows apart (chosen in
    order: `lr`, then what still separates rows of the same `lr`, ...), then whatever other parts
    fit, and ends with ` …` where parts were left out.
    """

    def parts(row: dict[str, str], chosen: list[str]) -> list[str]:
        shown = [row[key] for key in keys if key in row and key in chosen]
        return shown + (["…"] if any(key not in chosen for key in row) else [])

    if all(len(" ".join(row.values())) <= limit for row in rows):
        return [" ".join(row[key] for key in keys if key in row) for row in rows]
    chosen: list[str] = []
    for key in keys:
        distinct = len({fit(parts(row, chosen), limit) for row in rows})
        if len({fit(parts(row, [*chosen, key]), limit) for row in rows}) > distinct:
            chosen.append(key)
    labels = []
    for row in rows:
        mine = list(chosen)
        for key in keys:
            if key in row and key not in mine and len(" ".join(parts(row, [*mine, key]))) <= limit:
                mine.append(key)
        labels.append(fit(parts(row, mine), limit))
    return labels


def label_groups(groups: list[Group]) -> None:
    """Label each group by what differs between the groups, in under 30 characters.

    If the strict choice of keys (see differing_keys) leaves two labels alike, every differing
    key is used; if shortening makes two labels alike, they are numbered (#1, #2, ...).
    """
    configs = [settings_of(group.runs[0]) for group in groups]
    for strict in (True, False):
        keys = differing_keys(configs, strict)
        names = short_keys([key for key in keys if not is_class_key(key)])
        rows = [describe(config, keys, names) or {"run": f"{group.runs[0].experiment}/{group.runs[0].name}"}
                for config, group in zip(configs, groups, strict=True)]
        if len({tuple(row.values()) for row in rows}) == len(rows):
            break
    keys = [*keys, "run"]  # "run": the run folder, for runs without a config.yaml
    labels = short_labels(rows, keys)
    if len(set(labels)) < len(labels):
        labels = short_labels([{"number": f"#{number}", **row} for number, row in enumerate(rows, 1)], ["number", *keys])
    for group, config, label, row in zip(groups, configs, labels, rows, strict=True):
        group.label, group.full = label, " ".join(row[key] for key in keys if key in row)
        group.settings = {key: config[key] for key in keys if key in config}


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs with the same configuration up to the seed form a group, labelled by what differs."""
    by_config: dict[tuple, list[Run]] = {}
    for run in runs:
        by_config.setdefault(configuration(run), []).append(run)
    groups = [Group(label="", runs=members) for members in by_config.values()]
    if len(groups) == 1:
        name = " ".join(sorted({run.experiment for run in runs}))
        groups[0].label, groups[0].full = fit([name]), name
    else:
        label_groups(groups)
    return groups


def key_names(groups: list[Group]) -> list[str]:
    """What the labels' short keys stand for: `lr = model.init_args.optimizer.init_args.lr`, ..."""
    keys = list(dict.fromkeys(key for group in groups for key in group.settings))
    names = short_keys([key for key in keys if not is_class_key(key)])
    lines = []
    for key in keys:
        if is_class_key(key):
            classes = sorted({str(group.settings[key]) for group in groups if key in group.settings},
                             key=lambda path: class_name(path).lower())
            lines.append(f"{', '.join(class_name(path).lower() for path in classes)} = {key} ({', '.join(classes)})")
        else:
            lines.append(f"{names[key]} = {key}")
    return lines


# Curves and figures


def batch_size_of(run: Run) -> float | None:
    """Samples per optimizer step, from the run's config: batch size x devices x nodes x accumulation.

    A full-batch run (tabular data with full_batch: true) steps on its whole training set, whatever
    its batch_size says: that is n_samples for generated data; for other data the config does not
    say how many, and None is returned (the run has no samples axis) rather than a wrong count.
    """
    if run.config.get("data.init_args.full_batch") is True:
        synthetic = run.config.get("data.init_args.source") == "synthetic"
        size = run.config.get("data.init_args.n_samples") if synthetic else None
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


def words(tag: str) -> str:
    """A scalar tag in words, for axis labels and titles: `val/acc` -> `validation accuracy`."""
    prefix, _, name = tag.rpartition("/")
    prefix = TAG_PREFIXES.get(prefix, prefix.replace("/", " ").replace("_", " "))
    return f"{prefix} {TAG_NAMES.get(name, name.replace('_', ' '))}".strip()


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


def figure_size(panels: int) -> tuple[float, float]:
    """One column of a paper for one panel, the page width for several (the legend comes on top)."""
    return (ONE_COLUMN if panels == 1 else PAGE_WIDTH), PANEL_HEIGHT


def legend_label(label: str, runs: int) -> str:
    """The group's label, with its number of seeds when there are several and it fits."""
    with_seeds = f"{label} ({runs} seeds)"
    return with_seeds if runs > 1 and len(with_seeds) <= LABEL_LIMIT else label


def add_legend(figure, handles: list, labels: list[str], inside: bool = False):
    """The legend centred below the panels, in as many columns as fit the figure's width.

    It lies outside the figure's box, so the panels keep their full size; saving with a tight
    bounding box (savefig.bbox in STYLE) makes the image taller to show it. `inside`: in the
    figure's box instead, the panels made smaller (for animations, whose frames keep their size).
    """
    renderer = figure.canvas.get_renderer()

    def legend(columns: int):
        if inside:
            return figure.legend(handles, labels, loc="outside lower center", ncols=columns, frameon=False)
        return figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=columns,
                             frameon=False)

    columns = len(labels)
    while columns > 1:
        attempt = legend(columns)
        fits = attempt.get_window_extent(renderer).width <= figure.bbox.width
        attempt.remove()
        if fits:
            break
        columns -= 1
    rows = math.ceil(len(labels) / columns)
    return legend(math.ceil(len(labels) / rows))  # as many entries in each row as possible


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


# Tables


def best_of(metric: str, values: np.ndarray) -> float:
    name = metric.rsplit("/", 1)[-1]
    return float(values.max() if HIGHER_IS_BETTER.search(name) else values.min())


def columns_for(metric: str) -> list[str]:
    """Final value for every metric; the best one too for validation metrics."""
    return ["final", "best"] if metric.startswith("val/") else ["final"]


def results_table(groups: list[Group], metrics: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, what is behind each row) of the final and best value of each metric per group.

    A cell is the value, or mean +- std over the group's seeds; `-` where no run logged it.
    Learning rates (opt/ metrics) are left out: their final value says nothing about results.
    Behind each row: its run folders, after the full label when the label had to be cut.
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
        folders = "`" + ", ".join(str(run.path) for run in group.runs) + "`"
        sources.append(folders if group.full in ("", group.label) else f"{group.full}: {folders}")
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
        text += [f"- {row[0]}: {source}" for row, source in zip(rows, sources, strict=True)]
    return "\n".join(text) + "\n"


def latex_escape(text: str) -> str:
    text = text.replace("\\", r"\textbackslash ")
    for char in "&%$#_":
        text = text.replace(char, "\\" + char)
    return text.replace("±", r"$\pm$").replace("…", r"\ldots{}")


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


def embed_table(document: Path, table: str, start_marker: str = TABLE_START, end_marker: str = TABLE_END) -> bool:
    """Put `table` between the markers (figures:results by default) of `document`; False if it has none."""
    if not document.is_file():
        return False
    text = document.read_text()
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        return False
    updated = text[: start + len(start_marker)] + "\n" + table + text[end:]
    if updated != text:
        document.write_text(updated)
    return True


# The command


def metric_stem(metric: str) -> str:
    return re.sub(r"[^\w.-]+", "_", metric).strip("_")


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
    (see trajectories.py); `animate` ("gif" or "mp4") adds its animation.
    """
    from .trajectories import check_animation_format, write_trajectories

    check_animation_format(animate)
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
    written += write_trajectories(runs, groups, out, prefix, animate, notes)
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
        prog="uv run python -m the_sgd_lecture_reproduced.figures",
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
