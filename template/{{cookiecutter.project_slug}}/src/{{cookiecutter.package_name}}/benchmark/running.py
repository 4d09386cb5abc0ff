"""Running a submission on the suite: one sweep per workload and study, made and run by the sweep
machinery (sweep/), and what its trials reached, read back from their run folders.

    runs/benchmark/<workload>/<submission>/study<k>.yaml        the study's sweep file (written here)
    runs/benchmark/<workload>/<submission>/study<k>/<point>_s<k>/  each trial: an ordinary run folder
    runs/benchmark/<workload>/<submission>/study<k>/study.journal  Optuna's record of the study

Study k draws its trials from the k-th scrambled Halton sequence over the search space (method
qmc) and runs each with seed k. A study already run is not run again: the command that was
stopped runs only what is missing.
"""

import math
import os
import sys
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from ..report.comparison import best_value, final_value, has_diverged, time_to_target
from ..report.runs import read_run
from ..sweep.studies import counts, open_storage, open_study, prepare, something_to_start
from ..sweep.sweep_file import DEFINING_KEYS, LATER_DEFINING_KEYS, PACKAGE, load_sweep, runs_folder
from ..sweep.workers import available_cpus, run_processes, work
from .suite import BenchmarkError, Suite, Workload

# What makes a study the same study: the sweep's defining keys, and (in the benchmark, where every
# study has a fixed number of trials) their number.
DEFINING = (*DEFINING_KEYS, *LATER_DEFINING_KEYS, "trials")


def study_folder(workload: Workload, submission: str) -> Path:
    """runs/benchmark/<workload>/<submission>/: the submission's studies on the workload."""
    return runs_folder(workload.experiment) / "benchmark" / workload.name / submission


def study_sweep(suite: Suite, workload: Workload, submission: str, optimizer: str, space: dict, study: int) -> dict:
    """The sweep file of one study: the workload's experiment and budget, the submission's space."""
    return {
        "name": f"benchmark/{workload.name}/{submission}/study{study}",
        "experiment": workload.experiment,
        "budget": {"trainer.max_steps": workload.steps, "trainer.max_epochs": -1, **workload.flags},
        "seeds": [study], "metric": workload.metric, "mode": workload.mode, "summary": "best",
        "method": "qmc", "trials": suite.trials, "sampler_seed": study, "target": workload.target,
        "space": {"optimizer": [optimizer], **space}, "final_seeds": [], "compare": "optimizer",
    }


def write_study_files(suite: Suite, submission: str, optimizer: str, space: dict) -> list[Path]:
    """Write the sweep file of every study of the submission; refuse to mix its runs with those of
    another search space, optimizer or suite under the same name."""
    paths = []
    for workload in suite.workloads:
        for study in range(suite.studies):
            raw = study_sweep(suite, workload, submission, optimizer, space, study)
            path = study_folder(workload, submission) / f"study{study}.yaml"
            if path.is_file():
                before = yaml.safe_load(path.read_text()) or {}
                if any(before.get(key) != raw.get(key) for key in DEFINING):
                    raise BenchmarkError(f"{path.parent}/ holds runs of {submission} made with another optimizer, search "
                                         f"space or workload: delete that folder to run them again, or score under "
                                         "another --name")
            path.parent.mkdir(parents=True, exist_ok=True)
            header = (f"# Study {study} of {submission} on the benchmark's workload {workload.name} (written by the "
                      "benchmark command; sweep.py --config <this file> runs it too)\n")
            path.write_text(header + yaml.safe_dump(raw, sort_keys=False))
            paths.append(path)
    return paths


def run_studies(paths: list[Path], workers: int = 1) -> None:
    """Run every study's missing trials: in this process, or in `workers` processes that share the
    studies (each takes the next trial not yet started), each with its share of the CPU threads.
    Finished studies are left out: with nothing left, no process starts."""
    paths = [path for path in paths if not finished(path)]
    if not paths:
        return
    if workers == 1:
        work_through(paths)
        return
    queue = paths[0].parents[2] / f"queue-{os.getpid()}.txt"  # runs/benchmark/queue-<pid>.txt
    queue.write_text("\n".join(map(str, paths)))
    threads = str(max(1, available_cpus() // workers))
    try:
        run_processes([sys.executable, "-m", f"{PACKAGE}.benchmark", "worker", str(queue), "--threads", threads],
                      workers, threads)
    finally:
        queue.unlink(missing_ok=True)


def finished_trials(path: Path) -> list[optuna.trial.FrozenTrial] | None:
    """The trials of the study that the sweep file `path` defines, once every one has finished; else None."""
    if not path.is_file():
        return None
    sweep = load_sweep(path)
    if not sweep.journal.is_file():
        return None
    record = optuna.load_study(study_name=sweep.name, storage=open_storage(str(sweep.journal)))
    if counts(record)[TrialState.COMPLETE] < sweep.search().total:
        return None
    return record.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def finished(path: Path) -> bool:
    """Whether every trial of the study that the sweep file `path` defines has finished."""
    return finished_trials(path) is not None


def work_through(paths: list[Path]) -> None:
    """Run the trials of each study that no process has started yet (a worker's loop)."""
    for path in paths:
        sweep = load_sweep(path)
        phase = sweep.search()
        plan = sweep.plan()
        storage = open_storage(str(sweep.journal))
        study = open_study(sweep, phase, storage, plan)
        prepare(study, phase, plan)
        if something_to_start(study, phase):
            print(f"{sweep.name.removeprefix('benchmark/')}: {phase.total} trials, seed {sweep.seeds[0]}", flush=True)
            work(sweep, phase, storage)


def trial_rows(suite: Suite, workload: Workload, submission: str) -> list[dict] | None:
    """One row per trial of the submission's studies on the workload (see trial_row); None if a
    study is missing or unfinished."""
    rows = []
    for study in range(suite.studies):
        trials = finished_trials(study_folder(workload, submission) / f"study{study}.yaml")
        if trials is None:
            return None
        rows += [trial_row(workload, submission, study, trial) for trial in trials]
    return rows


def trial_row(workload: Workload, submission: str, study: int, trial: optuna.trial.FrozenTrial) -> dict:
    """What one trial reached, from its run folder: steps and seconds to the target (empty when
    missed), its best and final metric, whether it diverged, and its seconds per optimizer step
    (between its first and last logged training loss, validations included)."""
    record = trial.user_attrs[f"run s{study}"]
    run = read_run(Path(record["folder"]))
    metric, target = workload.metric, workload.target
    diverged = bool(record.get("diverged")) or has_diverged(run, metric)
    reached = None if target is None or diverged else time_to_target(run, metric, target, workload.mode)
    series = run.scalars.get(metric)
    loss = run.scalars.get("train/loss")
    per_step = None
    if loss is not None and len(loss.steps) > 1 and loss.steps[-1] > loss.steps[0]:
        per_step = float((loss.times[-1] - loss.times[0]) / (loss.steps[-1] - loss.steps[0]))
    settings = {key.removeprefix("optimizer."): value for key, value in trial.params.items() if key != "optimizer"}
    return {
        "workload": workload.name, "tier": workload.tier, "submission": submission,
        "optimizer": trial.params.get("optimizer"), "study": study, "seed": study, "trial": trial.user_attrs["point"],
        "settings": yaml.safe_dump(settings, default_flow_style=True, width=1000).strip(),
        "metric": metric, "mode": workload.mode, "target": target, "budget_steps": workload.steps,
        "steps_to_target": None if reached is None else reached[0],
        "seconds_to_target": None if reached is None else round(reached[1], 3),
        "best": None if diverged else best_value(run, metric, workload.mode),
        "final": None if diverged else final_value(run, metric), "diverged": diverged,
        "steps_run": int(series.steps[-1]) if series is not None and len(series.steps) else 0,
        "seconds_per_step": per_step, "machine": (trial.user_attrs.get("worker") or {}).get("machine"),
        "run": Path(record["folder"]).as_posix(),
    }


def best_within(suite: Suite, workload: Workload, submission: str) -> list[float]:
    """For each study of a baseline: the best value its best trial reached within
    target_fraction of the budget (what targets are set from); -inf or inf where all diverged."""
    limit = suite.target_fraction * workload.steps
    values = []
    for study in range(suite.studies):
        trials = finished_trials(study_folder(workload, submission) / f"study{study}.yaml")
        if trials is None:
            raise BenchmarkError(f"targets come from the baselines' runs here, and study {study} of {submission} on "
                                 f"{workload.name} is missing or unfinished: uv run python -m {PACKAGE}.benchmark baselines")
        reached = []
        for trial in trials:
            run = read_run(Path(trial.user_attrs[f"run s{study}"]["folder"]))
            series = run.scalars.get(workload.metric)
            if series is None or has_diverged(run, workload.metric):
                continue
            early = series.values[series.steps <= limit]
            if len(early):
                reached.append(float(early.max() if workload.mode == "max" else early.min()))
        worst = -math.inf if workload.mode == "max" else math.inf
        values.append((max if workload.mode == "max" else min)(reached, default=worst))
    return values

