"""The benchmark's command line: score a submission, run the baselines, set the targets, or
redraw the leaderboard. See the package's docstring (benchmark/__init__.py) and docs/benchmark.md.
"""

import argparse
import importlib
import sys
from pathlib import Path

import optuna

from ..optim.choices import OPTIMIZERS, import_class
from ..sweep.sweep_file import SweepError
from .suite import BenchmarkError, Suite, load_space, load_suite, write_targets


def submission_name(optimizer: str, name: str | None) -> str:
    """The name a submission is scored under: --name, else the optimizer's (a class's, in lowercase)."""
    return name or (optimizer if optimizer in OPTIMIZERS else optimizer.rsplit(".", 1)[-1].lower())


def check_optimizer(optimizer: str) -> None:
    if optimizer in OPTIMIZERS:
        return
    if "." not in optimizer:
        raise BenchmarkError(f"unknown optimizer {optimizer!r}: give a name of {', '.join(OPTIMIZERS)}, or the import "
                             "path of your class (my_package.my_optimizers.MyOpt)")
    try:
        import_class(optimizer)
    except (ImportError, AttributeError) as error:
        raise BenchmarkError(f"cannot import the optimizer {optimizer}: {error}") from None


def require_targets(suite: Suite) -> Suite:
    """The suite, if every workload has its target (scores mean nothing without them)."""
    unset = [workload.name for workload in suite.workloads if workload.target is None]
    if unset:
        tier = suite.workloads[0].tier
        raise BenchmarkError(f"no target for {', '.join(unset)} (none yet, or one set for another budget or "
                             f"metric): the baselines set it (uv run python -m {__package__} baselines --tier {tier})")
    return suite


def score(args: argparse.Namespace) -> None:
    from .running import run_studies, write_study_files

    suite = require_targets(load_suite(args.suite, args.tier))
    check_optimizer(args.optimizer)
    name = submission_name(args.optimizer, args.name)
    if name in suite.baselines:
        raise BenchmarkError(f"{name} is a baseline's name: score yours under another one (--name my_{name})")
    space = load_space(args.space)
    paths = write_study_files(suite, name, args.optimizer, space)
    print(f"Scoring {name} on {suite.workloads_in_words()}: {suite.studies} studies of {suite.trials} "
          f"trials each, from {args.space}", flush=True)
    run_studies(paths, args.workers)
    report(args)


def baselines(args: argparse.Namespace) -> None:
    from .results import write_baselines
    from .running import run_studies, write_study_files

    suite = load_suite(args.suite, args.tier)
    paths = [path for name, space_file in suite.baselines.items()
             for path in write_study_files(suite, name, name, load_space(space_file))]
    print(f"Baselines {', '.join(suite.baselines)} on {suite.workloads_in_words()} "
          f"({suite.studies} studies of {suite.trials} trials each; runs already made are kept)", flush=True)
    run_studies(paths, args.workers)
    unset = [workload for workload in suite.workloads if workload.target is None]
    if unset:
        suite = save_targets(Suite(**{**vars(suite), "workloads": unset}), args)
    print(f"wrote {write_baselines(suite)}")
    report(args)


def save_targets(suite: Suite, args: argparse.Namespace) -> Suite:
    """Set the targets of the suite's workloads from the baselines' runs here; the suite, reloaded."""
    from .results import set_targets

    targets = set_targets(suite)
    write_targets(suite, targets)
    for name, entry in targets.items():
        print(f"target of {name}: {entry['metric']} {entry['target']:g} (from {entry['from']}, median {entry['median']:g})")
    return load_suite(args.suite, args.tier)


def targets(args: argparse.Namespace) -> None:
    from .results import write_baselines

    suite = save_targets(load_suite(args.suite, args.tier), args)
    print(f"wrote {suite.targets_file} and {write_baselines(suite)}")


def report(args: argparse.Namespace) -> None:
    """The leaderboard, tables, figures and the tidy file, from every trial run so far."""
    from .leaderboard import score as score_trials
    from .leaderboard import tables, write_tables
    from .plots import plot_profiles, plot_steps
    from .results import gather, write_results

    suite = require_targets(load_suite(args.suite, args.tier))
    notes: list[str] = []
    trials = gather(suite, notes)
    scored = score_trials(trials, suite)
    written = [write_results(trials, args.out / "benchmark_results.csv")]
    files, embedded = write_tables(trials, suite, scored, args.out, args.embed)
    written += files + plot_profiles(scored["steps"], suite, args.out) + plot_steps(scored["steps"], suite, args.out)
    if "seconds" in scored:
        written += plot_profiles(scored["seconds"], suite, args.out)
    for note in notes:
        print(f"note: {note}")
    print(tables(trials, suite, scored)[0], end="")
    print("wrote " + ", ".join(map(str, written)))
    if embedded:
        print("updated the leaderboard in " + ", ".join(map(str, embedded)))


def worker(args: argparse.Namespace) -> None:
    """A process started by --workers N: run the studies listed in the queue file."""
    import torch

    from .running import work_through

    torch.set_num_threads(args.threads)
    work_through([Path(line) for line in Path(args.queue).read_text().splitlines() if line])


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    overview = importlib.import_module(__package__).__doc__
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=overview,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tier", default="cpu", choices=("cpu", "gpu"), help="which workloads (default cpu)")
    common.add_argument("--suite", type=Path, default=Path("benchmark"), help="the suite's folder (default benchmark)")
    common.add_argument("--workers", type=int, default=1, help="trials run at once, each in its own process (default 1)")
    common.add_argument("--out", type=Path, default=Path("figures"), help="where tables and figures go (default figures)")
    common.add_argument("--embed", nargs="*", type=Path, default=[Path("report.md")],
                        help="documents whose benchmark markers receive the leaderboard (default report.md)")
    submit = commands.add_parser("score", parents=[common], help="score an optimizer on the suite against the baselines")
    submit.add_argument("--optimizer", required=True, help="a name train.py's --optimizer takes, or an import path")
    submit.add_argument("--space", required=True, help="its search-space file, e.g. benchmark/spaces/nadam.yaml")
    submit.add_argument("--name", default=None, help="the name to score it under (default: the optimizer's)")
    commands.add_parser("baselines", parents=[common], help="run the baselines here (cached); sets missing targets")
    commands.add_parser("targets", parents=[common], help="set every target again from the baselines' runs here")
    commands.add_parser("leaderboard", parents=[common], help="the tables and figures of what has run, running nothing")
    queue = commands.add_parser("worker", help="(not for you: a process that --workers N starts)")
    queue.add_argument("queue")
    queue.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        parser.error("--workers needs a number of processes, 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    """The benchmark's command line; returns its exit status."""
    args = parse_arguments(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    command = {"score": score, "baselines": baselines, "targets": targets, "worker": worker,
               "leaderboard": report}[args.command]
    try:
        command(args)
    except (BenchmarkError, SweepError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nStopped. The same command runs what is left.", file=sys.stderr)
        return 130
    return 0
