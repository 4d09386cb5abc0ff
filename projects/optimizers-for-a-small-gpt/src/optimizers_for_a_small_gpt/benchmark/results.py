"""The table of trials the scores are made from: the baselines' (run here, or the shipped
benchmark/baselines.csv) and every submission's found under runs/benchmark/, one row per trial.

    from optimizers_for_a_small_gpt.benchmark.results import gather
    trials = gather(load_suite(), notes=[])  # columns: see running.trial_row, and `source`
"""

import math
import statistics
from pathlib import Path

import pandas as pd

from .running import best_within, study_folder, trial_rows
from .suite import BenchmarkError, Suite

SHIPPED = "shipped"  # the source of rows read from benchmark/baselines.csv
HERE = "this machine"  # the source of rows read from run folders here


def local_rows(suite: Suite, submission: str) -> pd.DataFrame | None:
    """A submission's trials on every workload of the suite, from its runs here; None if any study is missing."""
    rows = []
    for workload in suite.workloads:
        found = trial_rows(suite, workload, submission)
        if found is None:
            return None
        rows += found
    return pd.DataFrame(rows).assign(source=HERE)


def shipped_rows(suite: Suite, baseline: str, notes: list[str]) -> pd.DataFrame | None:
    """A baseline's trials from benchmark/baselines.csv, if they cover the suite as it is now."""
    if not suite.baselines_file.is_file():
        notes.append(f"{baseline}: no results ({suite.baselines_file} is missing and it was not run here)")
        return None
    shipped = pd.read_csv(suite.baselines_file)
    rows = shipped[shipped["submission"] == baseline]
    for workload in suite.workloads:
        mine = rows[rows["workload"] == workload.name]
        studies = sorted(set(mine["study"]))
        stale = not mine.empty and not all(math.isclose(target, workload.target or math.nan) for target in mine["target"])
        if studies != list(range(suite.studies)) or len(mine) != suite.studies * suite.trials or stale:
            notes.append(f"{baseline}: {suite.baselines_file} has no results for {workload.name} as the suite now defines "
                         "it (studies, trials or target): run the baselines here to include it "
                         "(uv run python -m optimizers_for_a_small_gpt.benchmark baselines)")
            return None
    return rows[rows["workload"].isin([workload.name for workload in suite.workloads])].assign(source=SHIPPED)


def submissions_here(suite: Suite) -> list[str]:
    """The names with runs under runs/benchmark/<workload>/ of this suite, in the order first made."""
    names = {}
    for workload in suite.workloads:
        folder = study_folder(workload, "x").parent
        for path in sorted(folder.glob("*/study0.yaml"), key=lambda path: path.stat().st_mtime) if folder.is_dir() else []:
            names.setdefault(path.parent.name, None)
    return list(names)


def gather(suite: Suite, notes: list[str]) -> pd.DataFrame:
    """Every trial to score: each baseline's (its runs here when complete, else the shipped ones),
    then each submission's run here. A submission with missing studies is left out, with a note."""
    frames = []
    for baseline in suite.baselines:
        frame = local_rows(suite, baseline)
        frames.append(frame if frame is not None else shipped_rows(suite, baseline, notes))
    for name in submissions_here(suite):
        if name in suite.baselines:
            continue
        frame = local_rows(suite, name)
        if frame is None:
            notes.append(f"{name}: some of its studies are missing or unfinished; its score command runs them")
        frames.append(frame)
    frames = [frame for frame in frames if frame is not None]
    if not frames:
        raise BenchmarkError("nothing to score yet: run the baselines or a submission first (docs/benchmark.md)")
    return pd.concat(frames, ignore_index=True)


def set_targets(suite: Suite) -> dict[str, dict]:
    """The target of each workload from the baselines' runs here: what the best baseline reached
    within target_fraction of the budget, the median over its studies, rounded to 3 significant
    digits towards the easier side (so the median study of the best baseline still reaches it)."""
    targets = {}
    for workload in suite.workloads:
        medians = {}
        for baseline in suite.baselines:  # (best_within says which study is missing, if one is)
            medians[baseline] = statistics.median(best_within(suite, workload, baseline))
        best = (max if workload.mode == "max" else min)(medians, key=medians.get)
        if not math.isfinite(medians[best]):
            raise BenchmarkError(f"no baseline reached any value of {workload.metric} on {workload.name}: check the workload")
        targets[workload.name] = {"target": easier(medians[best], workload.mode), "metric": workload.metric,
                                  "steps": workload.steps, "from": best, "median": float(f"{medians[best]:.6g}")}
    return targets


def easier(value: float, mode: str) -> float:
    """`value` to 3 significant digits, rounded down for a metric to maximize and up for one to minimize."""
    if value == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - 2)
    rounded = (math.floor if mode == "max" else math.ceil)(value / scale) * scale
    return float(f"{rounded:.3g}")


def write_baselines(suite: Suite) -> Path:
    """benchmark/baselines.csv from the baselines' runs here, in place of its rows of the same workloads
    (those of other workloads, the other tier's say, stay): what the project ships to score against."""
    frames = [local_rows(suite, name) for name in suite.baselines]
    if any(frame is None for frame in frames):
        raise BenchmarkError("some baseline studies are missing here: "
                             "uv run python -m optimizers_for_a_small_gpt.benchmark baselines")
    if suite.baselines_file.is_file():
        kept = pd.read_csv(suite.baselines_file)
        frames.insert(0, kept[~kept["workload"].isin([workload.name for workload in suite.workloads])])
    return write_results(pd.concat(frames, ignore_index=True).drop(columns="source", errors="ignore"), suite.baselines_file)


def write_results(frame: pd.DataFrame, path: Path) -> Path:
    """The tidy file: one row per trial, every setting and result (steps and seconds empty where missed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
