"""The command line of the project, built on LightningCLI (train.py calls `main`).

    uv run python train.py fit                                  # the default experiment
    uv run python train.py fit --config configs/<experiment>.yaml [--config configs/trainer/<preset>.yaml]
    uv run python train.py fit --optimizer adam --optimizer.lr 3e-4 --scheduler wsd --name adam_wsd
    uv run python train.py fit --config configs/<experiment>.yaml --ckpt_path last     # resume
    uv run python train.py fit --config runs/<experiment>/<name>/config.yaml        # repeat a run
    uv run python train.py test --config runs/<experiment>/<name>/config.yaml --ckpt_path <file.ckpt>
    uv run python train.py fit --help                           # every key, with its default

What this adds to LightningCLI:
- when no --config names an experiment, the default experiment's config is used;
- `--optimizer NAME` and `--scheduler NAME` replace the whole entry (see optim/choices.py and
  flags.py), `--optimizer.ARG VALUE` changes one argument; `--help` lists every name;
- `--name` names the run folder (default: what the command line changes, e.g. adam_lr0.001);
- at the end of `fit`, a table of what the run reached (summary.py), also in TensorBoard's
  HParams tab; Schedule-Free's train/eval weights are switched by callbacks.OptimizerModes;
- what the data knows (input shape, number of classes, ...) is passed to the model;
- a `checkpoint` section chooses the best checkpoint to keep, and checkpoints/last.ckpt (what
  `--ckpt_path last` resumes from) is rewritten every `last_checkpoint.every_seconds` and at the end;
- a `diagnostics` section switches the optimization diagnostics of callbacks.py;
- a diverging run stops with a message and exit status 0 (a sweep counts it as a result);
- `--ckpt_path last` continues the latest run of the experiment, in the same run directory; a
  resume that would change the model or data stops with a message instead (resume.py);
- config.yaml is written once training starts for real, so a failed command leaves it as it was;
- each new run claims a folder of its own, even when two start at once (folders.py); runs of a
  CSV or text file of your own are logged under runs/<family>_<file name>/;
- `threads` sets how many CPU threads PyTorch uses (1 is fastest for the small defaults);
- a GPU preset on a machine without one, and fp16 on a CPU, stop with one line (hardware.py);
  bf16 precision falls back to fp16 on GPUs without bf16 (a Colab T4, for example);
- config mistakes end with a one-line message instead of a traceback.
"""

import argparse
import errno
import os
import sys
from pathlib import Path

import torch
import yaml
from jsonargparse import ArgumentError, DefaultHelpFormatter, set_dumper
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..config_errors import ConfigError, read_yaml
from ..optim import describe_choices
from . import logger as course_logger
from .callbacks import Diagnostics, Diverged, OptimizerModes, ProgressBar, SkipEmptyHooks
from .checkpoints import AtomicCheckpointIO, BestCheckpoint, LatestCheckpoint
from .families import model_links
from .flags import config_files, expand_choices, name_from_arguments, one_line
from .folders import (
    check_writable,
    log_into_named_run,
    mark_slurm_job,
    name_after_data_file,
    name_the_run,
    placed_here,
    release_unused,
)
from .hardware import check_hardware, fall_back_to_fp16
from .resume import check_checkpoint, check_same_run, resume_latest_run, take_data_settings
from .summary import RunSummary, run_settings

SUBCOMMANDS = ("fit", "validate", "test", "predict")
DEFAULT_LOGGER = {
    "class_path": f"{course_logger.__name__}.TensorBoardLogger",  # see logger.py
    "init_args": {"save_dir": "runs", "name": "default"},
}


def yaml_text(data) -> str:
    """The YAML of jsonargparse (config.yaml, --print_config), written by PyYAML's C emitter
    (libyaml) where it has one: the same text as its Python emitter, in half the time (5 ms a run)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, default_flow_style=False, allow_unicode=True, sort_keys=False)


set_dumper("yaml", yaml_text)

# How to open TensorBoard, printed after each run: with uv, its own environment has it.
TENSORBOARD_HINT = (
    "Look at it with: uv run tensorboard --logdir runs   (without uv: tensorboard --logdir runs)\n"
    "  then open http://localhost:6006/#custom_scalars (loss and results first; HPARAMS compares runs)"
)


class CourseCLI(LightningCLI):
    def __init__(self, *args, default_name: str | None = None, **kwargs):
        self.default_name = default_name  # the run's name when --name is not given
        # Lightning builds a parser for each of fit, validate, test and predict, which takes longer
        # than a short run itself: build only the one the command line asks for (all four for `--help`).
        given = sys.argv[1:] if kwargs.get("args") is None else kwargs["args"]
        first = given[0] if isinstance(given, list | tuple) and given else None
        self.built = [first] if first in SUBCOMMANDS else list(SUBCOMMANDS)
        other = set(SUBCOMMANDS) - set(self.built)
        kwargs["parser_kwargs"] = {key: value for key, value in kwargs.get("parser_kwargs", {}).items() if key not in other}
        super().__init__(*args, **kwargs)

    def subcommands(self) -> dict[str, set[str]]:
        every = LightningCLI.subcommands()
        return {name: every[name] for name in self.built}

    def add_arguments_to_parser(self, parser):
        parser.add_argument("--name", type=str | None, default=None,
                            help="name of the run's folder, runs/<experiment>/<name>/ (default: what the command "
                                 "line changes, e.g. adam_lr0.001, else version_N)")
        parser.add_argument("--threads", type=int | None, default=None,
                            help="CPU threads PyTorch computes with (torch.set_num_threads). Small models are fastest "
                                 "with 1; null: PyTorch's default (one per core), or what the sweep command chose")
        for name in model_links():  # what the data knows (input shape, number of classes, ...): see families.py
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(Diagnostics, "diagnostics")
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LatestCheckpoint, "last_checkpoint")  # after "checkpoint": best stays the best
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.save_last": False,  # LatestCheckpoint below writes last.ckpt
                "checkpoint.filename": "best-{epoch}-{step}",
            }
        )

    def instantiate_trainer(self, **kwargs):
        config = self.config[self.subcommand] if self.subcommand else self.config
        checkpoints = config.trainer.get("enable_checkpointing") is not False
        # Lightning refuses checkpoint callbacks with enable_checkpointing false: build the trainer
        # with them, then take them out (it adds none of its own when it finds ours).
        trainer = super().instantiate_trainer(**kwargs, enable_checkpointing=True)
        if not checkpoints:
            trainer.callbacks[:] = [c for c in trainer.callbacks if not isinstance(c, BestCheckpoint | LatestCheckpoint)]
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default: made atomic
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        trainer.callbacks.insert(0, OptimizerModes())  # first: later callbacks see the evaluation weights
        # Lightning's own bar, TQDM or Rich (its pick where rich is installed, as on Colab), which redraws
        # and reads the metrics from the GPU at every step: replace it by ours.
        if type(trainer.progress_bar_callback) in (TQDMProgressBar, RichProgressBar):
            trainer.callbacks[trainer.callbacks.index(trainer.progress_bar_callback)] = ProgressBar()
        trainer.callbacks.append(RunSummary(run_settings(config), TENSORBOARD_HINT))
        trainer.callbacks.append(SkipEmptyHooks())
        return trainer

    def parse_arguments(self, parser, args):
        super().parse_arguments(parser, args)
        # Before LightningCLI reads the checkpoint's hyperparameters, which comes next.
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        given = sys.argv[1:] if args is None else args
        if not any(arg.startswith(("--trainer.logger.init_args.name", "--trainer.logger.name")) for arg in given):
            name_after_data_file(config)
        resuming = subcommand == "fit" and config.get("ckpt_path")
        if resuming and config.ckpt_path == "last":
            resume_latest_run(config, given)
        if config.get("ckpt_path"):
            check_checkpoint(str(config.ckpt_path))
            check_same_run(config, str(config.ckpt_path), given if resuming else None)
        if resuming:
            self.config = take_data_settings(parser, self.config, subcommand, str(config.ckpt_path))

    def before_instantiate_classes(self):
        config = self.config[self.subcommand] if self.subcommand else self.config  # run=False: no subcommand
        check_hardware(config)
        fall_back_to_fp16(config.trainer)
        if config.get("threads"):
            torch.set_num_threads(config.threads)
        check_writable(config.trainer.logger)
        if self.subcommand == "fit" and not config.get("ckpt_path"):
            name_the_run(config, config.get("name") or self.default_name)
        else:
            log_into_named_run(config)


class SaveFitConfig(SaveConfigCallback):
    """Writes the run's config.yaml when training starts for real: the data loaded, a resumed
    checkpoint restored, the first validation passed. A command that fails before (a bad value,
    a mismatched checkpoint) leaves the run folder's config.yaml as it was. `test`, `validate` and
    `predict` read a run's config.yaml (and log into its folder) but never rewrite it.

    The saved config repeats the run from the start: it names no checkpoint to resume from, and
    a resumed run's folder name becomes the name a repeat starts from (name_2, name_3, ...).
    """

    def setup(self, trainer, pl_module, stage):
        """Writes nothing: SaveConfigCallback writes config.yaml here, before the data loads and a
        resumed checkpoint is restored, which is too early; on_train_start writes it."""

    def on_train_start(self, trainer, pl_module):
        config = self.config.clone()
        if config.get("ckpt_path"):
            config.ckpt_path = None
            config.name = Path(trainer.log_dir).name
        log_dir = trainer.log_dir  # (every process asks: Lightning broadcasts it)
        if (config.get("name") or placed_here(log_dir)) and hasattr(config.trainer.logger, "init_args"):
            config.trainer.logger.init_args.version = None  # a repeat claims a folder of its own (see folders.py)
        if placed_here(log_dir) and config.trainer.get("default_root_dir"):
            config.trainer.default_root_dir = None  # set for a SLURM job only (folders.py)
        if trainer.is_global_zero:
            mark_slurm_job(log_dir)
            os.makedirs(log_dir, exist_ok=True)
            # skip_validation: the config was checked when it was read; checking it again took 25 ms of every run.
            self.parser.save(config, os.path.join(log_dir, self.config_filename), skip_none=False,
                             overwrite=self.overwrite, multifile=self.multifile, skip_validation=True)
            self.save_config(trainer, pl_module, "fit")  # SaveConfigCallback's hook for subclasses, as its setup calls it


class HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """LightningCLI's help, with the list of optimizers and schedules kept as written."""


def names_an_experiment(args: list[str]) -> bool:
    """Whether a --config among `args` sets the model, rather than only trainer presets."""
    for config in config_files(args):
        path = Path(config)
        if not path.is_file() or "model" in (read_yaml(path) or {}):
            return True  # an experiment file, or an inline config we leave to LightningCLI
    return False


# What train.py gives LightningCLI besides the command line (scripts/benchmark.py builds runs with it too).
CLI_SETTINGS = {
    "seed_everything_default": 0,
    "trainer_defaults": {"logger": DEFAULT_LOGGER},
    "save_config_callback": SaveFitConfig,
    "save_config_kwargs": {"overwrite": True},  # a resumed run rewrites its config.yaml
    "auto_configure_optimizers": False,  # the optimizer is the model's `optimizer` entry
}


def main(args: list[str] | None = None, default_config: str | Path | None = None,
         expanded: list[str] | None = None) -> CourseCLI | None:
    """Run the command line on `args` (default: sys.argv), as train.py does.

    `default_config` is read first when no --config names an experiment, so that
    `train.py fit` and `train.py fit --config configs/trainer/gpu.yaml` run the default one.
    `expanded`: `args` already through flags.expand_choices (train.py's early check made it).
    """
    given = sys.argv[1:] if args is None else list(args)
    parser_kwargs = {name: {"epilog": describe_choices(), "formatter_class": HelpFormatter} for name in SUBCOMMANDS}
    parser_kwargs["formatter_class"] = HelpFormatter  # jsonargparse gives subcommands their parent's
    parser_kwargs["exit_on_error"] = False  # a config mistake raises, and ends below with one line
    try:
        if default_config and not names_an_experiment(given):
            for name in SUBCOMMANDS:
                parser_kwargs[name]["default_config_files"] = [str(default_config)]
        expanded = expand_choices(given) if expanded is None else expanded
        if args is None:  # the real command line: DDP re-launches sys.argv, so it gets the rewritten flags
            sys.argv[1:] = expanded
        return CourseCLI(args=None if args is None else expanded, default_name=name_from_arguments(given),
                         parser_kwargs=parser_kwargs, **CLI_SETTINGS)
    except ArgumentError as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        if diverged := cause_of_type(error, Diverged):
            print(f"Diverged: {diverged}", file=sys.stderr)
            return None  # a finished experiment with a result ("diverged"), not a crash
        cause = cause_of_type(error, ConfigError) or cause_of_type(error, MisconfigurationException)
        full = cause_of_type(error, OSError)
        if cause is None and full is not None and full.errno == errno.ENOSPC:
            cause = (f"the disk is full (writing {full.filename or 'the run'}): free some space, then continue the run "
                     "with --ckpt_path last (its checkpoints so far are whole)")
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(2)
    finally:
        release_unused()  # a new run's folder, if the run ended before writing into it


def cause_of_type(error: BaseException | None, kind: type) -> BaseException | None:
    """The exception of type `kind` behind `error`, if any (jsonargparse wraps errors of __init__)."""
    while error is not None and not isinstance(error, kind):
        error = error.__cause__ or error.__context__
    return error
