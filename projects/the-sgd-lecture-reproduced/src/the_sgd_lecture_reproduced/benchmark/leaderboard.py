"""The leaderboard: the scores of every submission and baseline, as Markdown and LaTeX tables, the
same tables in report.md (between the benchmark markers), and the sentences that say how to cite them.

    from the_sgd_lecture_reproduced.benchmark.leaderboard import score
    scored = score(trials, suite)   # scored["steps"].score, scored["steps"].interval, ...
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..report.tables import embed_table, latex, markdown
from .results import HERE
from .scores import area_score, bootstrap_interval, ratios, study_bests, workload_medians
from .suite import Suite

START, END = "<!-- benchmark:leaderboard:start -->", "<!-- benchmark:leaderboard:end -->"


@dataclass
class Scored:
    """The numbers of one unit (steps or seconds): study bests, medians, ratios, scores and intervals."""

    unit: str
    bests: pd.DataFrame
    medians: pd.DataFrame
    ratios: pd.DataFrame
    score: pd.Series
    interval: pd.DataFrame

    @property
    def ranking(self) -> list[str]:
        """The submissions, best score first (the order of every table and figure)."""
        return sorted(self.score.index, key=lambda name: -self.score[name])


def score_in(trials: pd.DataFrame, suite: Suite, unit: str) -> Scored:
    bests = study_bests(trials, unit)
    medians = workload_medians(bests, unit)
    ratios_ = ratios(medians)
    return Scored(unit, bests, medians, ratios_, area_score(ratios_, suite.tau_max),
                  bootstrap_interval(bests, suite.tau_max, unit, samples=suite.bootstrap))


def one_machine(trials: pd.DataFrame) -> str | None:
    """The machine every trial ran on, when all ran here on one kind of machine; else None (the
    shipped baselines' seconds were measured elsewhere, under other load: never compared)."""
    machines = set(trials["machine"].fillna(""))
    here = bool((trials["source"] == HERE).all())
    return machines.pop() if here and len(machines) == 1 and "" not in machines else None


def score(trials: pd.DataFrame, suite: Suite) -> dict:
    """Scores in steps, and in seconds where every trial ran on one kind of machine."""
    scored = {"steps": score_in(trials, suite, "steps")}
    if one_machine(trials):
        scored["seconds"] = score_in(trials, suite, "seconds")
    return scored


def step_costs(trials: pd.DataFrame, reference: str) -> pd.Series | None:
    """Each submission's seconds per step over the reference's, the geometric mean over workloads
    of the median over its trials (None without the reference or without a machine in common)."""
    if reference not in set(trials["submission"]) or one_machine(trials) is None:
        return None
    per_workload = trials.pivot_table(index="workload", columns="submission", values="seconds_per_step", aggfunc="median")
    relative = per_workload.div(per_workload[reference], axis=0)
    return np.exp(np.log(relative).mean())


def interval_cell(scored: Scored, name: str) -> str:
    low, high = scored.interval.loc[name, ["low", "high"]]
    return f"{low:.2f} to {high:.2f}"


def leaderboard(trials: pd.DataFrame, suite: Suite, scored: dict) -> tuple[list[str], list[list[str]]]:
    """One row per submission, best score first."""
    steps = scored["steps"]
    header = ["rank", "optimizer", "score (steps)", "95% interval", "workloads reached"]
    seconds, costs = scored.get("seconds"), step_costs(trials, suite.cost_reference)
    if seconds is not None:
        header += ["score (seconds)", "95% interval (seconds)"]
    if costs is not None:
        header.append(f"step cost (x {suite.cost_reference})")
    header.append("results")
    sources = trials.groupby("submission")["source"].first()
    rows = []
    for rank, name in enumerate(steps.ranking, 1):
        reached = int(np.isfinite(steps.medians[name]).sum())
        row = [str(rank), name, f"{steps.score[name]:.2f}", interval_cell(steps, name), f"{reached}/{len(steps.medians)}"]
        if seconds is not None:
            row += [f"{seconds.score[name]:.2f}", interval_cell(seconds, name)]
        if costs is not None:
            row.append(f"{costs[name]:.2f}")
        row.append(sources[name])
        rows.append(row)
    return header, rows


def per_workload(trials: pd.DataFrame, suite: Suite, scored: dict) -> tuple[list[str], list[list[str]]]:
    """One row per workload: each submission's median steps to the target over its studies, and
    how many of its studies reached it; for a miss, also how close it came (best_reached)."""
    steps = scored["steps"]
    names = steps.ranking
    header = ["workload", "target", "budget"] + names
    rows = []
    for workload in suite.workloads:
        sign = ">=" if workload.mode == "max" else "<="
        row = [workload.name, f"{workload.metric} {sign} {workload.target:g}", f"{workload.steps} steps"]
        for name in names:
            studies = steps.bests[(steps.bests["workload"] == workload.name) & (steps.bests["submission"] == name)]
            reached = int(np.isfinite(studies["steps"]).sum())
            median = steps.medians.loc[workload.name, name]
            studies_reached = f"({reached}/{len(studies)})"
            if math.isfinite(median):
                row.append(f"{median:.0f} {studies_reached}")
            else:
                row.append(f"missed {studies_reached}, reached {best_reached(trials, workload, name):.4g}")
        rows.append(row)
    return header, rows


def best_reached(trials: pd.DataFrame, workload, submission: str) -> float:
    """The best value of the metric a submission reached on a workload within the budget: each
    study's best trial's, the median over studies (nan where every trial diverged)."""
    mine = trials[(trials["workload"] == workload.name) & (trials["submission"] == submission)]
    per_study = mine.groupby("study")["best"].agg("max" if workload.mode == "max" else "min")
    return float(per_study.median())


def explanation(trials: pd.DataFrame, suite: Suite, scored: dict) -> str:
    """How the numbers were made and how to cite them."""
    steps = scored["steps"]
    best = steps.score.idxmax()
    machine = one_machine(trials)
    text = (f"Score: the area under the performance profile from tau = 1 to {suite.tau_max:g} (1: the fastest to every "
            f"target; 0: no target within {suite.tau_max:g} times the fastest), in optimizer steps to the target, over "
            f"{suite.workloads_in_words()}. Each optimizer had the same tuning budget: "
            f"{suite.studies} studies of {suite.trials} trials drawn quasi-randomly from its search space, each study counting "
            "its fastest trial and each workload the median over studies; the interval is a 95% bootstrap over studies. "
            f"Cite it as: {best} scored {steps.score[best]:.2f} (95% interval {interval_cell(steps, best)}) on the course "
            f"benchmark's {suite.workloads_in_words()}. ")
    if machine:
        text += f"Seconds and step costs were measured on one machine ({machine})."
    else:
        text += ("Seconds are left out: only trials all run here, on one kind of machine, compare in seconds (for them, "
                 "run the baselines here: uv run python -m the_sgd_lecture_reproduced.benchmark baselines).")
    return text + "\n"


def tables(trials: pd.DataFrame, suite: Suite, scored: dict) -> tuple[str, str]:
    """(the Markdown of both tables with their explanation, the LaTeX of both)."""
    board, workloads = leaderboard(trials, suite, scored), per_workload(trials, suite, scored)
    text = (markdown(*board) + "\n" + markdown(*workloads) + "\nEach cell: the median steps to the target over the "
            "studies (how many of them reached it); for a miss, the best value reached within the budget (each study's "
            "best trial, the median over studies).\n\n" + explanation(trials, suite, scored))
    return text, latex(*board) + "\n" + latex(*workloads)


def write_tables(trials: pd.DataFrame, suite: Suite, scored: dict, out: Path, embed: list[Path]) -> tuple[list[Path], list[Path]]:
    """benchmark_leaderboard.md and .tex in `out`, and the tables in the documents that have the markers."""
    text, tex = tables(trials, suite, scored)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark_leaderboard.md").write_text(text)
    (out / "benchmark_leaderboard.tex").write_text(tex)
    embedded = [document for document in embed if embed_table(document, text, START, END)]
    return [out / "benchmark_leaderboard.md", out / "benchmark_leaderboard.tex"], embedded
