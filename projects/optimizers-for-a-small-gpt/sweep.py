"""Run a hyperparameter sweep: many runs of train.py, chosen and recorded by Optuna.

    uv run python sweep.py --config configs/sweeps/<name>.yaml               # run a sweep, or finish it
    uv run python sweep.py --config configs/sweeps/<name>.yaml --workers 2   # two trials at a time
    uv run python sweep.py --config configs/sweeps/<name>.yaml --storage postgresql://user:password@host/db
    uv run optuna-dashboard runs/<name>/study.journal                        # watch it live
    uv run python -m optimizers_for_a_small_gpt.compare --sweep configs/sweeps/<name>.yaml   # its figure and table again

Every trial is an ordinary run in runs/<name>/<point>_s<seed>/ (config.yaml, checkpoints/,
TensorBoard events): `python train.py fit --config runs/<name>/<point>_s<seed>/config.yaml`
repeats one. Ctrl-C stops a sweep; the same command finishes it. A sweep file explains each of
its keys in comments (see configs/sweeps/); src/optimizers_for_a_small_gpt/sweep.py does the work.
"""

import sys

from optimizers_for_a_small_gpt.sweep import main

if __name__ == "__main__":
    sys.exit(main())
