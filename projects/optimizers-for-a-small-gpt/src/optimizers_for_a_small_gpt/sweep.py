"""Hyperparameter sweeps on Optuna, in which every trial is an ordinary run of train.py.

    uv run python sweep.py --config configs/sweeps/<name>.yaml               # run a sweep, or finish it
    uv run python sweep.py --config configs/sweeps/<name>.yaml --workers 2   # two trials at a time
    uv run python sweep.py --config configs/sweeps/<name>.yaml --storage postgresql://user:password@host/db
    uv run optuna-dashboard runs/<name>/study.journal                        # watch it (http://127.0.0.1:8080)

A sweep file (configs/sweeps/*.yaml; its comments explain every key) names the experiment all
trials start from, the search space, the seeds, the budget, the metric and the search method
(grid, random or tpe). The words used here:

- a *point* is one setting of the search space, e.g. `--optimizer adam --optimizer.lr 0.001`;
- a *trial* (Optuna's word) runs one point once with each seed of the sweep. Each seed is an
  ordinary run in runs/<sweep>/<point>_s<seed>/ (config.yaml, checkpoints/, TensorBoard events,
  and output.log, what the run printed), so `python train.py fit --config <that>/config.yaml`
  repeats it. The trial's value is the metric's mean over the seeds;
- a *worker* is one Python process that runs trials one after another (imports are paid once).

The study, Optuna's record of every trial, is in runs/<sweep>/study.journal unless --storage
names another one, which any number of workers on any number of machines can share. Stopping a
sweep (Ctrl-C, a kill, a time limit) leaves it consistent: the same command finishes it and
re-runs only the trials that were cut off. A diverged run is a result, not a crash: its trial
gets the worst value there is (-inf for a metric to maximize, +inf for one to minimize).

With `final_seeds`, the best point of each value of `compare` (each optimizer, say) is re-run
with those fresh seeds after the search, in runs/<sweep>_final/: the fair comparison to report.
"""

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import logging
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from lightning.pytorch import Callback
from optuna.trial import TrialState

PACKAGE = __package__ or Path(__file__).parent.name
SRC = Path(__file__).resolve().parents[1]  # the folder the package is imported from
METHODS = ("grid", "random", "tpe")
KEYS = ("name", "experiment", "budget", "seeds", "metric", "mode", "summary", "method", "trials", "target",
        "space", "final_seeds", "compare", "prune")
# What a trial means: a study made with other values of these keys cannot be continued.
DEFINING_KEYS = ("experiment", "budget", "seeds", "metric", "mode", "summary", "method", "space")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
POLL_SECONDS = 3  # how often a sweep waiting for trials that run elsewhere looks again
PLANNING_TIMEOUT = 60  # seconds to wait for the process that is queueing a new study's points
DONE = (TrialState.COMPLETE, TrialState.PRUNED)
DASHBOARD_HINT = "uv run optuna-dashboard {0}   (without uv: optuna-dashboard {0}), then open http://127.0.0.1:8080"


class SweepError(Exception):
    """A mistake in a sweep file or a failed run: the sweep stops with this one-line message."""


class Skipped(Exception):
    """A trial that has nothing to do (its point is run by another trial): Optuna marks it failed."""


# ----------------------------------------------------------------------------- the sweep file


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
        compared = self.space.get(self.compare, [None])  # the final phase re-runs one point of each value
        later = len(as_list(compared) if not isinstance(compared, dict) else compared) * len(self.final_seeds) / len(self.seeds)
        return Phase("search", self.name, self.name, self.seeds, self.method == "grid", total, later)

    def final(self, points: int) -> Phase:
        name = f"{self.name}_final"
        return Phase("final", name, name, self.final_seeds, True, points)


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file and check it, with a message that says what to fix."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"no sweep file {path} (the sweeps that come with the project are in configs/sweeps/)")
    raw = yaml.safe_load(path.read_text()) or {}
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
        raise SweepError(f"{path}: method is grid, random or tpe; mode is min or max; summary is final or best")
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
                 runs=runs_folder(experiment))


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


# ----------------------------------------------------------------------------- the search space
# A space maps flags of train.py (without --) to: a list (each value: every one in a grid, one of
# them otherwise), a range {low, high, log} (random and tpe only), or a choice {value: sub-space}
# whose sub-space applies only with that value (an lr range per optimizer, say). A sub-space's
# parameters are named "<flag> (<value>)" in Optuna, e.g. "optimizer.lr (adam)".


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
    from .shorthands import name_from_arguments

    return name_from_arguments(flag_args(flags)) or "default"


def params_of(trial: optuna.trial.FrozenTrial) -> dict:
    """A trial's point as Optuna's params (a queued trial has them before it starts)."""
    return trial.params or trial.system_attrs.get("fixed_params", {})


def point_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


# ----------------------------------------------------------------------------- one run


class PruneHopeless(Callback):
    """Reports the metric to Optuna after each validation and stops a run that Optuna's pruner
    finds hopeless. Only in sweeps with `prune: true`, and only while a sweep runs the first
    seed of a trial; elsewhere (train.py fit --config <trial>/config.yaml) it does nothing."""

    trial = None  # the Optuna trial being run, set by the sweep
    metric = None  # the sweep's metric

    def __init__(self):
        self.pruned = False
        self.validations = 0  # the step of Optuna's reports: 1 after the first validation, ...

    def on_validation_end(self, trainer, pl_module):
        trial, value = PruneHopeless.trial, trainer.callback_metrics.get(PruneHopeless.metric or "")
        if trial is None or value is None or trainer.sanity_checking:
            return
        self.validations += 1
        trial.report(float(value), step=self.validations)
        if trial.should_prune():
            self.pruned = True
            trainer.should_stop = True


@contextlib.contextmanager
def captured_output():
    """Everything a run prints (Lightning's messages, its summary table) goes into a string."""
    buffer = io.StringIO()
    handlers = [handler for name in ("lightning.pytorch", "lightning.fabric")
                for handler in logging.getLogger(name).handlers if type(handler) is logging.StreamHandler]
    streams = [handler.setStream(buffer) for handler in handlers]
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)


def run_one(args: list[str], folder: Path, sweep: Sweep) -> dict:
    """One run of train.py in this process; what it reached, as the study records it."""
    from .cli import main
    from .summary import RunSummary

    started, code, cli = time.perf_counter(), 0, None
    ctrl_c = signal.getsignal(signal.SIGINT)
    with captured_output() as output:
        try:
            cli = main(args)
        except SystemExit as exit:  # main's way out of a config mistake (2); Lightning's after Ctrl-C (1)
            code = exit.code
        except Exception:
            print_tail(output.getvalue(), args)
            raise
        finally:
            signal.signal(signal.SIGINT, ctrl_c)  # Lightning ignores Ctrl-C once it has caught one
            if folder.is_dir():
                (folder / "output.log").write_text(output.getvalue())
    if code == 1:
        raise KeyboardInterrupt
    if code:
        print_tail(output.getvalue(), args)
        raise SweepError(f"train.py stopped with the error above (run {folder})")
    result = {"state": "done", "folder": str(folder), "seconds": round(time.perf_counter() - started, 1),
              "diverged": cli is None, "pruned": False, "value": None}
    if cli is not None:
        summary = next(callback for callback in cli.trainer.callbacks if isinstance(callback, RunSummary))
        values = summary.best if sweep.summary == "best" else summary.final
        if sweep.metric not in values:
            raise SweepError(f"the runs log no {sweep.metric}; choose the metric among {', '.join(sorted(values))}")
        result["value"] = values[sweep.metric]
        result["pruned"] = any(getattr(callback, "pruned", False) for callback in cli.trainer.callbacks
                               if isinstance(callback, PruneHopeless))
    return result


def print_tail(text: str, args: list[str]) -> None:
    lines = text.strip().splitlines()[-25:]
    print("\n".join([f"python train.py {' '.join(args)}", *lines]), file=sys.stderr, flush=True)


def train_args(sweep: Sweep, phase: Phase, flags: list, seed: int, name: str) -> list[str]:
    """The command line of train.py for one seed of a point (without `python train.py`)."""
    args = ["fit"] + [arg for config in sweep.experiment for arg in ("--config", config)]
    args += flag_args(list(sweep.budget.items())) + flag_args(flags)
    args += ["--seed_everything", str(seed), "--trainer.logger.init_args.name", phase.log_name, "--name", name, *QUIET]
    if sweep.prune and phase.name == "search":
        args += ["--trainer.callbacks+", json.dumps({"class_path": f"{PACKAGE}.sweep.PruneHopeless"})]
    return args


def free_folder(parent: Path, name: str) -> Path:
    """parent/name, or parent/name_2, name_3, ... when it is taken (as train.py names runs)."""
    unique, number = name, 1
    while (parent / unique).exists():
        number += 1
        unique = f"{name}_{number}"
    return parent / unique


# ----------------------------------------------------------------------------- one trial


def this_worker() -> dict:
    """Who runs a trial: kept with it, so that a later sweep can tell that this process died."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": process_start(os.getpid())}


def process_start(pid: int) -> str | None:
    """When a process started (Linux), to tell a live worker from a new process with its number;
    "zombie" for a process that has ended but whose parent has not yet collected it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return "zombie" if fields[0] == "Z" else fields[19]


def is_dead(worker: dict | None) -> bool:
    """Whether the process that ran a trial is surely gone (knowable on this machine only)."""
    if not worker or worker.get("host") != socket.gethostname() or os.name == "nt":
        return False  # (on Windows, os.kill would end the process instead of looking at it)
    try:
        os.kill(worker["pid"], 0)  # signal 0: checks the process exists, sends nothing
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    since = process_start(worker["pid"])
    return since == "zombie" or (since is not None and since != worker.get("since"))


def skip(trial: optuna.Trial, reason: str):
    trial.set_user_attr("skipped", reason)
    raise Skipped(reason)


class Objective:
    """What a worker does with a trial: run its point with every seed, and return the mean."""

    def __init__(self, sweep: Sweep, phase: Phase):
        self.sweep, self.phase = sweep, phase

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", this_worker())
        queued = "point" in trial.user_attrs
        if self.phase.queued_only and not queued:
            skip(trial, "nothing left to run: other workers took the last points")
        flags = suggest(trial, self.sweep.space)
        name = trial.user_attrs.get("point") or point_name(flags)
        trial.set_user_attr("point", name)
        others = [other for other in trial.study.get_trials(deepcopy=False)
                  if other.number != trial.number and "skipped" not in other.user_attrs
                  and point_key(params_of(other)) == point_key(trial.params)]
        if queued:
            self.check_not_taken(trial, others)
        results = []
        for index, seed in enumerate(self.phase.seeds):
            PruneHopeless.trial, PruneHopeless.metric = (trial if index == 0 else None), self.sweep.metric
            try:
                results.append(self.run_seed(trial, flags, name, seed, others))
            finally:
                PruneHopeless.trial = None
            if results[-1]["pruned"]:
                raise optuna.TrialPruned(f"{name}: hopeless after {results[-1]['seconds']} s")
        if any(result["diverged"] for result in results):
            trial.set_user_attr("diverged", True)
            return self.sweep.worst
        return statistics.fmean(result["value"] for result in results)

    @staticmethod
    def check_not_taken(trial: optuna.Trial, others: list) -> None:
        """Two processes may queue the same point at once: the trial that started it first runs it."""
        for other in others:
            if other.state in DONE:
                skip(trial, f"trial {other.number} ran this point already")
            started_first = (other.datetime_start, other.number) < (trial.datetime_start, trial.number)
            if other.state == TrialState.RUNNING and started_first:
                skip(trial, f"trial {other.number} runs this point")

    def run_seed(self, trial: optuna.Trial, flags: list, name: str, seed: int, others: list) -> dict:
        """One seed of a point: reuse its run if an earlier, cut-off trial finished it; else run it."""
        key = f"run s{seed}"
        records = [earlier.user_attrs[key] for earlier in others
                   if earlier.state == TrialState.FAIL and key in earlier.user_attrs]
        for record in records:
            if record["state"] == "done" and Path(record["folder"]).is_dir():
                trial.set_user_attr(key, record)
                return record
        for record in records:
            if record["state"] == "running" and Path(record["folder"]).is_dir():
                shutil.rmtree(record["folder"])  # cut off: it is run again from the start
                print(f"  removed {record['folder']}, a run cut off by an earlier stop (it runs again now)", flush=True)
        folder = free_folder(self.sweep.runs / self.phase.log_name, f"{name}_s{seed}")
        trial.set_user_attr(key, {"state": "running", "folder": str(folder)})
        result = run_one(train_args(self.sweep, self.phase, flags, seed, folder.name), folder, self.sweep)
        trial.set_user_attr(key, result)
        return result

    def progress(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """The line printed after each trial: its value, the best so far, what is left and how long."""
        if "skipped" in trial.user_attrs:
            return
        trials = [t for t in study.get_trials(deepcopy=False) if "skipped" not in t.user_attrs]
        done = [t for t in trials if t.state in DONE]
        place = sum(t.datetime_complete < trial.datetime_complete for t in done) + 1  # the order they finished in
        left = max(0, self.phase.total - place)
        best = best_trial(self.sweep, done)
        best_text = f"best {best.value:.4g} {best.user_attrs['point']}" if best else "best: none yet"
        seconds = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done if t.datetime_start]
        running = sum(t.state == TrialState.RUNNING for t in trials)  # the other workers' trials
        to_go = statistics.fmean(seconds) * (left + self.phase.later) / (running + 1) if seconds else 0
        eta = f", about {duration(to_go)} to go" if to_go else ""
        took = duration((trial.datetime_complete - trial.datetime_start).total_seconds())
        width = max(len(t.user_attrs.get("point", "")) for t in trials)  # the queued points' names are known
        print(f"[{place:>3}/{self.phase.total}] {trial.user_attrs.get('point', '?'):<{width}}  "
              f"{outcome(self.sweep, trial):<20} {took:>6} | {best_text} | {left} left{eta}", flush=True)


def outcome(sweep: Sweep, trial: optuna.trial.FrozenTrial) -> str:
    if trial.state == TrialState.PRUNED:
        return "pruned (hopeless)"
    if trial.state != TrialState.COMPLETE:
        return trial.state.name.lower()
    if trial.user_attrs.get("diverged"):
        return "DIVERGED"
    return f"{sweep.metric} {trial.value:.4g}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def best_trial(sweep: Sweep, trials: list) -> optuna.trial.FrozenTrial | None:
    """The best finished trial that did not diverge, or None."""
    best = None
    for trial in trials:
        if trial.state == TrialState.COMPLETE and math.isfinite(trial.value):
            if sweep.better(trial.value, best.value if best else None):
                best = trial
    return best


# ----------------------------------------------------------------------------- the study


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A database URL (postgresql://..., sqlite:///...), or the path of a journal file."""
    if "://" in url:
        for attempt in range(5):  # workers that start together race to create Optuna's tables: try again
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    # The heartbeat lets workers see that another one died: its trial fails after grace_period s.
                    return optuna.storages.RDBStorage(database_url(url), heartbeat_interval=60, grace_period=180)
            except ImportError as error:
                raise SweepError(f"--storage {shown(url)} needs its database driver: {error}") from None
            except Exception as error:  # SQLAlchemy's: the server cannot be reached, a wrong password, ...
                if attempt == 4:
                    raise SweepError(f"cannot open the study storage {shown(url)}: {str(error).splitlines()[0]}") from None
                time.sleep(1 + attempt + os.getpid() % 3)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    Path(url).parent.mkdir(parents=True, exist_ok=True)
    lock = JournalFileOpenLock(url) if os.name == "nt" else None  # symbolic links need rights on Windows
    return JournalStorage(JournalFileBackend(url, lock_obj=lock))


def database_url(url: str) -> str:
    """SQLAlchemy 2.1 reads postgresql:// with the psycopg driver; use psycopg2 when only it is installed."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and not importlib.util.find_spec("psycopg") and importlib.util.find_spec("psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    return url


def shown(url: str) -> str:
    """A storage URL without its password, to print."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    user, host = rest.rsplit("@", 1)
    return f"{scheme}://{user.split(':', 1)[0]}:***@{host}" if ":" in user else url


def open_study(sweep: Sweep, phase: Phase, storage, plan: list | None) -> optuna.Study:
    """Create the phase's study and queue its points, or load the study and check that it is this sweep's."""
    definition = json.loads(json.dumps({key: sweep.raw.get(key) for key in DEFINING_KEYS}))
    try:
        study = optuna.create_study(study_name=phase.study_name, storage=storage, direction=sweep.direction)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=phase.study_name, storage=storage)
        if study.user_attrs.get("sweep", definition) != definition:
            raise SweepError(f"the study {phase.study_name} was made from another version of {sweep.path}: "
                             f"delete {sweep.runs / sweep.name}/ (and {sweep.name}_final/) to start afresh, "
                             "or give the sweep a new `name:`") from None
        deadline = time.monotonic() + PLANNING_TIMEOUT
        while not study.user_attrs.get("planned") and time.monotonic() < deadline:
            time.sleep(1)  # another process has just made the study and is queueing its points
        return study
    study.set_user_attr("sweep", definition)
    prepare(study, phase, plan)
    study.set_user_attr("planned", True)
    return study


def prepare(study: optuna.Study, phase: Phase, plan: list | None) -> None:
    """Fail the trials whose worker died, and queue every point that still has to run: the
    planned ones (grid, final) or those of trials that were cut off (random, tpe)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_dead(trial.user_attrs.get("worker")):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, ValueError):
                study.tell(trial.number, state=TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # PostgreSQL and SQLite: workers whose heartbeat stopped
    trials = [trial for trial in study.get_trials(deepcopy=False) if "skipped" not in trial.user_attrs]
    taken = {point_key(params_of(trial)) for trial in trials if trial.state != TrialState.FAIL}
    if plan is None:  # random, tpe: the points of failed trials, up to the number of trials
        plan = [(trial.params, trial.user_attrs.get("point")) for trial in trials
                if trial.state == TrialState.FAIL and trial.params]
    for params, name in plan:
        if point_key(params) not in taken and (phase.queued_only or len(taken) < phase.total):
            study.enqueue_trial(params, user_attrs={"point": name})
            taken.add(point_key(params))


def counts(study: optuna.Study) -> dict:
    """How many trials of a study are in each state (skipped ones left out)."""
    trials = [trial for trial in study.get_trials(deepcopy=False) if "skipped" not in trial.user_attrs]
    return {state: sum(trial.state == state for trial in trials) for state in TrialState}


def something_to_start(study: optuna.Study, phase: Phase) -> bool:
    count = counts(study)
    if count[TrialState.WAITING]:
        return True
    started = count[TrialState.COMPLETE] + count[TrialState.PRUNED] + count[TrialState.RUNNING]
    return not phase.queued_only and started < phase.total


# ----------------------------------------------------------------------------- workers


def work(sweep: Sweep, phase: Phase, storage) -> None:
    """A worker: run the phase's trials one after another until none is left to start."""
    sampler = {"tpe": optuna.samplers.TPESampler(constant_liar=True)}.get(sweep.method, optuna.samplers.RandomSampler())
    # Pruning (prune: true) stops a trial whose metric is worse than the median of earlier trials'
    # at the same validation; never before 4 trials are done, nor at a run's first validation.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2) if sweep.prune \
        else optuna.pruners.NopPruner()
    study = optuna.load_study(study_name=phase.study_name, storage=storage, sampler=sampler, pruner=pruner)
    objective = Objective(sweep, phase)
    with terminate_as_interrupt():
        while something_to_start(study, phase):
            study.optimize(objective, n_trials=1, callbacks=[objective.progress], catch=(Skipped,), gc_after_trial=True)


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (kill, or SLURM's time limit) stops a worker as Ctrl-C does: its trial is marked
    failed, to be run again by the next sweep."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs workers are spread over (CUDA_VISIBLE_DEVICES, else what nvidia-smi lists)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [gpu for gpu in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if gpu.strip()]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(index) for index, line in enumerate(line for line in listing.splitlines() if line.startswith("GPU "))]


def run_workers(sweep: Sweep, phase: Phase, storage_url: str, workers: int, threads: int | None) -> None:
    """Run the phase with `workers` processes: this one, or as many new ones, each with its share
    of the CPU threads (`threads` each if given) and its own GPU, while there are GPUs."""
    if workers == 1:
        if threads:
            import torch

            torch.set_num_threads(threads)
        work(sweep, phase, open_storage(storage_url))
        return
    threads, gpus = str(threads or max(1, available_cpus() // workers)), visible_gpus()
    command = [sys.executable, "-m", f"{PACKAGE}.sweep", "--config", str(sweep.path), "--storage", storage_url,
               "--worker-of", phase.name, "--threads", threads]
    processes = []
    for index in range(workers):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        processes.append(subprocess.Popen(command, env=env))
    try:
        codes = [process.wait() for process in processes]
    except KeyboardInterrupt:
        stop_workers(processes)
        raise
    if any(codes):
        raise SweepError(f"{sum(map(bool, codes))} of {workers} workers stopped with an error (see above)")


def stop_workers(processes: list) -> None:
    """After Ctrl-C: the workers got it too (from the terminal); if not, pass it on."""
    time.sleep(2)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()


# ----------------------------------------------------------------------------- the whole sweep


def run_phase(sweep: Sweep, phase: Phase, storage_url: str, options: argparse.Namespace, plan: list | None) -> optuna.Study:
    """Run one phase to its end, also waiting for trials that other processes run."""
    study = open_study(sweep, phase, open_storage(storage_url), plan)
    done = counts(study)[TrialState.COMPLETE] + counts(study)[TrialState.PRUNED]
    if done:
        print(f"Already done: {done} of {phase.total} points" + (" (nothing left to run)." if done >= phase.total else "."))
    waited = None
    while True:
        prepare(study, phase, plan)
        if something_to_start(study, phase):
            run_workers(sweep, phase, storage_url, options.workers, options.threads)
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        if not running and not something_to_start(study, phase):
            return study
        if waited is None or time.monotonic() - waited > 60:
            where = ", ".join(f"{t.user_attrs.get('point', t.number)} (on {t.user_attrs.get('worker', {}).get('host', '?')})"
                              for t in running)
            print(f"Waiting for what other processes still run: {where}", flush=True)
            waited = time.monotonic()
        time.sleep(POLL_SECONDS)


def final_plan(sweep: Sweep, study: optuna.Study) -> list[tuple[dict, str]]:
    """The best point of each value of `compare`, to re-run with the final seeds."""
    best = best_per_value(sweep, study)
    return [(trial.params, trial.user_attrs["point"]) for trial in best.values()]


def best_per_value(sweep: Sweep, study: optuna.Study) -> dict:
    """{value of `compare`: its best trial} (one entry, None, when the space has no such key)."""
    groups = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        groups.setdefault(trial.params.get(sweep.compare), []).append(trial)
    best = {value: best_trial(sweep, trials) for value, trials in groups.items()}
    return {value: trial for value, trial in best.items() if trial is not None}


def seed_values(trial: optuna.trial.FrozenTrial) -> list[float]:
    return [record["value"] for key, record in trial.user_attrs.items()
            if key.startswith("run s") and isinstance(record, dict) and record.get("value") is not None]


def print_header(sweep: Sweep, phase: Phase, storage_url: str, default_storage: bool) -> None:
    seeds = seed_words(sweep.seeds)
    method = {"grid": "grid search", "random": "random search", "tpe": "TPE search"}[sweep.method]
    budget = ", ".join(f"{key}={value}" for key, value in sweep.budget.items()) or "the experiment's budget"
    better = "higher" if sweep.mode == "max" else "lower"
    print(f"Sweep {sweep.name}: {method} over {phase.total} points, each run with {seeds}\n"
          f"  from {' + '.join(sweep.experiment)} with {budget}; compared by the {sweep.summary} {sweep.metric} "
          f"({better} is better, mean over seeds)\n"
          f"  runs:      {sweep.runs / sweep.name}/<point>_s<seed>/   (tensorboard --logdir {sweep.runs / sweep.name})\n"
          f"  study:     {shown(storage_url)}{'' if default_storage else '   (shared with other workers)'}\n"
          f"  live view: {DASHBOARD_HINT.format(shown(database_url(storage_url)))}\n"
          "  Stop it at any time with Ctrl-C: the same command finishes it.", flush=True)


def print_table(sweep: Sweep, trials: list, title: str) -> None:
    """A small table, best first: the compared value, the point, its result over the seeds."""
    trials = sorted(trials, key=lambda trial: trial.value if sweep.mode == "min" else -trial.value)
    rows = [("point", sweep.metric)] + [(trial.user_attrs["point"], result(trial)) for trial in trials]
    if sweep.compare in sweep.space:  # first, the value compared
        values = [sweep.compare.rsplit(".", 1)[-1]] + [str(trial.params[sweep.compare]) for trial in trials]
        rows = [(value, *row) for value, row in zip(values, rows, strict=True)]
    widths = [max(len(row[column]) for row in rows) + 2 for column in range(len(rows[0]) - 1)]
    print(title)
    for row in rows:
        print("  " + "".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=False)) + row[-1])


def result(trial: optuna.trial.FrozenTrial) -> str:
    """A trial's result over its seeds: the mean, ± the standard deviation when there are several."""
    if trial.user_attrs.get("diverged"):
        return "DIVERGED"
    values = seed_values(trial)
    return f"{statistics.fmean(values):.4g}" + (f" ± {statistics.stdev(values):.2g}" if len(values) > 1 else "")


def seed_words(seeds: list) -> str:
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def over(seeds: list) -> str:
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"mean ± standard deviation over seeds {', '.join(map(str, seeds))}"


def print_best(sweep: Sweep, study: optuna.Study) -> None:
    best = list(best_per_value(sweep, study).values())
    if not best:
        print("\nNo trial finished without diverging.")
        return
    each = f" of each {sweep.compare.rsplit('.', 1)[-1]}" if sweep.compare in sweep.space else ""
    print_table(sweep, best, f"\nBest point{each} ({sweep.summary} {sweep.metric}, {over(sweep.seeds)}):")
    diverged = sum(bool(t.user_attrs.get("diverged")) for t in study.get_trials(deepcopy=False, states=DONE))
    if diverged:
        print(f"  ({diverged} point{'s' if diverged > 1 else ''} diverged, and count{'' if diverged > 1 else 's'} "
              "as the worst value: see the DIVERGED lines above)")


def print_final(sweep: Sweep, study: optuna.Study) -> None:
    print_table(sweep, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                f"\nFair comparison, the numbers to report ({sweep.summary} {sweep.metric}, {over(sweep.final_seeds)}):")


def call_compare(sweep: Sweep) -> None:
    """The comparison figure and table of compare.py, if the project has it."""
    try:
        compare = importlib.import_module(f"{PACKAGE}.compare")
    except ModuleNotFoundError as error:
        if error.name != f"{PACKAGE}.compare":
            raise
        print(f"(No {PACKAGE}.compare module in this project, so no comparison figure: "
              f"compare the runs with tensorboard --logdir {sweep.runs / sweep.name})")
        return
    compare.main(["--sweep", str(sweep.path)])


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sweep.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the sweep file, e.g. configs/sweeps/vision_optimizers.yaml")
    parser.add_argument("--workers", type=int, default=1,
                        help="trials run at once on this machine, each in its own process (default 1)")
    parser.add_argument("--storage", default=None,
                        help="where the study is kept: postgresql://user:password@host/db, sqlite:///file.db, "
                             "or a journal file (default: runs/<sweep>/study.journal)")
    parser.add_argument("--no-compare", action="store_true", help="skip the comparison figure and table at the end")
    parser.add_argument("--worker-of", choices=("search", "final"), help=argparse.SUPPRESS)  # a worker sweep.py started
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of each worker (default: PyTorch's with one worker, else the cores shared out)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """sweep.py's command line; returns its exit status."""
    options = parse_arguments(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's own line replaces Optuna's log
    try:
        sweep = load_sweep(options.config)
        storage_url = options.storage or str(sweep.runs / sweep.name / "study.journal")
        if options.worker_of:
            return worker_main(sweep, storage_url, options)
        if options.workers < 1:
            raise SweepError("--workers needs a number of processes, 1 or more")
        search = sweep.search()
        print_header(sweep, search, storage_url, options.storage is None)
        plan = [(params, point_name(flags)) for params, flags in grid_points(sweep.space)] if search.queued_only else None
        study = run_phase(sweep, search, storage_url, options, plan)
        print_best(sweep, study)
        if sweep.final_seeds:
            plan = final_plan(sweep, study)
            print(f"\nFair comparison: the best point of each {sweep.compare.rsplit('.', 1)[-1]}, run again with "
                  f"{seed_words(sweep.final_seeds)} ({sweep.runs / (sweep.name + '_final')}/)", flush=True)
            final = run_phase(sweep, sweep.final(len(plan)), storage_url, options, plan)
            print_final(sweep, final)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nStopped. The same command finishes the sweep: uv run python sweep.py --config {options.config}"
              + (f" --storage {shown(options.storage)}" if options.storage else ""), file=sys.stderr)
        return 130
    if not options.no_compare:
        call_compare(sweep)
    return 0


def worker_main(sweep: Sweep, storage_url: str, options: argparse.Namespace) -> int:
    """A worker process started by `--workers N`: set its threads first, then run trials."""
    import torch

    if options.threads:
        torch.set_num_threads(options.threads)
    if options.worker_of == "search":
        phase = sweep.search()
    else:
        plan = final_plan(sweep, optuna.load_study(study_name=sweep.name, storage=open_storage(storage_url)))
        phase = sweep.final(len(plan))
    try:
        work(sweep, phase, open_storage(storage_url))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # a worker that --workers started: run the package's copy of this module,
    # the one whose PruneHopeless the runs' configs name (this file runs as __main__, a second copy)
    sys.exit(importlib.import_module(f"{PACKAGE}.sweep").main())
