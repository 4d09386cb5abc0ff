"""The course benchmark (python -m optimizers_for_a_small_gpt.benchmark; docs/benchmark.md): its numbers,
checked against values worked out by hand on made-up results; a shrunk suite run end to end (the
baselines set its target, a submission is scored, the leaderboard lands in report.md, a second
run runs nothing); and one shipped baseline result reproduced.

    pytest tests/test_benchmark.py
"""

import math
import re
import shlex
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT

from optimizers_for_a_small_gpt.benchmark import main
from optimizers_for_a_small_gpt.benchmark.leaderboard import best_reached
from optimizers_for_a_small_gpt.benchmark.results import easier
from optimizers_for_a_small_gpt.benchmark.running import run_studies, trial_rows, write_study_files
from optimizers_for_a_small_gpt.benchmark.scores import (
    area_score,
    bootstrap_interval,
    profile,
    ratios,
    steps_to_target,
    study_bests,
    workload_medians,
)
from optimizers_for_a_small_gpt.benchmark.suite import Workload, load_space, load_suite
from optimizers_for_a_small_gpt.report.runs import read_run

INF = math.inf
# Made-up results: {workload: {submission: the best steps of each of three studies}} (inf: missed).
BESTS = {
    "w1": {"a": [10, 20, 30], "b": [40, 40, INF], "c": [INF, INF, 10]},
    "w2": {"a": [INF, INF, INF], "b": [100, 50, 60], "c": [30, 30, 30]},
}
# By hand: the medians (w1: a 20, b 40, c inf; w2: a inf, b 60, c 30), so the ratios to the
# fastest are w1: a 1, b 2, c inf and w2: a inf, b 2, c 1. rho_a = rho_c = 1/2 from tau = 1 on,
# rho_b = 0 below 2 and 1 from 2 on. Areas up to 4, over 3: a (3 + 0) / 2 / 3, b (2 + 2) / 2 / 3.
MEDIANS = {"w1": {"a": 20, "b": 40, "c": INF}, "w2": {"a": INF, "b": 60, "c": 30}}
RATIOS = {"w1": {"a": 1, "b": 2, "c": INF}, "w2": {"a": INF, "b": 2, "c": 1}}
AREAS = {"a": 0.5, "b": 2 / 3, "c": 0.5}
# The cheapest workload of each family, for the runs below: a one-family project has its own only.
CHEAPEST = ["objective_ill_conditioned", "tabular_logistic", "vision_digits_mlp", "language_small_gpt",
            "diffusion_digits_ddpm"]
WORKLOAD = next(name for name in CHEAPEST if (ROOT / "benchmark" / "workloads" / f"{name}.yaml").is_file())


def trials_from(bests: dict) -> pd.DataFrame:
    """Two trials a study: the study's best, and a slower one (or a second miss)."""
    rows = []
    for workload, submissions in bests.items():
        for submission, times in submissions.items():
            for study, best in enumerate(times):
                for steps in (best, best * 3):
                    rows.append({"workload": workload, "submission": submission, "study": study,
                                 "steps_to_target": None if math.isinf(steps) else steps})
    return pd.DataFrame(rows)


def test_steps_to_target_is_the_first_step_at_the_target_and_a_miss_is_infinite():
    steps, accuracies, losses = [21, 42, 63, 84], [0.5, 0.8, 0.79, 0.9], [3.0, 1.0, 0.5, 0.7]
    assert steps_to_target(steps, accuracies, 0.8, "max") == 42  # reached exactly counts
    assert steps_to_target(steps, accuracies, 0.85, "max") == 84
    assert steps_to_target(steps, accuracies, 0.95, "max") == INF
    assert steps_to_target(steps, losses, 0.6, "min") == 63
    assert steps_to_target(steps, losses, 0.1, "min") == INF


def test_study_bests_medians_ratios_profile_and_area_match_the_hand_worked_values():
    bests = study_bests(trials_from(BESTS))
    for workload, submissions in BESTS.items():
        for submission, times in submissions.items():
            mine = bests[(bests.workload == workload) & (bests.submission == submission)].sort_values("study")
            assert list(mine["steps"]) == times  # each study's fastest trial; inf where none reached
    medians = workload_medians(bests)
    assert medians.to_dict(orient="index") == MEDIANS
    ratios_ = ratios(medians)
    assert ratios_.to_dict(orient="index") == RATIOS
    rho = profile(ratios_, [0.5, 1, 1.5, 1.99, 2, 3, 4])
    assert list(rho["a"]) == list(rho["c"]) == [0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert list(rho["b"]) == [0, 0, 0, 0, 1, 1, 1]
    scores = area_score(ratios_, tau_max=4)
    assert scores.to_dict() == pytest.approx(AREAS)
    # The area is the integral of rho: a fine Riemann sum of the profile gives the same numbers.
    taus = np.linspace(1, 4, 30001)[:-1]
    riemann = profile(ratios_, taus).mean()  # the mean of rho over [1, 4): its integral over 4 - 1
    assert riemann.to_dict() == pytest.approx(AREAS, abs=1e-3)


def test_the_fastest_everywhere_scores_1_and_one_that_misses_every_target_scores_0():
    bests = {"w1": {"fast": [5, 6, 7], "slow": [50, 60, 70], "never": [INF] * 3},
             "w2": {"fast": [1, 1, 2], "slow": [4, 8, 9], "never": [INF] * 3},
             "w3": {"fast": [10, 10, 10], "slow": [30, 35, INF], "never": [INF] * 3}}
    scores = area_score(ratios(workload_medians(study_bests(trials_from(bests)))), tau_max=4)
    assert scores["fast"] == 1 and scores["never"] == 0
    # slow: ratios 60/6 = 10 (beyond 4: 0), 8/1 = 8 (0) and 35/10 = 3.5: (4 - 3.5) / 3 / 3 workloads
    assert scores["slow"] == pytest.approx(0.5 / 3 / 3)


def test_the_bootstrap_interval_contains_the_score_and_shrinks_to_it_when_studies_agree():
    bests = study_bests(trials_from(BESTS))
    interval = bootstrap_interval(bests, tau_max=4, samples=2000)
    for submission, area in AREAS.items():
        low, high = interval.loc[submission]
        assert low <= area <= high
    assert interval.loc["b", "high"] > interval.loc["b", "low"]  # b's studies disagree: the interval is wide
    same = {"w1": {"a": [10] * 3, "b": [20] * 3}, "w2": {"a": [30] * 3, "b": [15] * 3}}
    scores = area_score(ratios(workload_medians(study_bests(trials_from(same)))), tau_max=4)
    interval = bootstrap_interval(study_bests(trials_from(same)), tau_max=4, samples=200)
    for submission in ("a", "b"):
        assert tuple(interval.loc[submission]) == pytest.approx((scores[submission], scores[submission]))


def test_a_miss_shows_the_best_value_reached_each_studys_best_trial_median_over_studies():
    trials = pd.DataFrame({"workload": "w", "submission": "s", "study": [0, 0, 1, 1, 2, 2],
                           "best": [3.5, 3.2, 3.3, 3.6, 3.1, None]})  # None: a trial that diverged
    loss = Workload(name="w", experiment=[], steps=10, flags={}, metric="val/bpb", mode="min", tier="cpu")
    assert best_reached(trials, loss, "s") == 3.2  # the studies' best: 3.2, 3.3 and 3.1
    accuracy = Workload(name="w", experiment=[], steps=10, flags={}, metric="val/acc", mode="max", tier="cpu")
    assert best_reached(trials, accuracy, "s") == 3.5  # the studies' best: 3.5, 3.6 and 3.1


def test_targets_are_rounded_to_3_digits_towards_the_easier_side():
    assert easier(0.97222, "max") == 0.972 and easier(2.9459, "min") == 2.95
    assert easier(6.2361e-9, "min") == 6.24e-9 and easier(0.1, "max") == 0.1


def shrunk_suite(tmp_path, baselines: list, targets: bool, steps: int | None = None) -> None:
    """benchmark/ in tmp_path: one study of two trials on the cheapest workload, paths made absolute;
    with the shipped targets, or none (then the workload's budget can be shrunk to `steps`)."""
    folder = tmp_path / "benchmark"
    (folder / "workloads").mkdir(parents=True)
    suite = yaml.safe_load((ROOT / "benchmark" / "suite.yaml").read_text())
    suite.update(studies=1, trials=2, bootstrap=50,
                 baselines={name: str(ROOT / "benchmark" / "spaces" / f"{name}.yaml") for name in baselines})
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    workload = yaml.safe_load((ROOT / "benchmark" / "workloads" / f"{WORKLOAD}.yaml").read_text())
    workload["experiment"] = [str(ROOT / path) for path in np.atleast_1d(workload["experiment"])]
    if steps is not None:
        assert not targets, "the shipped targets hold for the workload's own budget only"
        workload["steps"] = min(workload["steps"], steps)
    (folder / "workloads" / f"{WORKLOAD}.yaml").write_text(yaml.safe_dump(workload))
    if targets:
        shutil.copy(ROOT / "benchmark" / "targets.yaml", folder / "targets.yaml")


def test_a_shrunk_suite_sets_its_target_scores_a_submission_and_runs_nothing_twice(in_tmp, capsys):
    shrunk_suite(in_tmp, ["adamw"], targets=False, steps=42)  # 42: two validations of the digits MLP
    (in_tmp / "report.md").write_text("# Report\n<!-- benchmark:leaderboard:start -->\n<!-- benchmark:leaderboard:end -->\n")
    common = ["--embed", "report.md", "--out", "figures"]
    assert main(["score", "--optimizer", "nadam", "--space", str(ROOT / "benchmark/spaces/nadam.yaml"), *common]) == 2
    assert f"error: no target for {WORKLOAD} (none yet, or one set for another budget" in capsys.readouterr().err
    other = pd.DataFrame([{"workload": "a_gpu_workload", "tier": "gpu", "submission": "adamw", "study": 0}])
    other.to_csv(in_tmp / "benchmark" / "baselines.csv", index=False)  # another tier's results: they stay
    assert main(["baselines", *common]) == 0
    output = capsys.readouterr().out
    shipped = pd.read_csv(in_tmp / "benchmark" / "baselines.csv")
    assert list(shipped["workload"]) == ["a_gpu_workload", WORKLOAD, WORKLOAD]
    target = yaml.safe_load((in_tmp / "benchmark" / "targets.yaml").read_text())[WORKLOAD]
    assert f"target of {WORKLOAD}:" in output and target["from"] == "adamw"
    # By hand, from the two trials' event files: the best value within 3/4 of the budget (one study:
    # its own median), rounded to 3 digits towards the easier side.
    workload = load_suite("benchmark").workloads[0]
    best = max if workload.mode == "max" else min
    reached = []
    for folder in (in_tmp / "runs" / "benchmark" / WORKLOAD / "adamw" / "study0").glob("*_s0"):
        series = read_run(folder).scalars[workload.metric]
        reached.append(best(series.values[series.steps <= 0.75 * workload.steps]))
    assert len(reached) == 2 and target["target"] == easier(float(best(reached)), workload.mode)
    assert main(["score", "--optimizer", "nadam", "--space", str(ROOT / "benchmark/spaces/nadam.yaml"), *common]) == 0
    output = capsys.readouterr().out
    assert f"{WORKLOAD}/nadam/study0: 2 trials, seed 0" in output
    assert "| rank | optimizer | score (steps) | 95% interval |" in output
    # Every trial ran here, on one machine: seconds compare too, and each step's cost beside AdamW's.
    assert "| score (seconds) | 95% interval (seconds) | step cost (x adamw) | results |" in output
    assert any(line.startswith("| ") and "| nadam |" in line for line in output.splitlines())
    results = pd.read_csv(in_tmp / "figures" / "benchmark_results.csv")
    assert sorted(set(results["submission"])) == ["adamw", "nadam"] and len(results) == 4
    assert set(results["target"]) == {target["target"]}
    for name in ("benchmark_profiles.png", "benchmark_steps.png", "benchmark_leaderboard.md", "benchmark_leaderboard.tex"):
        assert (in_tmp / "figures" / name).is_file()
    report = (in_tmp / "report.md").read_text()
    assert "| nadam |" in report and "Cite it as:" in report
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the figures and tables draw without a single warning (matplotlib's included)
        assert main(["leaderboard", *common]) == 0
    assert main(["score", "--optimizer", "nadam", "--space", str(ROOT / "benchmark/spaces/nadam.yaml"), *common]) == 0
    assert "trials, seed" not in capsys.readouterr().out  # everything was there: no trial ran again
    assert len(list((in_tmp / "runs" / "benchmark" / WORKLOAD / "nadam" / "study0").glob("*_s0"))) == 2


def test_scoring_under_a_baselines_name_or_with_another_space_is_refused(in_tmp, capsys):
    shrunk_suite(in_tmp, ["adamw"], targets=True)
    space = in_tmp / "space.yaml"
    space.write_text("lr: {low: 1.0e-3, high: 1.0e-2, log: true}\n")
    assert main(["score", "--optimizer", "adamw", "--space", str(space)]) == 2
    assert "adamw is a baseline's name: score yours under another one (--name my_adamw)" in capsys.readouterr().err
    assert main(["score", "--optimizer", "no_such", "--space", str(space)]) == 2
    assert "unknown optimizer 'no_such'" in capsys.readouterr().err
    space.write_text("lr: {low: 1.0e-3, high: 1.0e-4}\n")
    assert main(["score", "--optimizer", "nadam", "--space", str(space)]) == 2
    assert "lr: a range needs low < high" in capsys.readouterr().err


def test_a_shipped_baseline_result_is_reproduced(in_tmp):
    """Study 0 of nesterov on the cheapest workload, shrunk to its first trial, reaches the target
    at the step benchmark/baselines.csv gives (the trial's point and seed are fixed by the study)."""
    shrunk_suite(in_tmp, ["nesterov"], targets=True)
    suite = load_suite("benchmark")
    suite.trials = 1
    run_studies(write_study_files(suite, "nesterov", "nesterov", load_space(ROOT / "benchmark/spaces/nesterov.yaml")))
    (row,) = trial_rows(suite, suite.workloads[0], "nesterov")
    shipped = pd.read_csv(ROOT / "benchmark" / "baselines.csv")
    (expected,) = shipped[(shipped.workload == WORKLOAD) & (shipped.submission == "nesterov") & (shipped.study == 0)
                          & (shipped.trial == row["trial"])].to_dict(orient="records")
    assert row["target"] == expected["target"]
    if math.isnan(expected["steps_to_target"]):
        assert row["steps_to_target"] is None
    else:
        assert row["steps_to_target"] == expected["steps_to_target"]
    assert row["best"] == pytest.approx(expected["best"], rel=1e-3)


def documented_commands() -> list[str]:
    """Every benchmark command in a bash block of README.md and docs/benchmark.md, in order."""
    commands = []
    for document in (ROOT / "README.md", ROOT / "docs" / "benchmark.md"):
        for block in re.findall(r"^ *```bash\n(.*?)^ *```", document.read_text(), flags=re.DOTALL | re.MULTILINE):
            commands += [line.split("#")[0].strip() for line in block.splitlines() if ".benchmark " in line]
    return commands


@pytest.mark.slow
def test_the_documented_benchmark_commands_run_as_written(in_tmp):
    if not (ROOT / "docs" / "benchmark.md").is_file():
        pytest.skip("no docs/benchmark.md: this project was made before the course benchmark (cruft update brings it)")
    commands = documented_commands()
    assert len(commands) >= 5 and any(" score " in command for command in commands)
    shrunk_suite(in_tmp, ["adamw", "nesterov", "muon"], targets=True)
    shutil.copytree(ROOT / "benchmark" / "spaces", in_tmp / "benchmark" / "spaces")  # the commands name them so
    for command in commands:
        words = shlex.split(command)
        assert words[:5] == ["uv", "run", "python", "-m", "optimizers_for_a_small_gpt.benchmark"], command
        assert main(words[5:]) == 0, command
