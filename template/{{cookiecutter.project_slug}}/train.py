"""Train, evaluate and use this project's models: LightningCLI's fit / validate / test / predict.

    python train.py fit                        # the default experiment: configs/{{ 'vision' if cookiecutter.problem_family == 'all' else cookiecutter.problem_family }}.yaml
    python train.py fit --config configs/<experiment>.yaml --config configs/trainer/gpu.yaml
    python train.py fit --model.init_args.optimizer.lr 0.05          # change any key
    python train.py fit --ckpt_path last                             # resume the latest run
    python train.py fit --config runs/<experiment>/version_0/config.yaml   # reproduce a run
    python train.py test --config runs/<experiment>/version_0/config.yaml \
        --ckpt_path runs/<experiment>/version_0/checkpoints/last.ckpt
    python train.py fit --help                 # every key with its default

Each run writes runs/<experiment>/version_N/: config.yaml, checkpoints/ and TensorBoard events
(look at them with `tensorboard --logdir runs`).
"""

from pathlib import Path

from {{ cookiecutter.package_name }}.cli import main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "{{ 'vision' if cookiecutter.problem_family == 'all' else cookiecutter.problem_family }}.yaml"

if __name__ == "__main__":
    main(default_config=DEFAULT_CONFIG)
