"""Training speed of an experiment: a plain PyTorch loop against Lightning, and Lightning with
the per-step diagnostics off against on.

    python scripts/benchmark.py                                  # the default experiment
    python scripts/benchmark.py --config configs/vision_cifar10.yaml --steps 200

All three runs use the experiment's model, data batches and optimizer; the first `--warmup`
steps are not timed, and the device is synchronised only where the clock is read. The
printed ratios are what to report ("Lightning costs 1.3x a plain loop here").
"""

import argparse
import copy
import time
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import ModelCheckpoint

from {{ cookiecutter.package_name }}.cli import CourseCLI
from {{ cookiecutter.package_name }}.optim import param_groups

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "{{ 'vision' if cookiecutter.problem_family == 'all' else cookiecutter.problem_family }}.yaml"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class StepClock(L.Callback):
    """Seconds per training step between step `warmup` and the end of the run."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.steps = warmup, None, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.warmup:
            sync(module.device)
            self.start = time.perf_counter()
        self.steps = trainer.global_step - self.warmup

    def on_train_end(self, trainer, module):
        sync(module.device)
        self.seconds_per_step = (time.perf_counter() - self.start) / max(self.steps, 1)


def experiment(config: str, extra: list[str]) -> CourseCLI:
    """The experiment's model and data, built as train.py builds them (nothing is run)."""
    return CourseCLI(args=["--config", config, *extra], run=False, seed_everything_default=0,
                     auto_configure_optimizers=False, save_config_callback=None)


def plain_loop(config: str, steps: int, warmup: int) -> float:
    """Seconds per step of a hand-written loop: forward, backward, optimizer step."""
    cli = experiment(config, [])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = cli.model.to(device)
    data = cli.datamodule or model  # some families' modules make their own batches
    data.trainer = L.Trainer(accelerator=device.type, devices=1, logger=False)  # only to place the data
    data.setup("fit")
    optimizer = model.optimizer_factory(param_groups(model, model.param_group_overrides))
    if hasattr(optimizer, "train"):  # Schedule-Free: train on the training weights
        optimizer.train()
    step, start = 0, None
    while step < steps:
        for batch in data.train_dataloader():
            if step == warmup:
                sync(device)
                start = time.perf_counter()
            loss = model.loss(data.on_after_batch_transfer(move_data_to_device(batch, device), 0))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    sync(device)
    return (time.perf_counter() - start) / (steps - warmup)


def lightning_run(config: str, steps: int, warmup: int, diagnostics_every: int) -> float:
    """Seconds per step of train.py's Trainer, diagnostics every `diagnostics_every` steps (0: off)."""
    clock = StepClock(warmup)
    cli = experiment(config, ["--trainer.max_steps", str(steps), "--trainer.max_epochs", "-1",
                              "--trainer.limit_val_batches", "0", "--trainer.logger", "false",
                              "--trainer.enable_progress_bar", "false",
                              "--trainer.enable_model_summary", "false",
                              "--diagnostics.every_n_steps", str(diagnostics_every),
                              "--diagnostics.stop_on_divergence", str(bool(diagnostics_every)).lower()])
    trainer = cli.trainer
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, ModelCheckpoint)]  # no disk writes
    trainer.callbacks.append(clock)
    trainer.fit(copy.deepcopy(cli.model), cli.datamodule)
    return clock.seconds_per_step


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(DEFAULT), help="experiment config")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--warmup", type=int, default=50, help="first steps left out of the timing")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")
    times = {
        "plain PyTorch loop": plain_loop(args.config, args.steps, args.warmup),
        "Lightning, diagnostics off": lightning_run(args.config, args.steps, args.warmup, 0),
        "Lightning, diagnostics every step": lightning_run(args.config, args.steps, args.warmup, 1),
    }
    for name, seconds in times.items():
        print(f"{name:36s} {1000 * seconds:8.2f} ms/step")
    plain, off, on = times.values()
    print(f"ratio Lightning / plain loop:         {off / plain:.2f}")
    print(f"ratio diagnostics on / off:           {on / off:.2f}")
    return times


if __name__ == "__main__":
    main()
