"""The processes that run a sweep's trials: this one, or `--workers N` new ones sharing the CPUs
and GPUs, until every point of a phase is done (also waiting for other machines' workers).
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from .studies import counts, final_plan, open_storage, open_study, prepare, something_to_start
from .sweep_file import PACKAGE, POLL_SECONDS, SRC, Phase, Skipped, Sweep, SweepError
from .trials import Objective


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
    threads = str(threads or max(1, available_cpus() // workers))
    command = [sys.executable, "-m", f"{PACKAGE}.sweep", "--config", str(sweep.path), "--storage", storage_url,
               "--worker-of", phase.name, "--threads", threads]
    run_processes(command, workers, threads)


def run_processes(command: list[str], workers: int, threads: str) -> None:
    """Start `workers` copies of `command` (a worker of a sweep, or of the benchmark), each with
    `threads` CPU threads and its own GPU while there are GPUs; wait for them all. Ctrl-C stops
    them; a worker that failed ends the command with one line saying how."""
    gpus = visible_gpus()
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
        ended = "; ".join(f"worker {index + 1} {how_it_ended(code)}" for index, code in enumerate(codes) if code)
        raise SweepError(f"{sum(map(bool, codes))} of {workers} workers stopped ({ended}); the same command runs the "
                         "trials that are left")


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


def how_it_ended(code: int) -> str:
    """A worker's exit status in words (a negative status: the signal that ended it)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:  # a number with no name here
            name = f"signal {-code}"
        return f"was killed by {name}, which leaves no message (the system stops a process this way when memory runs out)"
    return f"ended with exit status {code}: its error is printed above"


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
