"""The course benchmark: is my optimizer better? Scored across workloads, on a laptop.

    uv run python -m optimizers_for_a_small_gpt.benchmark score --optimizer nadam --space benchmark/spaces/nadam.yaml \
        --workers 2                                                       # two trials at a time
    uv run python -m optimizers_for_a_small_gpt.benchmark score --optimizer my_package.lion.Lion \
        --space benchmark/spaces/lion.yaml                                # your own optimizer, by import path
    uv run python -m optimizers_for_a_small_gpt.benchmark leaderboard   # the tables and figures again, running nothing
    uv run python -m optimizers_for_a_small_gpt.benchmark baselines     # the baselines run here: seconds become comparable
    uv run python -m optimizers_for_a_small_gpt.benchmark targets       # set the targets again from those runs

The rules (benchmark/suite.yaml; docs/benchmark.md explains them): a *workload* is an experiment
with a step budget and a target (benchmark/workloads/*.yaml, benchmark/targets.yaml); a
*submission* is an optimizer and a search-space file (benchmark/spaces/*.yaml), the same for every
workload. On each workload, every optimizer, baselines included, gets the same tuning budget:
`studies` independent studies of `trials` trials drawn quasi-randomly from its space, study k
running its trials with seed k. A trial's time is the steps until its metric reached the target
(a miss is infinite); a study counts its fastest trial; a workload the median over studies. Across
workloads, the performance profile and its area up to tau_max give one score from 0 to 1, with a
bootstrap interval over studies.

Every trial is an ordinary run, runs/benchmark/<workload>/<submission>/study<k>/<point>_s<k>/,
made by the sweep machinery (sweep/): a stopped command runs only what is missing, TensorBoard
shows them all (tensorboard --logdir runs/benchmark), and train.py fit --config <run>/config.yaml
repeats any. The baselines' results come with the project (benchmark/baselines.csv), so scoring
runs only your trials.

Its files: suite.py (the benchmark's files), running.py (studies as sweeps, and their trials'
results), scores.py (the numbers), results.py (the table of trials, the targets), leaderboard.py
(the tables), plots.py (the figures), main.py (this command).
"""

from .main import main

__all__ = ["main"]
