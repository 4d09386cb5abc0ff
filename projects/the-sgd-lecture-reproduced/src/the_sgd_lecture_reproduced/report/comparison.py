"""The numbers of a comparison of optimizers (compare.py): a sweep's runs grouped into settings
(the same configuration up to the seed), each run's summary value, whether it diverged or stopped
early, when it reached the target, and the best setting of each optimizer.

    from the_sgd_lecture_reproduced.report.comparison import Options, make_settings, best_settings
    from the_sgd_lecture_reproduced.report.runs import find_runs
    options = Options("vision_optimizers", Path("runs/vision_optimizers"), Path("runs/vision_optimizers_final"),
                      metric="val/acc", mode="max")
    settings = make_settings(find_runs([options.folder]), options, notes=[])
    best = best_settings(settings, options.mode)  # optimizer name -> its best Setting
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .curves import x_values
from .groups import class_name, configuration, differing_keys, fit, is_class_key, settings_of, short_keys, show
from .runs import Run

# Config keys that differ between a sweep's trials and its re-runs without changing the setting.
LOGGER_KEYS = ("trainer.logger.init_args.name", "trainer.logger.name", "trainer.logger.init_args.save_dir")
DIVERGED_TAG = "diverged"


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

    from ..optim import OPTIMIZERS

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
