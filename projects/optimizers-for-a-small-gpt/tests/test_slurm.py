"""On a SLURM cluster, a job that reaches its time limit is requeued by Lightning and continues
its own run, in one folder. Faked here in one process: SLURM's environment variables, its
time-limit signal (SIGUSR1) and a stand-in for `scontrol requeue`."""

import os
import signal
import sys
from pathlib import Path

import lightning as L
import pytest
import yaml
from conftest import QUIET, run

from optimizers_for_a_small_gpt.run import folders
from optimizers_for_a_small_gpt.sweep.main import finish_command

JOB = "4242"
SIGNAL_AT = 1  # the optimizer step at which the time-limit warning comes


class TimeLimitSignal(L.Callback):
    """Sends SLURM's time-limit warning (SIGUSR1) at step SIGNAL_AT, then stops, as SLURM ends the job."""

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == SIGNAL_AT:
            os.kill(os.getpid(), signal.SIGUSR1)  # Lightning's handler saves hpc_ckpt_1.ckpt and requeues the job
            trainer.should_stop = True


@pytest.fixture
def slurm_job(in_tmp, monkeypatch):
    """A one-task SLURM job's environment, with an `scontrol` that records what it was asked."""
    for key, value in {"SLURM_JOB_ID": JOB, "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "course-project", "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NUM_NODES": "1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("SLURM_ARRAY_JOB_ID", "SLURM_RESTART_COUNT", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(key, raising=False)
    tools = in_tmp / "bin"
    tools.mkdir()
    (tools / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {in_tmp / "scontrol.log"}\n')
    (tools / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    return in_tmp


@pytest.mark.skipif(sys.platform == "win32", reason="SLURM's signal (SIGUSR1) exists on Linux and macOS only")
def test_a_requeued_job_continues_its_run_in_one_folder(slurm_job, monkeypatch):
    callbacks = ["--trainer.callbacks", "[{class_path: test_slurm.TimeLimitSignal}]"]
    first = run("fit", "--trainer.max_epochs", "3", *callbacks, *QUIET)
    folder = Path(first.trainer.log_dir)
    assert (slurm_job / "scontrol.log").read_text().split() == ["requeue", JOB]
    assert (folder / "hpc_ckpt_1.ckpt").is_file() and not list(slurm_job.glob("hpc_ckpt_*"))  # in the run's folder
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # SLURM starts the same command again
    again = run("fit", "--trainer.max_epochs", "3", *QUIET)
    assert Path(again.trainer.log_dir) == folder and [path.name for path in folder.parent.iterdir()] == [folder.name]
    assert Path(again.trainer.ckpt_path).name == "hpc_ckpt_1.ckpt"  # Lightning continued from the requeue's checkpoint
    assert again.trainer.global_step == 3 * again.trainer.num_training_batches > SIGNAL_AT
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    assert saved["trainer"]["default_root_dir"] is None and saved["trainer"]["logger"]["init_args"]["version"] is None
    assert folder.name == "max_epochs3"  # named by the command line, not by the job's own settings


def test_a_requeued_run_keeps_only_the_newest_requeue_checkpoint(tmp_path):
    for number in (1, 2, 10):
        (tmp_path / f"hpc_ckpt_{number}.ckpt").write_bytes(b"a checkpoint")
    folders.keep_newest_hpc_checkpoint(tmp_path)  # as a requeued job does before Lightning resumes from the newest
    assert [path.name for path in tmp_path.iterdir()] == ["hpc_ckpt_10.ckpt"]


def test_a_stopped_sweep_says_how_to_finish_it_where_it_ran(monkeypatch):
    options = type("Options", (), {"config": "configs/sweeps/s.yaml", "storage": None})()
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert finish_command(options) == "The same command finishes the sweep: uv run python sweep.py --config configs/sweeps/s.yaml"
    monkeypatch.setenv("SLURM_JOB_ID", JOB)
    assert "sbatch --array=0-N scripts/sweep_slurm.sh configs/sweeps/s.yaml" in finish_command(options)
