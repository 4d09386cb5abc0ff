"""Lion on the course benchmark (report.md, section 3.5): the leaderboard in report.md is what the
benchmark command computes from the committed runs, Lion had the baselines' tuning budget, and
(slow) one of its trials, run again, reaches the target at the committed step.

    uv run pytest tests/test_lion_on_the_benchmark.py -m "not slow"   # seconds: report.md against runs/benchmark/
    uv run pytest tests/test_lion_on_the_benchmark.py                 # also re-runs one trial (about 10 s)

The runs in runs/benchmark/language_small_gpt/lion/ were made by reproduce.sh (step 7); the
baselines' results are the template's, in benchmark/baselines.csv.
"""

import shutil

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from optimizers_for_a_small_gpt.benchmark import main
from optimizers_for_a_small_gpt.benchmark.leaderboard import END, START
from optimizers_for_a_small_gpt.benchmark.running import run_studies, trial_rows, write_study_files
from optimizers_for_a_small_gpt.benchmark.suite import load_space, load_suite

LION = "optimizers_for_a_small_gpt.lion.Lion"
RESULTS = pd.read_csv(ROOT / "figures" / "benchmark_results.csv")


def test_the_report_holds_the_leaderboard_of_the_committed_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["leaderboard", "--out", str(tmp_path), "--embed"]) == 0  # reads runs/, writes only to tmp_path
    table = (tmp_path / "benchmark_leaderboard.md").read_text()
    report = (ROOT / "report.md").read_text()
    assert report.split(START)[1].split(END)[0].strip() == table.strip()
    assert "| lion |" in table
    # figures/benchmark_results.csv is the runs' own: every trial's settings and results, read again from runs/
    pd.testing.assert_frame_equal(RESULTS, pd.read_csv(tmp_path / "benchmark_results.csv"))


def test_lion_had_the_baselines_tuning_budget():
    suite = load_suite(ROOT / "benchmark")
    for name, trials in RESULTS.groupby("submission"):
        assert len(trials) == suite.studies * suite.trials * len(suite.workloads), name
        assert sorted(set(trials["study"])) == list(range(suite.studies)), name
        assert (trials["seed"] == trials["study"]).all(), name  # study k runs its trials with seed k
    lion = RESULTS[RESULTS["submission"] == "lion"]
    assert set(lion["optimizer"]) == {LION} and set(lion["source"]) == {"this machine"}


def best_learning_rates(submission: str) -> list[float]:
    """The learning rate of each study's best trial (lowest val/bpb), from the tidy results."""
    trials = RESULTS[RESULTS["submission"] == submission]
    best = trials.loc[trials.groupby("study")["best"].idxmin(), "settings"]
    return [yaml.safe_load(settings)["lr"] for settings in best]


def test_the_learning_rates_the_report_gives_are_those_of_each_studys_best_trial():
    lion, adamw = best_learning_rates("lion"), best_learning_rates("adamw")
    assert (min(lion), max(lion)) == (7.68e-4, 1.91e-3)  # "between 7.7e-4 and 1.9e-3"
    assert (min(adamw), max(adamw)) == (1.04e-3, 1.13e-2)  # "1.0e-3 to 1.1e-2"
    prose = " ".join((ROOT / "report.md").read_text().split())
    assert "between 7.7e-4 and 1.9e-3" in prose and "1.0e-3 to 1.1e-2 in AdamW's best trials" in prose


@pytest.mark.slow
def test_a_lion_trial_run_again_reaches_the_target_at_the_committed_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmark" / "workloads").mkdir(parents=True)
    shutil.copy(ROOT / "benchmark" / "suite.yaml", tmp_path / "benchmark" / "suite.yaml")
    shutil.copy(ROOT / "benchmark" / "targets.yaml", tmp_path / "benchmark" / "targets.yaml")
    workload = yaml.safe_load((ROOT / "benchmark" / "workloads" / "language_small_gpt.yaml").read_text())
    workload["experiment"] = str(ROOT / workload["experiment"])
    (tmp_path / "benchmark" / "workloads" / "language_small_gpt.yaml").write_text(yaml.safe_dump(workload))
    suite = load_suite("benchmark")
    suite.studies, suite.trials = 1, 1  # study 0's first trial: the same point and seed as committed
    run_studies(write_study_files(suite, "lion", LION, load_space(ROOT / "benchmark" / "spaces" / "lion.yaml")))
    (row,) = trial_rows(suite, suite.workloads[0], "lion")
    (committed,) = RESULTS[(RESULTS["submission"] == "lion") & (RESULTS["study"] == 0)
                           & (RESULTS["trial"] == row["trial"])].to_dict(orient="records")
    assert row["steps_to_target"] == (None if pd.isna(committed["steps_to_target"]) else committed["steps_to_target"])
    assert row["best"] == pytest.approx(committed["best"], rel=1e-3)
