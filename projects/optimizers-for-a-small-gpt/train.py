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

import gc
import sys
from pathlib import Path

from optimizers_for_a_small_gpt.run.flags import expand_or_exit  # (imports torch)

# Python's last garbage collection, as a command ends, looks at every object still alive: half a
# second for torch's. Frozen objects are left out of it (gc.freeze). Only torch's, not
# Lightning's: those include Triton's bindings, which report frozen objects as leaks at exit.
if "triton" not in sys.modules:
    gc.freeze()

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "language.yaml"


if __name__ == "__main__":
    expanded = expand_or_exit(sys.argv[1:])  # a misspelt optimizer or schedule ends here, before Lightning loads
    from optimizers_for_a_small_gpt.run.cli import main

    main(default_config=DEFAULT_CONFIG, expanded=expanded)
