"""One trial of a sweep: its point run once with each seed, each seed an ordinary run of train.py
in this process (runs/<sweep>/<point>_s<seed>/), and the line printed after it.
"""

import contextlib
import functools
import io
import json
import logging
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import sys
import time
from pathlib import Path

import optuna
from lightning.pytorch import Callback
from optuna.trial import TrialState

from .sweep_file import (
    DONE,
    PACKAGE,
    QUIET,
    Phase,
    Skipped,
    Sweep,
    SweepError,
    flag_args,
    params_of,
    point_key,
    point_name,
    suggest,
)


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
    from ..run.cli import main
    from ..run.summary import RunSummary

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


def this_worker() -> dict:
    """Who runs a trial: kept with it, so that a later sweep can tell that this process died, and
    the benchmark which trials' seconds can be compared (those run on the same kind of machine)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": process_start(os.getpid()), "machine": machine()}


@functools.cache  # the same all the process long
def machine() -> str:
    """The kind of machine this process runs on: the CPU's model and cores, and its GPU if it sees one."""
    import torch

    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()  # Linux
    except OSError:
        lines = []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    described = f"{cpu or platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return described + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")


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
