"""Checkpoints are written whole or not at all: a kill or a full disk while saving leaves the
previous checkpoint loadable, and a full disk ends the run with one line."""

import errno
import os
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import QUIET, run
from jsonargparse import ArgumentParser

from optimizers_for_a_small_gpt.config_errors import ConfigError
from optimizers_for_a_small_gpt.run.checkpoints import AtomicCheckpointIO

SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2", *QUIET]


def stop_at(name: str, error: BaseException):
    """A stand-in for os.<name> that raises `error`, as a kill or a full disk would at that point."""
    def stopped(*args, **kwargs):
        raise error
    return stopped


def test_every_run_writes_its_checkpoints_beside_them_and_renames_them_in(in_tmp, monkeypatch):
    # The temporary folder may be on another disk (a copy across disks is not atomic): it is never used.
    monkeypatch.setattr(tempfile, "mkstemp", stop_at("mkstemp", AssertionError("a checkpoint went through the temporary folder")))
    cli = run("fit", *SHORT)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    folder = Path(cli.trainer.log_dir) / "checkpoints"
    assert (folder / "last.ckpt").is_file() and list(folder.glob("best-*.ckpt"))
    assert not list(folder.glob("*.partial"))


@pytest.mark.parametrize("where", ["fsync", "replace"])  # killed while writing, or just before the rename
def test_a_save_killed_midway_leaves_the_previous_checkpoint_whole(where, tmp_path, monkeypatch):
    path, writer = tmp_path / "checkpoints" / "last.ckpt", AtomicCheckpointIO()
    writer.save_checkpoint({"step": torch.tensor(1)}, path)
    monkeypatch.setattr(os, where, stop_at(where, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        writer.save_checkpoint({"step": torch.tensor(2), "weights": torch.zeros(10_000)}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1
    writer.save_checkpoint({"step": torch.tensor(3)}, path)  # the next save writes over what was left
    assert torch.load(path)["step"] == 3 and not list(path.parent.glob("*.partial"))


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_what_to_do(tmp_path, monkeypatch, in_tmp, capsys):
    path, writer, real_fsync = tmp_path / "last.ckpt", AtomicCheckpointIO(), os.fsync
    writer.save_checkpoint({"step": torch.tensor(1)}, path)
    monkeypatch.setattr(os, "fsync", stop_at("fsync", OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(ConfigError, match=r"the disk is full: a checkpoint of this run needs [\d.]+ MB in .*--ckpt_path last"):
        writer.save_checkpoint({"step": torch.tensor(2)}, path)
    assert torch.load(path)["step"] == 1 and not list(tmp_path.glob("*.partial"))
    with pytest.raises(SystemExit) as exit_info:  # in a run: one line, exit status 2
        run("fit", *SHORT)
    assert exit_info.value.code == 2 and "error: the disk is full" in capsys.readouterr().err
    monkeypatch.setattr(os, "fsync", real_fsync)
    # A full disk elsewhere (here: as config.yaml is written) ends with one line too.
    monkeypatch.setattr(ArgumentParser, "save", stop_at("save", OSError(errno.ENOSPC, "No space left", "config.yaml")))
    with pytest.raises(SystemExit) as exit_info:
        run("fit", *SHORT)
    assert exit_info.value.code == 2 and "error: the disk is full (writing config.yaml)" in capsys.readouterr().err
