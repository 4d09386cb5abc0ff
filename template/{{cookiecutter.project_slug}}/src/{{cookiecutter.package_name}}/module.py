"""The LightningModule base that every problem family builds on.

It turns the `optimizer` and `scheduler` config entries into an optimizer and a per-step
learning-rate schedule (see optim.py), checks them when the module is made (so a typo fails
before training, not after), and logs the learning rate as `opt/lr`.

Metric names are the same in every family, so the comparison and figure tools work for all:
`train/loss`, `val/loss`, `test/loss`, `opt/lr`, plus family metrics such as `val/acc`.
"""

from typing import Any

import lightning as L

from .optim import (
    DEFAULT_OPTIMIZER,
    DEFAULT_SCHEDULER,
    build_optimizer,
    build_scheduler,
    check_optimizer,
    check_scheduler,
)


class CourseModule(L.LightningModule):
    """Subclass it, build your model in __init__ and write training_step / validation_step."""

    def __init__(self, optimizer: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None):
        super().__init__()
        self.optimizer_config = dict(optimizer or DEFAULT_OPTIMIZER)
        self.scheduler_config = dict(scheduler or DEFAULT_SCHEDULER)
        check_optimizer(self.optimizer_config)
        check_scheduler(self.scheduler_config)

    def configure_optimizers(self):
        optimizer = build_optimizer(self, self.optimizer_config)
        total_steps = self.trainer.estimated_stepping_batches
        scheduler = build_scheduler(optimizer, self.scheduler_config, total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_batch_start(self, batch, batch_idx):
        # A Python float read from the optimizer: logging it costs no device synchronisation.
        self.log("opt/lr", self.optimizers().param_groups[0]["lr"])
