"""Every run gets a folder of its own, even when two start at once; a run that writes nothing
leaves no folder; settings the machine cannot run end with one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import QUIET, ROOT, fails_with, run
from jsonargparse import Namespace

from conditioning_momentum_and_the_noise_floor.run import folders

# Short training that names nothing: a --config of trainer settings only (the run is version_N).
SHORT_CONFIG = {"trainer": {"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 2}}


def config_of(save_dir: Path) -> Namespace:
    """The part of a parsed train.py config that name_the_run reads."""
    logger = Namespace(class_path="TensorBoardLogger", init_args=Namespace(save_dir=str(save_dir), name="exp", version=None))
    return Namespace(trainer=Namespace(logger=logger), name=None)


@pytest.mark.parametrize("name", ["same", None])
def test_two_runs_named_before_either_writes_get_two_folders(name, tmp_path):
    first, second = config_of(tmp_path), config_of(tmp_path)
    folders.name_the_run(first, name)  # the first run has made no file yet when the second one is named
    folders.name_the_run(second, name)
    versions = [first.trainer.logger.init_args.version, second.trainer.logger.init_args.version]
    assert versions == (["same", "same_2"] if name else ["version_0", "version_1"])
    assert [first.name, second.name] == (["same", "same_2"] if name else [None, None])
    assert sorted(path.name for path in (tmp_path / "exp").iterdir()) == sorted(versions)
    folders.release_unused()  # both are empty: given back, and the experiment folder made for them
    assert not (tmp_path / "exp").exists()


def test_an_unnamed_run_saves_no_folder_of_its_own_in_its_config(in_tmp):
    (in_tmp / "short.yaml").write_text(yaml.safe_dump(SHORT_CONFIG))
    first = run("fit", "--config", "short.yaml", *QUIET)
    saved = yaml.safe_load((Path(first.trainer.log_dir) / "config.yaml").read_text())
    assert Path(first.trainer.log_dir).name == "version_0" and saved["trainer"]["logger"]["init_args"]["version"] is None
    again = run("fit", "--config", str(Path(first.trainer.log_dir) / "config.yaml"), *QUIET)  # a repeat of it
    assert Path(again.trainer.log_dir).name == "version_1"


def test_a_run_that_writes_nothing_leaves_no_folder_and_says_so(in_tmp, capsys):
    run("fit", "--trainer.fast_dev_run", "1", *QUIET)
    assert "Nothing saved" in capsys.readouterr().out
    assert not [path for path in (in_tmp / "runs").rglob("*") if path.is_file()]
    assert not [path for path in (in_tmp / "runs").glob("*/*")]  # no empty run folder either
    # The debug preset (one batch of each loop, nothing kept) says the same.
    run("fit", "--config", str(ROOT / "configs" / "trainer" / "debug.yaml"), *QUIET)
    assert "Nothing saved" in capsys.readouterr().out and not list((in_tmp / "runs").glob("*/*"))
    # A run of no epochs keeps what it wrote, and says only that.
    cli = run("fit", "--trainer.max_epochs", "0", *QUIET)
    printed = capsys.readouterr().out
    assert f"Saved in {cli.trainer.log_dir} (" in printed and "config.yaml" not in printed.split("Saved in", 1)[1]


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("preset", ["gpu", "ddp", "fsdp", "slurm"])
def test_a_gpu_preset_without_a_gpu_ends_with_one_line(preset, in_tmp, capsys):
    fails_with(f"configs/trainer/{preset}.yaml asks for a GPU (accelerator: gpu) and this machine has none: "
               "train on the CPU with --config configs/trainer/cpu.yaml", capsys,
               "fit", "--config", str(ROOT / "configs" / "trainer" / f"{preset}.yaml"))
    assert not (in_tmp / "runs").exists()


def test_settings_lightning_refuses_end_with_one_line(in_tmp, capsys):
    fails_with("precision 16-mixed (fp16) needs a GPU: on the CPU use --trainer.precision bf16-mixed", capsys,
               "fit", "--trainer.accelerator", "cpu", "--trainer.precision", "16-mixed")
    fails_with("error: `max_epochs` must be a non-negative integer or -1", capsys, "fit", "--trainer.max_epochs", "-3")
    assert not [path for path in (in_tmp / "runs").glob("*/*")]  # and no run folder is left behind


@pytest.mark.slow
@pytest.mark.parametrize("name", [["--name", "same"], []])
def test_two_train_py_processes_started_together_write_two_folders(name, tmp_path):
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(SHORT_CONFIG))
    commands = [[sys.executable, str(ROOT / "train.py"), "fit", "--config", "short.yaml", *QUIET, *name,
                 "--config", f"seed{seed}.yaml"] for seed in (0, 1)]
    for seed in (0, 1):
        (tmp_path / f"seed{seed}.yaml").write_text(f"seed_everything: {seed}\n")
    hidden = ("COURSE_RUN_NAME", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")  # as a fresh terminal has them
    environment = {key: value for key, value in os.environ.items() if key not in hidden} | {"OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for command in commands]
    seeds = {process.pid: seed for process, seed in zip(processes, (0, 1), strict=True)}
    for process in processes:
        assert process.wait(timeout=600) == 0, process.stdout.read()[-3000:]
    runs = sorted(path for path in (tmp_path / "runs").glob("*/*") if path.is_dir())
    assert len(runs) == 2, runs
    for folder in runs:
        (events,) = folder.glob("events.out.tfevents.*")  # one event file: one run's
        pid = int(events.name.split(".")[-2])
        assert yaml.safe_load((folder / "config.yaml").read_text())["seed_everything"] == seeds[pid]
        assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] > 0
