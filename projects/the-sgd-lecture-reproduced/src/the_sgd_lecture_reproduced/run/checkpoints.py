"""The two checkpoints train.py keeps in runs/<experiment>/<name>/checkpoints/: the best one and
the latest one. Their settings are the `checkpoint` and `last_checkpoint` sections of a config:

    checkpoint:
      monitor: val/loss         # keep the checkpoint with the lowest validation loss...
      mode: min                 # ...the smallest value (any argument of Lightning's ModelCheckpoint)
    last_checkpoint:
      every_seconds: 60         # rewrite last.ckpt (what --ckpt_path last resumes) this often, and at the end

    uv run python train.py fit --last_checkpoint.every_seconds 0    # last.ckpt after every epoch
    uv run python train.py fit --trainer.enable_checkpointing false # no checkpoints at all
"""

import os
import time
from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint (the `checkpoint` section takes all its arguments). Lightning
    calls its per-step hook at every training step, to save every `every_n_train_steps` steps or
    every `train_time_interval`; without either, this one leaves that hook out (set to None, which
    Lightning skips), as it saves at epochs' ends only."""

    def __init__(self, **kwargs):  # ModelCheckpoint's arguments
        super().__init__(**kwargs)
        if not kwargs.get("every_n_train_steps") and kwargs.get("train_time_interval") is None:
            self.on_train_batch_end = None


class LatestCheckpoint(Callback):
    """Rewrites checkpoints/last.ckpt (what `--ckpt_path last` resumes from) at the end of an
    epoch, when `every_seconds` have passed since it last did, and always when the run ends (its
    budget spent, or stopped early).

    Not after every epoch: for the small default experiments an epoch takes milliseconds and
    writing a checkpoint takes longer. A run killed without warning loses at most `every_seconds`
    of training. The file is written beside last.ckpt and then renamed over it, so a kill while
    saving leaves the previous last.ckpt whole. (Since Lightning 2.6, ModelCheckpoint(save_last=True)
    writes last.ckpt only with a new best checkpoint, so a run could not resume from its true last
    epoch with it alone.)
    """

    def __init__(self, every_seconds: float = 60.0):  # seconds of training between two saves of last.ckpt
        self.every_seconds = every_seconds
        self.saved_at = time.monotonic()
        self.saved_step = None  # the global step last.ckpt holds
        self.last_path = ""  # checkpoints/last.ckpt, once written

    def on_fit_start(self, trainer, pl_module):
        self.saved_at = time.monotonic()

    def due(self, trainer) -> bool:
        """Whether this epoch end is one to save at: the run's last, or a save is `every_seconds` old.
        Every process of a multi-GPU run decides as the first one does (they all take part in a save)."""
        last_epoch = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
        last_step = trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps
        due = trainer.should_stop or last_epoch or last_step or time.monotonic() - self.saved_at >= self.every_seconds
        return trainer.strategy.broadcast(due)

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.global_step == self.saved_step:
            return
        if not self.due(trainer):
            return
        path = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        partial = path.with_name("last.ckpt.partial")
        trainer.save_checkpoint(partial)
        if trainer.is_global_zero:
            os.replace(partial, path)  # atomic: last.ckpt is the old file or the new one, never half of one
        trainer.strategy.barrier()
        self.saved_at, self.saved_step, self.last_path = time.monotonic(), trainer.global_step, str(path)
