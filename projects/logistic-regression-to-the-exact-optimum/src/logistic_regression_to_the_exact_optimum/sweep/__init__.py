"""Hyperparameter sweeps on Optuna, in which every trial is an ordinary run of train.py.

    uv run python sweep.py --config configs/sweeps/<name>.yaml               # run a sweep, or finish it
    uv run python sweep.py --config configs/sweeps/<name>.yaml --workers 2   # two trials at a time
    uv run python sweep.py --config configs/sweeps/<name>.yaml --storage postgresql://user:password@host/db
    uv run optuna-dashboard runs/<name>/study.journal                        # watch it (http://127.0.0.1:8080)

A sweep file (configs/sweeps/*.yaml; its comments explain every key) names the experiment all
trials start from, the search space, the seeds, the budget, the metric and the search method
(grid, random, tpe or qmc). The words used here:

- a *point* is one setting of the search space, e.g. `--optimizer adam --optimizer.lr 0.001`;
- a *trial* (Optuna's word) runs one point once with each seed of the sweep. Each seed is an
  ordinary run in runs/<sweep>/<point>_s<seed>/ (config.yaml, checkpoints/, TensorBoard events,
  and output.log, what the run printed), so `python train.py fit --config <that>/config.yaml`
  repeats it. The trial's value is the metric's mean over the seeds;
- a *worker* is one Python process that runs trials one after another (imports are paid once).

The study, Optuna's record of every trial, is in runs/<sweep>/study.journal unless --storage
names another one, which any number of workers on any number of machines can share. Stopping a
sweep (Ctrl-C, a kill, a time limit) leaves it consistent: the same command finishes it and
re-runs only the trials that were cut off. A diverged run is a result, not a crash: its trial
gets the worst value there is (-inf for a metric to maximize, +inf for one to minimize).

With `final_seeds`, the best point of each value of `compare` (each optimizer, say) is re-run
with those fresh seeds after the search, in runs/<sweep>_final/: the fair comparison to report.
"""

from .main import main
from .trials import PruneHopeless  # runs of sweeps with `prune: true` name it logistic_regression_to_the_exact_optimum.sweep.PruneHopeless

__all__ = ["PruneHopeless", "main"]
