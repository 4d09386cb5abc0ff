"""Train, evaluate and use this project's models: LightningCLI's fit / validate / test / predict.

    uv run python train.py fit                        # the default experiment: configs/language.yaml
    uv run python train.py fit --config configs/<experiment>.yaml --config configs/trainer/gpu.yaml
    uv run python train.py fit --optimizer adam --optimizer.lr 3e-4   # another optimizer (fit --help lists them)
    uv run python train.py fit --ckpt_path last                       # resume the latest run
    uv run python train.py fit --config runs/<experiment>/<name>/config.yaml   # repeat a run
    uv run python train.py test --config runs/<experiment>/<name>/config.yaml \
        --ckpt_path runs/<experiment>/<name>/checkpoints/last.ckpt
    uv run python train.py fit --help                 # every key with its default, and every optimizer

Each run writes runs/<experiment>/<name>/ (the name is --name, else what the command line changes,
else version_N): config.yaml, checkpoints/ and TensorBoard events (uv run tensorboard --logdir runs).
"""

import atexit
import os
import sys
from pathlib import Path

from optimizers_for_a_small_gpt.shorthands import exit_on_unknown_names

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "language.yaml"


def exit_at_once(status: list[int]) -> None:
    """End the process without Python's clean-up of its objects, which takes a second or two once
    torch and Lightning are loaded. Registered first, this runs after every other exit handler
    (the run's files are written and closed by then), and only once the exit status is known.
    A file that code of yours opens and never closes loses what is still buffered: use `with open(...)`."""
    if status and "IPython" not in sys.modules:  # (in a notebook's %run, the notebook ends itself)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status[0])


if __name__ == "__main__":
    status = []  # the command's exit status, once known
    atexit.register(exit_at_once, status)
    try:
        exit_on_unknown_names(sys.argv[1:])  # a misspelt optimizer or schedule ends here, before Lightning loads
        from optimizers_for_a_small_gpt.cli import main

        main(default_config=DEFAULT_CONFIG)
        status.append(0)
    except SystemExit as stop:  # --help (status 0) or a mistake in the command (status 2)
        if stop.code is None or isinstance(stop.code, int):
            status.append(stop.code or 0)
        raise
