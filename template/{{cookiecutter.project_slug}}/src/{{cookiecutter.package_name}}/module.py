"""The LightningModule base that every problem family builds on.

It turns the `optimizer` and `scheduler` config entries into an optimizer and a per-step
learning-rate schedule (see optim.py), checks them when the module is made (so a typo fails
before training, not after), and logs the learning rate as `opt/lr`. With a Schedule-Free
optimizer it evaluates and saves the averaged weights, and trains on the others.

A family module also defines `loss(batch)`: the objective on one batch, which the
diagnostics (callbacks.py: sharpness, gradient noise scale) evaluate.

Metric names are the same in every family, so the comparison and figure tools work for all:
`train/loss`, `val/loss`, `test/loss`, `opt/lr`, plus family metrics such as `val/acc`.
"""

from typing import Any

import lightning as L

from .optim import (
    DEFAULT_OPTIMIZER,
    DEFAULT_SCHEDULER,
    SCHEDULE_FREE,
    build_optimizer,
    build_scheduler,
    check_optimizer,
    check_scheduler,
    with_recommended,
)


class CourseModule(L.LightningModule):
    """Subclass it, build your model in __init__ and write training_step / validation_step."""

    def __init__(self, optimizer: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None):
        super().__init__()
        self.optimizer_config = with_recommended(dict(optimizer or DEFAULT_OPTIMIZER))
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

    # Schedule-Free optimizers train on one sequence of weights and evaluate another (an
    # average); they must be told which one the model should hold.
    def schedule_free(self):
        """The run's Schedule-Free optimizer, or None."""
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        return optimizers[0] if optimizers and isinstance(optimizers[0], SCHEDULE_FREE) else None

    def on_train_epoch_start(self):
        if optimizer := self.schedule_free():
            optimizer.train()

    def on_validation_epoch_start(self):
        if optimizer := self.schedule_free():
            optimizer.eval()

    def on_validation_epoch_end(self):
        if (optimizer := self.schedule_free()) and self.trainer.state.fn == "fit":
            optimizer.train()  # training may go on within the epoch

    def on_save_checkpoint(self, checkpoint):
        optimizer = self.schedule_free()
        if optimizer and optimizer.param_groups[0]["train_mode"]:
            optimizer.eval()  # save the evaluation weights...
            checkpoint["state_dict"] = {name: value.detach().clone() for name, value in self.state_dict().items()}
            optimizer.train()
            for group in checkpoint["optimizer_states"][0]["param_groups"]:
                group["train_mode"] = False  # ...and record that, so a resumed run switches back
