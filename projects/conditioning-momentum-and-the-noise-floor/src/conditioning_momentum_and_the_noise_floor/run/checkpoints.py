"""The two checkpoints train.py keeps in runs/<experiment>/<name>/checkpoints/: the best one and
the latest one. Their settings are the `checkpoint` and `last_checkpoint` sections of a config:

    checkpoint:
      monitor: val/loss         # keep the checkpoint with the lowest validation loss...
      mode: min                 # ...the smallest value (any argument of Lightning's ModelCheckpoint)
    last_checkpoint:
      every_seconds: 60         # rewrite last.ckpt (what --ckpt_path last resumes) this often, and at the end

    uv run python train.py fit --last_checkpoint.every_seconds 0    # last.ckpt after every epoch
    uv run python train.py fit --trainer.enable_checkpointing false # no checkpoints at all

Every checkpoint is written whole beside its final path, then renamed into place (AtomicCheckpointIO),
so last.ckpt and the best checkpoint are always a complete file, the old one or the new one,
whatever kills the process or fills the disk.
"""

import errno
import io
import os
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..config_errors import ConfigError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but each file is written next to its final path and renamed
    over it: a rename within one folder is atomic. (Lightning's own writes to the temporary folder
    and moves the file, which on another file system copies it over the old one: a kill during the
    copy leaves half a checkpoint.) A full disk ends the run with one line; no checkpoint is lost.
    cli.py installs it on every trainer whose checkpoint writer is Lightning's default."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):  # a cloud path: Lightning's own way
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        partial = path.with_name(f"{path.name}.partial")
        try:
            with open(partial, "wb") as file:
                file.write(buffer.getbuffer())
                file.flush()
                os.fsync(file.fileno())  # on the disk before the rename makes it the checkpoint
        except OSError as error:
            partial.unlink(missing_ok=True)
            if error.errno == errno.ENOSPC:
                raise ConfigError(f"the disk is full: a checkpoint of this run needs {buffer.tell() / 1e6:.1f} MB in "
                                  f"{path.parent}; free some space, then continue the run with --ckpt_path last "
                                  "(its checkpoints so far are whole)") from error
            raise
        os.replace(partial, path)


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
    of training; a kill while saving leaves the previous last.ckpt whole (AtomicCheckpointIO).
    (Since Lightning 2.6, ModelCheckpoint(save_last=True) writes last.ckpt only with a new best
    checkpoint, so a run could not resume from its true last epoch with it alone.)
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
        trainer.save_checkpoint(path)  # whole, or not at all (AtomicCheckpointIO)
        self.saved_at, self.saved_step, self.last_path = time.monotonic(), trainer.global_step, str(path)
