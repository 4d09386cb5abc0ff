"""The sweep file (configs/sweeps/*.yaml), read and checked, and its search space turned into
points: the flags of train.py that each trial runs with.

    from logistic_regression_to_the_exact_optimum.sweep.sweep_file import load_sweep
    sweep = load_sweep("configs/sweeps/<name>.yaml")  # its keys as attributes: sweep.space, sweep.seeds, ...
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from ..config_errors import ConfigError, read_yaml

PACKAGE = __name__.split(".")[0]  # the project's package
SRC = Path(__file__).resolve().parents[2]  # the folder the package is imported from
METHODS = ("grid", "random", "tpe", "qmc")
KEYS = ("name", "experiment", "budget", "seeds", "metric", "mode", "summary", "method", "trials", "target",
        "space", "final_seeds", "compare", "prune", "sampler_seed")
# What a trial means: a study made with other values of these keys cannot be continued.
DEFINING_KEYS = ("experiment", "budget", "seeds", "metric", "mode", "summary", "method", "space")
LATER_DEFINING_KEYS = ("sampler_seed",)  # defining too, but only when given: studies made before them still load
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
POLL_SECONDS = 3  # how often a sweep waiting for trials that run elsewhere looks again
PLANNING_TIMEOUT = 60  # seconds to wait for the process that is queueing a new study's points
DONE = (TrialState.COMPLETE, TrialState.PRUNED)
DASHBOARD_HINT = "uv run optuna-dashboard {0}   (without uv: optuna-dashboard {0}), then open http://127.0.0.1:8080"



class SweepError(Exception):
    """A mistake in a sweep file or a failed run: the sweep stops with this one-line message."""


class Skipped(Exception):
    """A trial that has nothing to do (its point is run by another trial): Optuna marks it failed."""


@dataclass
class Phase:
    """The search, or the final re-runs of the protocol: each is one Optuna study."""

    name: str  # "search" or "final"
    study_name: str  # the study's name in the storage
    log_name: str  # runs go to runs/<log_name>/<point>_s<seed>/
    seeds: list  # each point runs once with each of these
    queued_only: bool  # true: run the queued points only (grid, final); false: Optuna samples new ones
    total: int  # how many points the phase runs in all
    later: float = 0  # the work of the phases after this one, in trials of this one (for the time to go)


@dataclass
class Sweep:
    """A sweep file, read and checked (configs/sweeps/*.yaml say what each key means)."""

    path: Path
    raw: dict  # the file as written
    name: str
    experiment: list  # config files of train.py, first to last
    budget: dict
    seeds: list
    metric: str
    mode: str
    summary: str
    method: str
    trials: int | None
    space: dict
    final_seeds: list
    compare: str
    prune: bool
    sampler_seed: int  # method qmc: which scrambled Halton sequence the points come from
    runs: Path  # where runs are written: the experiment logger's save_dir

    @property
    def direction(self) -> str:
        return "maximize" if self.mode == "max" else "minimize"

    @property
    def worst(self) -> float:
        return -math.inf if self.mode == "max" else math.inf

    def better(self, new: float, old: float | None) -> bool:
        return old is None or (new > old if self.mode == "max" else new < old)

    def search(self) -> Phase:
        total = len(grid_points(self.space)) if self.method == "grid" else self.trials
        queued_only = self.method in ("grid", "qmc")  # every point is chosen before the first trial
        compared = self.space.get(self.compare, [None])  # the final phase re-runs one point of each value
        later = len(as_list(compared) if not isinstance(compared, dict) else compared) * len(self.final_seeds) / len(self.seeds)
        return Phase("search", self.name, self.name, self.seeds, queued_only, total, later)

    @property
    def journal(self) -> Path:
        """Where the study is kept unless --storage names another place: runs/<sweep>/study.journal."""
        return self.runs / self.name / "study.journal"

    def points(self) -> list[tuple[dict, list]]:
        """The points of a grid or a qmc search, all chosen in advance (random and tpe: Optuna draws them)."""
        if self.method == "grid":
            return grid_points(self.space)
        return qmc_points(self.space, self.trials, self.sampler_seed)

    def plan(self) -> list[tuple[dict, str]]:
        """The points of points(), each with its name: what a grid or qmc study queues."""
        return [(params, point_name(flags)) for params, flags in self.points()]

    def final(self, points: int) -> Phase:
        name = f"{self.name}_final"
        return Phase("final", name, name, self.final_seeds, True, points)


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file and check it, with a message that says what to fix."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"no sweep file {path} (the sweeps that come with the project are in configs/sweeps/)")
    try:
        raw = read_yaml(path) or {}
    except ConfigError as error:  # a YAML mistake: its file and line
        raise SweepError(str(error)) from None
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise SweepError(f"{path}: unknown key(s) {', '.join(unknown)}; a sweep file has {', '.join(KEYS)}")
    for key in ("experiment", "metric", "space"):
        if not raw.get(key):
            raise SweepError(f"{path}: `{key}` is missing")
    method = raw.get("method", "grid")
    mode = raw.get("mode", "min")
    summary = raw.get("summary", "final")
    if method not in METHODS or mode not in ("min", "max") or summary not in ("final", "best"):
        raise SweepError(f"{path}: method is grid, random, tpe or qmc; mode is min or max; summary is final or best")
    trials = raw.get("trials")
    if method != "grid" and not (isinstance(trials, int) and trials > 0):
        raise SweepError(f"{path}: method {method} needs `trials`, the number of points to try")
    check_space(raw["space"], method, "space")
    compare = raw.get("compare", "optimizer")
    final_seeds = [int(seed) for seed in raw.get("final_seeds") or []]
    if final_seeds and compare not in raw["space"]:
        raise SweepError(f"{path}: final_seeds compares the values of `compare: {compare}`, which the space lacks")
    experiment = raw["experiment"] if isinstance(raw["experiment"], list) else [raw["experiment"]]
    experiment = [find_config(config, path) for config in experiment]
    return Sweep(path=path, raw=raw, name=str(raw.get("name") or path.stem), experiment=experiment,
                 budget=dict(raw.get("budget") or {}), seeds=[int(seed) for seed in raw.get("seeds") or [0]],
                 metric=raw["metric"], mode=mode, summary=summary, method=method, trials=trials,
                 space=raw["space"], final_seeds=final_seeds, compare=compare, prune=bool(raw.get("prune")),
                 sampler_seed=int(raw.get("sampler_seed") or 0), runs=runs_folder(experiment))


def find_config(config: str, sweep_path: Path) -> str:
    """A config file named in a sweep: relative to where sweep.py runs, else to the project."""
    for folder in (Path.cwd(), *sweep_path.resolve().parents[:3]):
        if (folder / config).is_file():
            return str(folder / config) if folder != Path.cwd() else config
    raise SweepError(f"{sweep_path}: experiment {config} not found (give its path from the project's folder)")


def runs_folder(experiment: list) -> Path:
    """Where the experiment's runs go (its TensorBoard logger's save_dir; runs/ if none is set)."""
    folder = "runs"
    for config in experiment:
        logger = ((yaml.safe_load(Path(config).read_text()) or {}).get("trainer") or {}).get("logger")
        if isinstance(logger, dict):
            folder = (logger.get("init_args") or {}).get("save_dir", folder)
    return Path(folder)


# A space maps flags of train.py (without --) to: a list (each value: every one in a grid, one of
# them otherwise), a range {low, high, log} (random, tpe and qmc only), or a choice {value: sub-space}
# whose sub-space applies only with that value (an lr range per optimizer, say; not with qmc). A
# sub-space's parameters are named "<flag> (<value>)" in Optuna, e.g. "optimizer.lr (adam)".


def is_range(values) -> bool:
    return isinstance(values, dict) and "low" in values and "high" in values


def is_choice(values) -> bool:
    return isinstance(values, dict) and not is_range(values)


def as_list(values) -> list:
    return values if isinstance(values, list) else [values]


def encode(value):
    """A value as Optuna can store it: lists and dicts become their JSON text (which train.py reads)."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def check_space(space, method: str, where: str) -> None:
    if not isinstance(space, dict) or not space:
        raise SweepError(f"{where}: give flags of train.py and their values")
    for key, values in space.items():
        if is_range(values):
            if method == "grid":
                raise SweepError(f"{where}.{key}: a range needs method random or tpe; for a grid, list its values")
            if not values["low"] < values["high"] or (values.get("log") and values["low"] <= 0):
                raise SweepError(f"{where}.{key}: a range needs low < high (and low > 0 with log: true)")
        elif is_choice(values):
            if method == "qmc":
                raise SweepError(f"{where}.{key}: method qmc takes ranges and lists of values; for a sub-space per "
                                 "value, use method random or tpe (or one sweep per value)")
            for choice, subspace in values.items():
                if subspace:
                    check_space(subspace, method, f"{where}.{key}.{choice}")
        elif values == []:
            raise SweepError(f"{where}.{key}: the list of values is empty")


def grid_points(space: dict, suffix: str = "") -> list[tuple[dict, list]]:
    """Every point of a grid, in the file's order: (Optuna's params, the (flag, value) pairs)."""
    points = [({}, [])]
    for key, values in space.items():
        name = key + suffix
        if is_choice(values):
            options = [({name: choice, **params}, [(key, choice), *flags])
                       for choice, subspace in values.items()
                       for params, flags in grid_points(subspace or {}, f"{suffix} ({choice})")]
        else:
            options = [({name: encode(value)}, [(key, encode(value))]) for value in as_list(values)]
        points = [({**params, **more}, flags + extra) for params, flags in points for more, extra in options]
    return points


def qmc_points(space: dict, count: int, seed: int) -> list[tuple[dict, list]]:
    """`count` points spread evenly over the space (method qmc), as AlgoPerf draws its trials: a
    scrambled Halton sequence (scipy.stats.qmc), the same points for the same seed. Each range
    and each list of several values takes one coordinate of the unit cube; a single value is fixed."""
    from scipy.stats import qmc

    free = [key for key, values in space.items() if is_range(values) or len(as_list(values)) > 1]
    cube = qmc.Halton(d=max(1, len(free)), scramble=True, seed=seed).random(count)
    points = []
    for row in cube:
        where = dict(zip(free, row, strict=False))
        flags = []
        for key, values in space.items():
            if is_range(values):
                flags.append((key, from_unit(values, where[key])))
            else:
                options = as_list(values)
                flags.append((key, encode(options[min(int(where.get(key, 0) * len(options)), len(options) - 1)])))
        points.append((dict(flags), flags))
    return points


def from_unit(values: dict, fraction: float):
    """The value of a range {low, high, log} at `fraction` (0 to 1) of the way, as suggest_range gives it."""
    low, high = values["low"], values["high"]
    if values.get("log"):
        value = math.exp(math.log(low) + fraction * (math.log(high) - math.log(low)))
    else:
        value = low + fraction * (high - low)
    if all(isinstance(bound, int) and not isinstance(bound, bool) for bound in (low, high)):
        return min(high, max(low, round(value)))
    return min(float(high), max(float(low), float(f"{value:.3g}")))  # 3 significant digits, inside the range


def suggest(trial: optuna.Trial, space: dict, suffix: str = "") -> list[tuple[str, object]]:
    """The point of a trial as (flag, value) pairs: the queued values, or Optuna's samples."""
    flags = []
    for key, values in space.items():
        name = key + suffix
        if is_choice(values):
            choice = trial.suggest_categorical(name, list(values))
            flags += [(key, choice), *suggest(trial, values[choice] or {}, f"{suffix} ({choice})")]
        elif is_range(values):
            flags.append((key, suggest_range(trial, name, values)))
        else:
            flags.append((key, trial.suggest_categorical(name, [encode(value) for value in as_list(values)])))
    return flags


def suggest_range(trial: optuna.Trial, name: str, values: dict):
    log = bool(values.get("log", False))
    low, high = values["low"], values["high"]
    if all(isinstance(bound, int) and not isinstance(bound, bool) for bound in (low, high)):
        return trial.suggest_int(name, low, high, log=log)
    value = trial.suggest_float(name, float(low), float(high), log=log)
    return float(f"{value:.3g}")  # 3 significant digits: short run names, and no false precision


def to_arg(value) -> str:
    """A value as train.py reads it on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def flag_args(flags: list) -> list[str]:
    return [arg for key, value in flags for arg in (f"--{key}", to_arg(value))]


def point_name(flags: list) -> str:
    """A point's name, from what it changes (adam_lr0.001), as train.py names a run."""
    from ..run.flags import name_from_arguments

    return name_from_arguments(flag_args(flags)) or "default"


def params_of(trial: optuna.trial.FrozenTrial) -> dict:
    """A trial's point as Optuna's params (a queued trial has them before it starts)."""
    return trial.params or trial.system_attrs.get("fixed_params", {})


def point_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)
