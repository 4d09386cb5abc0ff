"""How much train.py costs over a plain PyTorch loop, for each family's default experiment.

    uv run python scripts/benchmark.py                          # every family's default, 3 repeats
    uv run python scripts/benchmark.py --families vision --repeats 5
    uv run python scripts/benchmark.py --threads 2 --startup    # 2 CPU threads; also time start-up and imports

Each experiment is trained three ways, with the same model, data (held on the device), optimizer,
schedule, number of epochs and a validation pass after each epoch:
- `plain loop`: a hand-written PyTorch loop (forward, backward, optimizer and schedule step;
  the validation loss after each epoch);
- `Lightning floor`: the project's module and data in a bare Lightning Trainer: no logger,
  checkpoints, progress bar or diagnostics, no per-step metrics (Lightning's own cost);
- `train.py`: what `uv run python train.py fit --config configs/<family>.yaml` runs, with its
  logging, diagnostics, checkpoints and progress bar (its output hidden).
Each takes the wall time of training (data set-up, training and validation, no imports). The
three are interleaved, repeat after repeat, so that a busy moment of the machine hits them alike.
Ratios print as the median over repeats with [lowest - highest]. Run it on an idle machine.
"""

import argparse
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from the_sgd_lecture_reproduced.optim import param_groups
from the_sgd_lecture_reproduced.run.cli import CLI_SETTINGS, CourseCLI

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = [family for family in ("vision", "objective", "tabular", "language", "diffusion")
            if (ROOT / "configs" / f"{family}.yaml").is_file()]
# The two families whose default takes minutes on a CPU are timed over their first epochs only.
EPOCHS_ON_A_CPU = {"language": 5, "diffusion": 3}
VARIANTS = ("plain loop", "Lightning floor", "train.py")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(config: Path, *args: str) -> CourseCLI:
    """The experiment's trainer, model and data, built as train.py builds them (nothing runs)."""
    return CourseCLI(args=["--config", str(config), *args], run=False, **CLI_SETTINGS)


def plain_loop(config: Path, args: list[str]) -> float:
    """Seconds of a hand-written loop doing train.py's work: training steps, schedule, validation."""
    cli = build(config, *args, "--trainer.logger", "false")
    model, trainer = cli.model, cli.trainer
    device = trainer.strategy.root_device  # where train.py would train
    data = cli.datamodule or model  # the objective family's module makes its own batches
    data.trainer = model.trainer = L.Trainer(accelerator=device.type, devices=1, logger=False)  # only to place data
    start = time.perf_counter()
    model.to(device)
    data.setup("fit")
    if data is not model:
        model.setup("fit")
    optimizer = model.optimizer_factory(param_groups(model, model.param_group_overrides))
    steps_per_epoch = len(data.train_dataloader())
    schedule = model.schedule_factory(optimizer, steps_per_epoch * trainer.max_epochs)
    problem = getattr(model, "problem", None)  # the objective family: validation is the exact objective

    def transfer(batch):
        return data.on_after_batch_transfer(move_data_to_device(batch, device), 0)

    for _ in range(trainer.max_epochs):
        model.train()
        for batch in data.train_dataloader():
            loss = model.loss(transfer(batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if problem is not None:
                with torch.no_grad():
                    problem.project_(model.x)
        model.eval()
        with torch.no_grad():
            if problem is not None:
                val_loss = problem.value(model.iterate())
            else:
                val_loss = sum(model.loss(transfer(batch)) for batch in data.val_dataloader())
        float(val_loss)  # read the result, as train.py's logging does once per epoch
    sync(device)
    return time.perf_counter() - start


def lightning_floor(config: Path, args: list[str]) -> float:
    """Seconds of the project's module in a Trainer with everything the template adds switched off."""
    cli = build(config, *args, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "0")
    cli.trainer.callbacks = []  # no checkpoints, diagnostics, run summary
    return timed_fit(cli)


def template(config: Path, args: list[str]) -> float:
    """Seconds of train.py's fit with its defaults (in a temporary folder; output hidden)."""
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as folder, open(os.devnull, "w") as hidden:
        os.chdir(folder)  # runs/ is written there
        try:
            with contextlib.redirect_stdout(hidden), contextlib.redirect_stderr(hidden):
                return timed_fit(build(config, *args))
        finally:
            os.chdir(here)


def timed_fit(cli: CourseCLI) -> float:
    start = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    sync(cli.model.device)
    return time.perf_counter() - start


def startup_seconds(only: list[str] | None = None) -> dict[str, float]:
    """Wall time of commands that train nothing: what every command pays before it starts. The
    last line imports Lightning as a process does where no bytecode was installed (it compiles
    every module again): what `compile-bytecode` in pyproject.toml saves each command.
    `only`: the names of the commands to time (default: all four)."""
    python = [sys.executable, "-c", "import lightning.pytorch"]
    with tempfile.TemporaryDirectory() as empty:
        commands = {
            "train.py fit --help": ([sys.executable, str(ROOT / "train.py"), "fit", "--help"], {}),
            "train.py fit --optimizer adamm (an error)": ([sys.executable, str(ROOT / "train.py"), "fit",
                                                           "--optimizer", "adamm"], {}),
            "import lightning": (python, {}),
            "import lightning, no bytecode installed": (python, {"PYTHONPYCACHEPREFIX": empty,
                                                                 "PYTHONDONTWRITEBYTECODE": "1"}),
        }
        seconds = {}
        for name, (command, env) in commands.items():
            if only is None or name in only:
                start = time.perf_counter()
                subprocess.run(command, capture_output=True, cwd=ROOT, env={**os.environ, **env})
                seconds[name] = time.perf_counter() - start
    return seconds


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f}x [{min(values):.2f} - {max(values):.2f}]"


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES, help="which defaults to time")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the three variants")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the config's; fewer for "
                                                                   "language and diffusion on a CPU)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of PyTorch in every run "
                                                                   "(default: each config's `threads`)")
    parser.add_argument("--startup", action="store_true", help="also time `train.py fit --help` and a config error")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    gpu = torch.cuda.is_available()
    print(f"PyTorch {torch.__version__}, Lightning {L.__version__}, {'GPU: ' + torch.cuda.get_device_name() if gpu else 'CPU'}, "
          f"{args.repeats} repeats")
    times, default_threads = {}, torch.get_num_threads()
    for family in args.families:
        config = ROOT / "configs" / f"{family}.yaml"
        epochs = args.epochs or (None if gpu else EPOCHS_ON_A_CPU.get(family))
        run_args = ["--trainer.max_epochs", str(epochs)] if epochs else []
        run_args += ["--threads", str(args.threads)] if args.threads else []
        runs = {variant: [] for variant in VARIANTS}
        for _ in range(args.repeats):
            for variant, function in zip(VARIANTS, (plain_loop, lightning_floor, template), strict=True):
                torch.set_num_threads(default_threads)  # as a new process starts; the config's `threads` may change it
                runs[variant].append(function(config, run_args))
        times[family] = runs
        plain, floor, full = (runs[variant] for variant in VARIANTS)
        setting = f"{config.name}{f', {epochs} epochs' if epochs else ''}, {torch.get_num_threads()} thread(s)"
        print(f"\n{family} ({setting}), median seconds: "
              + ", ".join(f"{variant} {statistics.median(seconds):.2f}" for variant, seconds in runs.items()))
        print(f"  train.py / plain loop         {spread([t / p for t, p in zip(full, plain, strict=True)])}")
        print(f"  Lightning floor / plain loop  {spread([f / p for f, p in zip(floor, plain, strict=True)])}")
        print(f"  train.py / Lightning floor    {spread([t / f for t, f in zip(full, floor, strict=True)])}")
    if args.startup:
        print("\nStart-up (wall seconds, imports included):")
        for name, seconds in startup_seconds().items():
            print(f"  {name:44s} {seconds:6.1f}")
    return times


if __name__ == "__main__":
    main()
