"""The LightningModule base that every problem family builds on.

It holds what every family shares: the optimizer and the learning-rate schedule (chosen with
`--optimizer` and `--scheduler`, see optim/), checked when the module is made so that a typo
fails before any data loads, and the learning rate logged as `opt/lr`.

A family module subclasses CourseModule, builds its net in __init__, writes training_step and
validation_step, and defines `loss(batch)`: the objective on one batch, which the diagnostics
(run/callbacks.py: sharpness, gradient noise scale) evaluate. It needs no other hook: switching an
optimizer's train/eval weights (Schedule-Free) and EMA are callbacks. See docs/extending.md.

Metric names are the same in every family, so the comparison and figure tools work for all:
`train/loss`, `val/loss`, `test/loss`, `opt/lr`, plus family metrics such as `val/acc`.
A data module whose `test_every_epoch` is true hands validation a second dataloader, the test
split: validation_step(batch, batch_idx, dataloader_idx) logs its batches under `test/`, with
self.log(..., add_dataloader_idx=False) so that the names stay `test/loss`, `test/acc`.

Speed: a training step should cost its loss and little else. Per-step metrics go through
`self.log_step(...)`, which writes only on the steps whose metrics reach TensorBoard (every
`trainer.log_every_n_steps`): `self.log` costs a fraction of a millisecond each call, as much as
a whole step of a small model. An epoch's mean (the training accuracy) adds up on the device with
`self.log_epoch_mean(...)` and is logged once, when the epoch ends.
"""

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from .config_errors import ConfigError
from .optim import (
    as_factory,
    build_optimizer,
    check_optimizer,
    check_schedule,
    factory_spec,
    make_optimizer,
    make_schedule,
    param_groups,
)

# What --optimizer and --scheduler give the module: a class with its arguments, still to be
# called on the parameters (and, for a schedule, the optimizer and the run's number of steps).
OptimizerFactory = Callable[[Iterable], Optimizer]
ScheduleFactory = Callable[[Optimizer, int], LRScheduler]


class CourseModule(L.LightningModule):
    """Subclass it, build your model in __init__ and write training_step / validation_step."""

    # The metrics this module logs that are better higher, by the last part of their tag ("acc" for
    # val/acc and test/acc); every other metric is best at its minimum. None: the usual names
    # (acc, auroc, f1, r2, ..., see metrics.py). The end-of-run table, figures and compare read it.
    metrics_higher_is_better: tuple[str, ...] | None = None

    def __init__(
        self,
        optimizer: OptimizerFactory | None = None,  # None: Adam at lr 1e-3; in Python also {class_path, init_args}
        scheduler: ScheduleFactory | None = None,  # None: a constant learning rate
        param_groups: list[dict[str, Any]] | None = None,  # e.g. [{match: "net.layers.0.*", lr: 0.01}]
    ):
        super().__init__()
        self.optimizer_factory = as_factory(optimizer) or make_optimizer("adam")
        self.schedule_factory = as_factory(scheduler) or make_schedule("constant")
        self.param_group_overrides = param_groups
        self.epoch_sums: dict[str, tuple[torch.Tensor, int]] = {}  # log_epoch_mean's running sums
        stand_in = check_optimizer(self.optimizer_factory)
        check_schedule(self.schedule_factory)
        if getattr(stand_in, "needs_curvature", False) and type(self).curvature is CourseModule.curvature:
            raise ConfigError(f"optimizer {type(stand_in).__name__} with this preconditioner needs the Hessian, "
                              f"which {type(self).__name__} does not compute (a module that can defines curvature(), "
                              "as the objective family's does): use preconditioner adagrad or rmsprop "
                              "(or the optimizers adagrad, rmsprop, adam) here")

    def curvature(self) -> torch.Tensor:
        """The Hessian of the objective over the flattened parameters, for preconditioned methods
        (optimizers.PreconditionedGD). A family that can afford it overrides this (the objective
        family does); the others leave it, and those methods then stop with a message."""
        raise ConfigError(f"{type(self).__name__} does not compute the Hessian")

    def configure_optimizers(self):
        optimizer = build_optimizer(self.optimizer_factory, param_groups(self, self.param_group_overrides))
        if getattr(optimizer, "needs_curvature", False):  # a Newton-like method: give it the Hessian
            optimizer.curvature = self.curvature
        schedule = self.schedule_factory(optimizer, self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint):
        # A factory made in Python (make_optimizer) is saved as {class_path, init_args}: plain
        # data, which torch.load(weights_only=True) and load_from_checkpoint read back.
        hparams = checkpoint.get("hyper_parameters", {})
        for key in ("optimizer", "scheduler"):
            if callable(hparams.get(key)):
                hparams[key] = factory_spec(hparams[key])

    def writes_logs(self) -> bool:
        """Whether this training step's metrics reach the logger: compute and log per-step
        measures only then (see the function writes_logs below)."""
        return writes_logs(self.trainer)

    def log_step(self, name: str, value, prog_bar: bool = False) -> None:
        """Log a training metric of this step, on the steps that write logs; nothing on the others.

        It goes straight to the loggers (TensorBoard): self.log's bookkeeping, made for epoch means
        and for syncing across GPUs, costs more than a small model's whole step (with Lightning's
        logging of it, 1-2 ms a call on a CPU). Like self.log, it puts the value in
        trainer.callback_metrics (what callbacks such as EarlyStopping read), and with prog_bar=True
        in the progress bar (train/loss is shown so).
        """
        if not self.writes_logs():
            return
        trainer = self.trainer
        value = float(value.detach() if isinstance(value, torch.Tensor) else value)  # one GPU sync, on logging steps only
        trainer.callback_metrics[name] = torch.tensor(value)  # (Lightning keeps both dicts between calls)
        if prog_bar:
            trainer.progress_bar_metrics[name] = value
        for logger in self.loggers:
            logger.log_metrics({name: value}, step=trainer.global_step)  # the step being taken

    def log_epoch_mean(self, name: str, total: torch.Tensor, count: int) -> None:
        """Add `total` (a sum over `count` examples) to this training epoch's mean of `name`, which
        is logged when the epoch ends. Adds on the device: no synchronisation, no per-step log."""
        total = total.detach()
        if name in self.epoch_sums:
            total, count = total + self.epoch_sums[name][0], count + self.epoch_sums[name][1]
        self.epoch_sums[name] = (total, count)

    def on_train_epoch_end(self):
        for name, (total, count) in self.epoch_sums.items():
            self.log(name, total / count, sync_dist=True)  # the mean over every process's examples
        self.epoch_sums.clear()

    def on_train_batch_start(self, batch, batch_idx):
        # A Python float read from the optimizer: logging it costs no device synchronisation.
        self.log_step("opt/lr", self.optimizers().param_groups[0]["lr"])


def writes_logs(trainer, step: int | None = None) -> bool:
    """Whether the training step `step` writes its metrics to the loggers: every
    trainer.log_every_n_steps steps (the 10th, 20th, ... for 10), the last step of a run that is
    stopping, and every step of a fast_dev_run, as Lightning decides for its own self.log. A run
    shorter than log_every_n_steps logs no training step.

    `step` counts optimizer steps from 0; by default the one being taken, trainer.global_step,
    which is right until the optimizer steps (in training_step, on_train_batch_start, ...). After
    it (on_train_batch_end), trainer.global_step has moved on: pass the step that was taken."""
    step = trainer.global_step if step is None else step
    every = trainer.log_every_n_steps
    return bool(trainer.fast_dev_run) or (bool(every) and ((step + 1) % every == 0 or trainer.should_stop))
