"""Tests of the command line (train.py): every config runs, runs are logged, resumed and
reproduced, presets are valid, DDP works, and bad input ends with a clear message."""

import inspect
import re
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from conftest import CONFIGS, EXPERIMENTS, PRESETS, QUIET, ROOT, fails_with, needs_gpu, run, steps
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from logistic_regression_to_the_exact_optimum.run.cli import fall_back_to_fp16


def scalars(run_dir: str) -> dict[str, list[float]]:
    """Every scalar of a run's TensorBoard event file, by tag."""
    events = EventAccumulator(run_dir)
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize("config", EXPERIMENTS, ids=lambda path: path.stem)
def test_every_experiment_is_run_by_its_family_tests(config):
    family = config.stem.split("_")[0]
    family_tests = ROOT / "tests" / f"test_{family}.py"
    assert family_tests.is_file(), (
        f"{config.name} belongs to no family: a config is named <family>_<what>.yaml, and its family is the name up "
        f"to the first '_' ({family!r} here), which has no tests/test_{family}.py. Rename the config after its family; "
        "a family's own name has no '_' (mydata, not my_data): see docs/extending.md")
    assert f"def test_every_{family}_config_runs_one_batch" in family_tests.read_text(), (
        f"tests/test_{family}.py has no test_every_{family}_config_runs_one_batch: add one (copy another family's), "
        f"so that {config.name} is run")


@pytest.mark.parametrize("epochs", [pytest.param([], marks=pytest.mark.slow, id="whole run"),
                                    pytest.param(["--trainer.max_epochs", "3"], id="3 epochs")])
def test_default_experiment_learns_and_logs_to_tensorboard(epochs, in_tmp):
    cli = run("fit", *epochs, *QUIET)  # no --config: the default experiment, as `python train.py fit`
    run_dir = Path(cli.trainer.log_dir).resolve()
    assert run_dir == in_tmp.resolve() / "runs" / cli.trainer.logger.name / ("max_epochs3" if epochs else "version_0")
    logged = scalars(str(run_dir))
    assert {"train/loss", "val/loss", "opt/lr"} <= set(logged)
    if not epochs:  # the whole default run learns
        assert logged["val/loss"][-1] < logged["val/loss"][0] / 2
        if "val/acc" in logged:
            assert logged["val/acc"][-1] >= 0.95
    assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "checkpoints").glob("best-*.ckpt"))
    last_state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert last_state["global_step"] == cli.trainer.global_step  # the end of the run, not the best epoch
    last = str(run_dir / "checkpoints" / "last.ckpt")
    tested = run("test", "--config", str(run_dir / "config.yaml"), "--ckpt_path", last, *QUIET)
    assert "test/loss" in tested.trainer.callback_metrics
    if epochs:  # a named run (max_epochs3): its test logs into the run's own folder
        assert Path(tested.trainer.log_dir).resolve() == run_dir
    validated = run("validate", "--config", str(run_dir / "config.yaml"), "--ckpt_path", last, *QUIET)
    assert validated.trainer.callback_metrics["val/loss"] == pytest.approx(logged["val/loss"][-1], rel=1e-4)
    predicted = run("predict", "--config", str(run_dir / "config.yaml"), "--ckpt_path", last, *QUIET)
    assert len(predicted.trainer.predict_loop.predictions) > 0
    assert "ckpt_path: null" in (run_dir / "config.yaml").read_text()  # still the training run's config


def test_train_py_runs_in_a_subprocess_with_the_debug_preset(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "fit", "--config", str(CONFIGS / "trainer" / "debug.yaml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Trainer.fit` stopped" in result.stderr + result.stdout


def test_train_py_ends_with_its_exit_status_and_every_file_written(tmp_path):
    """train.py ends with the exit status of what it did, and every file of the run written whole."""
    def train_py(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "train.py"), "fit", *args, *QUIET],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)

    short = [*steps(3), "--trainer.limit_train_batches", "3", "--trainer.log_every_n_steps", "1"]
    result = train_py(*short, "--name", "short")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "runs").glob("*/short"))
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    epochs = last["epoch"] + 1  # (3 with one full batch an epoch, 1 with mini-batches)
    assert f" {epochs} epochs, 3 optimizer steps" in result.stdout and result.stdout.rstrip().endswith(
        "(loss and results first; HPARAMS compares runs)")
    assert len(scalars(str(run_dir))["train/loss"]) == 3  # the last step's too, written as the run ended
    assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    error = train_py("--trainer.max_epochs", "many")
    assert error.returncode == 2 and "max_epochs" in error.stderr


class StopAfterEpoch(L.Callback):
    """Interrupts training at the end of an epoch, as a crash or a job's time limit would."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module):
        trainer.should_stop = trainer.current_epoch + 1 >= self.epoch


def test_resume_from_last_reaches_the_same_result(in_tmp):
    four_epochs = ["--trainer.max_epochs", "4", *QUIET]
    full = run("fit", *four_epochs, "--trainer.logger.init_args.name", "full")
    interrupt = "[{class_path: test_train.StopAfterEpoch, init_args: {epoch: 2}}]"
    first = run("fit", *four_epochs, "--trainer.logger.init_args.name", "cut", "--trainer.callbacks", interrupt)
    assert first.trainer.current_epoch == 2 and first.trainer.global_step < full.trainer.global_step
    resumed = run("fit", *four_epochs, "--trainer.logger.init_args.name", "cut", "--ckpt_path", "last")
    assert resumed.trainer.log_dir == first.trainer.log_dir  # logs continue in the same run folder
    assert resumed.trainer.global_step == full.trainer.global_step
    for metric in ("val/loss", "train/loss"):
        expected = float(full.trainer.callback_metrics[metric])
        assert resumed.trainer.callback_metrics[metric] == pytest.approx(expected, abs=1e-6)


def test_saved_config_reproduces_the_run(in_tmp):
    first = run("fit", "--trainer.max_epochs", "2", "--optimizer.lr", "0.02", *QUIET)
    saved = Path(first.trainer.log_dir) / "config.yaml"
    assert yaml.safe_load(saved.read_text())["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.02
    again = run("fit", "--config", str(saved))
    assert again.trainer.log_dir != first.trainer.log_dir
    expected = float(first.trainer.callback_metrics["val/loss"])
    assert again.trainer.callback_metrics["val/loss"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(in_tmp):
    cli = run("fit", "--trainer.strategy", "ddp_spawn", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
              "--trainer.max_steps", "3", "--trainer.log_every_n_steps", "1", "--trainer.logger", "false", *QUIET)
    assert cli.trainer.world_size == 2
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])


SETS_A_VALUE = re.compile(r"^\s*(-\s+\S|[\w./-]+:\s*[^\s#])")  # `key: value` or `- item`


@pytest.mark.parametrize("config", EXPERIMENTS + PRESETS, ids=lambda path: path.stem)
def test_every_config_value_has_a_comment(config):
    bare = [line for line in config.read_text().splitlines() if SETS_A_VALUE.match(line) and "#" not in line]
    assert bare == [], f"{config.name}: say in a comment what these set"
    # checkpoints/last.ckpt is written by checkpoints.LatestCheckpoint whatever a config says: no config
    # may suggest that `save_last` controls it.
    assert "save_last" not in config.read_text()


@pytest.mark.parametrize("preset", PRESETS, ids=lambda path: path.stem)
def test_presets_set_only_real_trainer_options(preset):
    config = yaml.safe_load(preset.read_text())
    assert set(config) <= {"trainer", "threads"}, "a preset changes where and how a run trains, nothing else"
    assert set(config["trainer"]) <= set(inspect.signature(L.Trainer).parameters)


@pytest.mark.parametrize("preset", ["cpu", "debug"])
def test_cpu_presets_run_the_default_experiment(preset, in_tmp):
    cli = run("fit", "--config", str(CONFIGS / "trainer" / f"{preset}.yaml"), "--trainer.max_steps", "2", *QUIET)
    assert cli.trainer.global_step in (1, 2)  # debug stops after one batch


@needs_gpu
@pytest.mark.parametrize("preset", ["gpu", "ddp", "fsdp"])
def test_gpu_presets_run_the_default_experiment(preset, in_tmp):
    try:
        cli = run("fit", "--config", str(CONFIGS / "trainer" / f"{preset}.yaml"), "--trainer.devices", "1",
                  "--trainer.max_steps", "5", *QUIET)
        assert cli.trainer.global_step == 5
    finally:  # Lightning leaves DDP's and FSDP's process group (NCCL) up: later CPU runs here would sync through it
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_fsdp_preset_builds_a_full_sharding_strategy():
    from jsonargparse import ArgumentParser
    from lightning.pytorch.strategies import FSDPStrategy, Strategy

    parser = ArgumentParser()
    parser.add_argument("--strategy", type=Strategy)
    preset = yaml.safe_load((CONFIGS / "trainer" / "fsdp.yaml").read_text())
    strategy = parser.instantiate(parser.parse_object({"strategy": preset["trainer"]["strategy"]})).strategy
    assert isinstance(strategy, FSDPStrategy)
    assert strategy.sharding_strategy.name == "FULL_SHARD"
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {torch.nn.Linear, torch.nn.Conv2d}


def test_bf16_falls_back_to_fp16_on_gpus_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    trainer = Namespace(precision="bf16-mixed", accelerator="gpu")
    fall_back_to_fp16(trainer)
    assert trainer.precision == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    trainer = Namespace(precision="bf16-mixed", accelerator="gpu")
    fall_back_to_fp16(trainer)
    assert trainer.precision == "bf16-mixed"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--optimizer", "adan"], "unknown optimizer 'adan': choose one of sgd, momentum, nesterov, adagrad"),
        (["--scheduler", "cosin"], "unknown scheduler 'cosin': choose one of constant, step, cosine"),
        (["--optimizer", "sgd", "--optimizer.lr", "-1"], "optimizer SGD: Invalid learning rate: -1"),
        (["--ckpt_path", "last"], "no run of this experiment has a checkpoints/last.ckpt"),
        (["--ckpt_path", "broken.ckpt"], "broken.ckpt is not a PyTorch checkpoint"),
    ],
)
def test_bad_input_ends_with_a_clear_message(args, message, in_tmp, capsys):
    (in_tmp / "broken.ckpt").write_bytes(b"cut short")
    fails_with(message, capsys, "fit", *args)
    assert not (in_tmp / "runs").exists() or not list((in_tmp / "runs").rglob("*.ckpt"))
