"""Run folders as one tidy pandas DataFrame: what the figures and compare commands, and your own
plots, are made from.

    from logistic_regression_to_the_exact_optimum.report.runs import load_runs, run_table
    frame = load_runs("vision_digits")  # runs/vision_digits/*/: one row per run, tag and step
    frame[frame.tag == "val/acc"]       # columns: run, experiment, every config key (dotted), tag, step, value, wall_time
    run_table(frame)                    # one row per run: its settings, the final and best value of each tag

A run is a folder runs/<experiment>/<run name>/ with TensorBoard event files and the config.yaml
it was made with. Its scalars are read with TensorBoard's own reader; `step` is the number of
optimizer steps taken before the value was measured (see logged_after_the_step). The selectors
are those of the figures command: folders, experiment or run names, and globs of these.
"""

import glob
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..metrics import higher_is_better

GLOB_CHARACTERS = re.compile(r"[*?[]")
SCALAR_COLUMNS = ["tag", "step", "value", "wall_time"]  # after run, experiment and the config keys
LOGGED_BY_VALIDATION = ("train/excess_loss",)  # train/ tags measured by a validation (see logged_after_the_step)


@dataclass
class Series:
    """One scalar tag of one run: optimizer steps, wall-clock times and values."""

    steps: np.ndarray
    times: np.ndarray
    values: np.ndarray


@dataclass
class Run:
    """One run folder: its flattened config.yaml, every scalar it logged, and the metrics its
    module declared better higher (None if it recorded none: see metrics.py)."""

    path: Path
    config: dict[str, object]
    scalars: dict[str, Series]
    higher_is_better: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        """The run's name: its folder's name (version_N, or the name given to the run)."""
        return self.path.name

    @property
    def experiment(self) -> str:
        """The experiment: the name of the folder that holds the run folder."""
        return self.path.parent.name


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
    step k - 1 in TensorBoard. So does a train/ tag that a validation measures (the tabular
    family's train/excess_loss, the objective on the whole training set: LOGGED_BY_VALIDATION).
    A training step's metrics (train/loss at step k, logged before the step's update) are of the
    weights after k steps, as logged. (A test run after training logs at the steps taken: its one
    point is read one step late.)"""
    return tag.startswith(("val/", "test/")) or tag in LOGGED_BY_VALIDATION


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


class HparamsLoader(yaml.SafeLoader):
    """Reads Lightning's hparams.yaml, whose Python-specific values (!!python/tuple, ...) become None."""


HparamsLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def declared_higher_is_better(folder: Path) -> tuple[str, ...] | None:
    """The metrics the run's module declared better higher (metrics_higher_is_better, which
    training records in hparams.yaml); None for a run that recorded none (see metrics.py)."""
    path = folder / "hparams.yaml"
    try:
        declared = (yaml.load(path.read_text(), Loader=HparamsLoader) or {}).get("metrics_higher_is_better")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return tuple(declared) if isinstance(declared, list) else None


def read_run(folder: Path) -> Run:
    """A run folder's config.yaml (flattened; empty if it has none), its scalars, and what its
    module declared better higher."""
    config_file = folder / "config.yaml"
    config = flatten(yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    return Run(path=folder, config=config, scalars=read_scalars(folder), higher_is_better=declared_higher_is_better(folder))


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


def cut_off_at(event_file: Path) -> int | None:
    """Where an event file stops in the middle of a record (a run killed while writing, a file
    copied in part): the size of its whole records; None when it ends with a whole record.
    TensorBoard's reader stops at such a point without a word, so the run's last values would
    silently be those of its middle. (A record: its length in 8 bytes, 4 of checksum, the data,
    4 of checksum.)"""
    size, position = event_file.stat().st_size, 0
    with open(event_file, "rb") as file:
        while position < size:
            header = file.read(8)
            end = position + 16 + struct.unpack("<Q", header)[0] if len(header) == 8 else size + 1
            if end > size:
                return position
            position = file.seek(end)
    return None


def run_folders(selectors: list[str], root: Path = Path("runs"), notes: list[str] | None = None) -> list[Path]:
    """Every run folder (a folder with event files) at or under what the selectors name, each
    once; a run whose event file is cut off is left out, and a note says which and why."""
    notes = [] if notes is None else notes
    found: dict[Path, Path] = {}  # the absolute path -> the path as found
    for selector in selectors:
        events = [event for path in matching_folders(str(selector), root) for event in path.rglob("events.out.tfevents.*")]
        if not events:
            notes.append(f"{selector}: no run there (not a folder with runs, nor an experiment or run under {root})")
        for event in sorted(events):
            if (position := cut_off_at(event)) is not None:
                notes.append(f"left out {event.parent}: its event file {event.name} is cut off after {position} of "
                             f"{event.stat().st_size} bytes (still being written, killed while writing, or copied in "
                             "part), so its last values are unknown: wait for it to finish, or run it again")
                found[event.parent.absolute()] = None
            found.setdefault(event.parent.absolute(), event.parent)
    return sorted((folder for folder in found.values() if folder is not None), key=run_order)


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


# The tidy table


def hashable(value: object) -> object:
    """A config value as a DataFrame cell that groupby accepts: lists become tuples."""
    return tuple(hashable(item) for item in value) if isinstance(value, (list, tuple)) else value


def tidy_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run, scalar tag and step: run (its folder), experiment, every config key
    (dotted, as in `model.init_args.optimizer.init_args.lr`), tag, step, value and wall_time; and,
    where runs recorded it, metrics_higher_is_better (what their module declared, see metrics.py)."""
    parts = []
    for run in runs:
        scalars = pd.concat([pd.DataFrame({"tag": tag, "step": series.steps.astype(np.int64), "value": series.values,
                                           "wall_time": series.times}) for tag, series in run.scalars.items()]
                            or [pd.DataFrame(columns=SCALAR_COLUMNS)], ignore_index=True)
        about = {"run": run.path.as_posix(), "experiment": run.experiment}
        about |= {key: hashable(value) for key, value in run.config.items() if key not in about and key not in SCALAR_COLUMNS}
        if run.higher_is_better is not None:  # what run_results takes for the best value
            about["metrics_higher_is_better"] = run.higher_is_better
        parts.append(pd.DataFrame([about]).merge(scalars, how="cross"))
    if not parts:
        return pd.DataFrame(columns=["run", "experiment", *SCALAR_COLUMNS])
    frame = pd.concat(parts, ignore_index=True)
    return frame[[column for column in frame.columns if column not in SCALAR_COLUMNS] + SCALAR_COLUMNS]


def load_runs(*selectors: str | Path, root: Path | str = Path("runs"), exclude: list[str] | None = None,
              keep_all: bool = False) -> pd.DataFrame:
    """The tidy frame (see tidy_frame) of the runs the selectors name (every run under `root` if
    none), chosen as the figures command chooses them: without fast_dev_run and short runs unless
    `keep_all`, without those matching `exclude`, and without runs whose event file is cut off
    (a warning says what was left out)."""
    root, notes = Path(root), []
    frame = tidy_frame(select_runs([str(selector) for selector in selectors] or [str(root)], root, exclude, keep_all, notes))
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return frame


def none_if_missing(value: object) -> object:
    """A frame's cell, None where it is missing (a run without that column's value)."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def run_results(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run and tag (the index): its `final` value (at the last step) and its `best`
    (the highest for the metrics the run's module declared better higher, or, where it recorded
    none, for accuracies and the like, see metrics.py; the lowest for the rest)."""
    ordered = frame.sort_values(["run", "tag", "step"], kind="stable")
    final = ordered.drop_duplicates(["run", "tag"], keep="last").set_index(["run", "tag"])["value"]
    values = ordered.groupby(["run", "tag"], sort=False)["value"]
    highest, lowest = values.max(), values.min()
    declared = (ordered.drop_duplicates("run").set_index("run")["metrics_higher_is_better"]
                if "metrics_higher_is_better" in ordered else pd.Series(dtype=object))
    higher = np.array([higher_is_better(tag, none_if_missing(declared.get(run))) for run, tag in highest.index], dtype=bool)
    best = pd.Series(np.where(higher, highest, lowest), index=highest.index)
    return pd.DataFrame({"final": final, "best": best}).reindex(final.index)


def run_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (indexed by its folder): experiment, config keys, then `<tag> final` and
    `<tag> best` for every tag it logged."""
    settings = frame.drop(columns=SCALAR_COLUMNS).drop_duplicates("run").set_index("run")
    results = run_results(frame).unstack("tag")
    results = results[sorted(results.columns, key=lambda column: (column[1], column[0] != "final"))]
    results.columns = [f"{tag} {kind}" for kind, tag in results.columns]
    return settings.join(results)
