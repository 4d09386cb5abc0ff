"""sweep.py's command line: run the search, then the fair re-runs, print the tables, and call
the compare command for the figure. See the package's docstring (sweep/__init__.py) for the words.
"""

import argparse
import importlib
import os
import statistics
import sys

import optuna
from optuna.trial import TrialState

from .studies import best_per_value, database_url, final_plan, seed_values, shown
from .sweep_file import DASHBOARD_HINT, DONE, PACKAGE, Phase, Sweep, SweepError, load_sweep
from .workers import run_phase, worker_main


def print_header(sweep: Sweep, phase: Phase, storage_url: str, default_storage: bool) -> None:
    seeds = seed_words(sweep.seeds)
    method = {"grid": "grid search", "random": "random search", "tpe": "TPE search",
              "qmc": f"quasi-random search (scrambled Halton, seed {sweep.sampler_seed})"}[sweep.method]
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
    overview = importlib.import_module(__package__).__doc__  # sweep/__init__.py's: what the words mean
    parser = argparse.ArgumentParser(prog="sweep.py", description=overview, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def finish_command(options) -> str:
    """What finishes a stopped sweep: the same command, or on SLURM the same job array again."""
    storage = f" --storage {shown(options.storage)}" if options.storage else ""
    if os.environ.get("SLURM_JOB_ID"):
        return (f"Submit the same job array again to finish the sweep: sbatch --array=0-N scripts/sweep_slurm.sh "
                f"{options.config}{storage} (N + 1 workers)")
    return f"The same command finishes the sweep: uv run python sweep.py --config {options.config}{storage}"


def main(argv: list[str] | None = None) -> int:
    """sweep.py's command line; returns its exit status."""
    options = parse_arguments(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's own line replaces Optuna's log
    try:
        sweep = load_sweep(options.config)
        storage_url = options.storage or str(sweep.journal)
        if options.worker_of:
            return worker_main(sweep, storage_url, options)
        if options.workers < 1:
            raise SweepError("--workers needs a number of processes, 1 or more")
        search = sweep.search()
        print_header(sweep, search, storage_url, options.storage is None)
        plan = sweep.plan() if search.queued_only else None
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
        print(f"\nStopped. {finish_command(options)}", file=sys.stderr)
        return 130
    if not options.no_compare:
        call_compare(sweep)
    return 0
