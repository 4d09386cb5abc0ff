"""The benchmark's numbers, from the table of trials: steps to the target, each study's best trial,
the median over studies, performance profiles, the area score and its bootstrap interval.

    from conditioning_momentum_and_the_noise_floor.benchmark.scores import study_bests, workload_medians, ratios, area_score
    bests = study_bests(trials)            # one row per workload, submission and study
    medians = workload_medians(bests)      # workloads x submissions: the median over studies
    area_score(ratios(medians), tau_max=4) # one number per submission, 0 to 1

The rules (AlgoPerf's, in steps or seconds): a trial's time is the first step (or second) at which
its metric reached the target, infinite if it never did; a study counts its fastest trial; a
submission's time on a workload is the median over its studies. Its ratio on a workload is that
time over the fastest submission's there. The profile rho(tau) is the share of workloads on which
the ratio is at most tau; the score is the area under rho from tau = 1 to tau_max, divided by
tau_max - 1: 1 for the fastest everywhere, 0 for one that reaches no target within tau_max times
the fastest. Pure functions of pandas frames, so that tests can check them against hand-worked values.
"""

import math

import numpy as np
import pandas as pd

KEYS = ["workload", "submission", "study"]


def steps_to_target(steps, values, target: float, mode: str) -> float:
    """The first step at which `values` reached `target` (>= for max, <= for min); inf if never."""
    values = np.asarray(values, dtype=float)
    reached = values >= target if mode == "max" else values <= target
    return float(np.asarray(steps, dtype=float)[np.argmax(reached)]) if reached.any() else math.inf


def study_bests(trials: pd.DataFrame, unit: str = "steps") -> pd.DataFrame:
    """Each study's fastest trial: columns workload, submission, study and `unit`, the trial's
    <unit>_to_target (inf for a study none of whose trials reached the target)."""
    column = f"{unit}_to_target"
    times = trials[column].astype(float).fillna(math.inf)
    return times.groupby([trials[key] for key in KEYS]).min().rename(unit).reset_index()


def workload_medians(bests: pd.DataFrame, unit: str = "steps") -> pd.DataFrame:
    """Workloads x submissions: the median over studies of the study bests (inf where half or more missed)."""
    return bests.pivot_table(index="workload", columns="submission", values=unit, aggfunc=median_of, sort=False)


def median_of(values) -> float:
    """The median, counting a miss (inf) as the slowest value: the usual median of the sorted values."""
    return float(np.median(np.asarray(values, dtype=float)))


def ratios(medians: pd.DataFrame) -> pd.DataFrame:
    """Each submission's time over the fastest one's on each workload (inf where it or everyone missed)."""
    return pd.DataFrame(ratios_of(medians.to_numpy(dtype=float)), index=medians.index, columns=medians.columns)


def profile(ratios_: pd.DataFrame, taus) -> pd.DataFrame:
    """rho(tau) for each submission (columns) at each tau (rows): the share of workloads with ratio <= tau."""
    taus = np.asarray(taus, dtype=float)
    shares = (ratios_.to_numpy()[None, :, :] <= taus[:, None, None]).mean(axis=1)
    return pd.DataFrame(shares, index=pd.Index(taus, name="tau"), columns=ratios_.columns)


def area_score(ratios_: pd.DataFrame, tau_max: float) -> pd.Series:
    """The area under rho from 1 to tau_max over (tau_max - 1): exactly the mean over workloads of
    (tau_max - ratio) / (tau_max - 1), a ratio above tau_max (or a miss) counting 0."""
    return pd.Series(area_of(ratios_.to_numpy(), tau_max), index=ratios_.columns)


def area_of(ratio_array: np.ndarray, tau_max: float) -> np.ndarray:
    """area_score on arrays: ratios of shape (..., workloads, submissions) -> (..., submissions)."""
    return (np.clip(tau_max - ratio_array, 0, tau_max - 1) / (tau_max - 1)).mean(axis=-2)


def ratios_of(times: np.ndarray) -> np.ndarray:
    """ratios on arrays: times of shape (..., workloads, submissions)."""
    fastest = times.min(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        quotient = times / fastest
    return np.where(np.isfinite(times) & np.isfinite(fastest), quotient, math.inf)


def bootstrap_interval(bests: pd.DataFrame, tau_max: float, unit: str = "steps", samples: int = 1000,
                       seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """The score's percentile interval over studies drawn again with replacement (for each workload
    and submission, its studies: few runs, as rliable resamples them). Columns low and high."""
    medians = workload_medians(bests, unit)
    workloads, submissions = list(medians.index), list(medians.columns)
    per_study = (bests.set_index(["workload", "submission"])
                 .groupby(level=[0, 1])[unit].apply(lambda times: times.to_numpy(dtype=float)))
    counts = {len(times) for times in per_study}
    if len(counts) != 1:
        raise ValueError(f"every workload and submission needs the same number of studies, found {sorted(counts)}")
    studies = counts.pop()
    times = np.stack([np.stack([per_study[(workload, submission)] for submission in submissions]) for workload in workloads])
    draws = np.random.default_rng(seed).integers(0, studies, size=(samples, *times.shape))
    resampled = np.median(np.take_along_axis(times[None], draws, axis=-1), axis=-1)  # (samples, workloads, submissions)
    scores = area_of(ratios_of(resampled), tau_max)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail], axis=0)
    return pd.DataFrame({"low": low, "high": high}, index=pd.Index(submissions, name="submission"))
