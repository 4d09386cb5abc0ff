"""Shared test helpers: run the command line in-process, in a temporary folder.

Two tiers:
    uv run pytest -m "not slow"    # every config, optimizer, schedule, resume and the CLI: under 3 minutes on 2 cores
    uv run pytest                  # also the slow tier: learning curves, DDP, sweeps, notebooks
Each family's tests are in tests/test_<family>.py, including a fast_dev_run of each of its configs.
"""

import importlib
import inspect
from pathlib import Path

import pytest
import torch
import yaml

from optimizers_for_a_small_gpt.run.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
EXPERIMENTS = sorted(CONFIGS.glob("*.yaml"))
PRESETS = sorted(CONFIGS.glob("trainer/*.yaml"))
DEFAULT = CONFIGS / "language.yaml"
# The tests train small models, which are fastest on one CPU thread; it also keeps parallel
# test processes (pytest -n 2, with pytest-xdist) from slowing each other down.
torch.set_num_threads(1)
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none is visible")


def run(*args: str):
    """Run `python train.py ...` in this process and return the CLI (its .trainer, .model, ...)."""
    return main(list(args), default_config=DEFAULT)


def run_one_batch(config: Path, *args: str):
    """fast_dev_run of an experiment config (one batch of each loop) on the CPU; returns the CLI."""
    debug = CONFIGS / "trainer" / "debug.yaml"
    cli = run("fit", "--config", str(config), "--config", str(debug), *QUIET, *args)
    assert cli.trainer.state.finished and cli.trainer.global_step == 1
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    return cli


QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def steps(count: int) -> list[str]:
    """Options that train the default experiment for `count` optimizer steps, whatever its epoch
    holds: one full batch (tabular), a few mini-batches, or steps_per_epoch draws (objective)."""
    return ["--trainer.max_epochs", "-1", "--trainer.max_steps", str(count)]


def batch_size_option() -> str:
    """The option that sets the default experiment's batch size: the data's, or the model's
    where the family draws its own batches (the objective family)."""
    data = (yaml.safe_load(DEFAULT.read_text()).get("data") or {}).get("class_path")
    if data:
        module, name = data.rsplit(".", 1)
        if "batch_size" in inspect.signature(getattr(importlib.import_module(module), name)).parameters:
            return "--data.init_args.batch_size"
    return "--model.init_args.batch_size"


def batch_size_of(cli) -> int | None:
    """The batch size a run was built with: its data's, else its model's (see batch_size_option)."""
    owner = cli.datamodule if batch_size_option().startswith("--data") else cli.model
    return owner.hparams.batch_size


def fails_with(message: str, capsys, *args: str) -> None:
    """Run train.py with `args` (quietly) and check it ends with exit status 2 and `message`."""
    with pytest.raises(SystemExit) as exit_info:
        run(*args, *QUIET)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder, so runs/ and data/ are written there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
