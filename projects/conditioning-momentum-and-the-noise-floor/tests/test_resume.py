"""Tests of resuming (--ckpt_path): a resume continues the same run or stops with one line, and a
command that fails leaves the run folder's config.yaml and checkpoints as they were."""

import re
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from conftest import CONFIGS, DEFAULT, QUIET, batch_size_of, batch_size_option, fails_with, run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conditioning_momentum_and_the_noise_floor.run.checkpoints import BestCheckpoint
from conditioning_momentum_and_the_noise_floor.run.summary import RunSummary

TWO_FAMILIES = pytest.mark.skipif(
    not ((CONFIGS / "tabular.yaml").exists() and (CONFIGS / "vision.yaml").exists()),
    reason="needs the tabular and vision families, which this project does not both have",
)


class RecordLR(L.Callback):
    """Keeps the learning rate of every training step (in RecordLR.seen)."""

    seen: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        RecordLR.seen.append(trainer.optimizers[0].param_groups[0]["lr"])


class RecordValLoss(L.Callback):
    """Keeps val/loss after every validation of training (in RecordValLoss.seen)."""

    seen: list[float] = []

    def on_validation_end(self, trainer, module):
        if not trainer.sanity_checking:
            RecordValLoss.seen.append(float(trainer.callback_metrics["val/loss"]))


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """The bytes of a run's config.yaml and checkpoints, to check that a command left them alone."""
    files = [run_dir / "config.yaml", *sorted((run_dir / "checkpoints").glob("*.ckpt"))]
    return {path.name: path.read_bytes() for path in files}


def test_a_resume_that_changes_the_run_stops_and_leaves_the_run_as_it_was(in_tmp, capsys):
    first = run("fit", "--trainer.max_epochs", "2", *QUIET)
    run_dir = Path(first.trainer.log_dir)
    before = snapshot(run_dir)
    changes = [
        ["--optimizer.lr", "0.5", "--scheduler", "constant"],  # LightningCLI would take the checkpoint's
        [batch_size_option(), "0"],  # once wrote batch_size: 0 into the run's config.yaml
    ]
    for change in changes:
        fails_with("this command changes the run it would resume", capsys,
                   "fit", "--trainer.max_epochs", "4", "--ckpt_path", "last", *change)
        assert snapshot(run_dir) == before


def test_an_argument_for_the_configs_optimizer_does_not_resume_a_run_of_another(in_tmp, capsys):
    configured = yaml.safe_load(DEFAULT.read_text())["model"]["init_args"]["optimizer"]["class_path"]
    other = "sgd" if configured.endswith(".Adam") else "adam"
    run("fit", "--trainer.max_epochs", "1", "--optimizer", other, *QUIET)  # the latest run: not the config's optimizer
    fails_with("this command changes the run it would resume (model.init_args.optimizer.class_path: ", capsys,
               "fit", "--trainer.max_epochs", "2", "--ckpt_path", "last", "--optimizer.lr", "0.5")


def test_a_resume_takes_the_runs_own_settings_and_finds_the_run_of_the_options_given(in_tmp):
    adam = run("fit", "--trainer.max_epochs", "1", "--optimizer", "adam", batch_size_option(), "32", *QUIET)
    run("fit", "--trainer.max_epochs", "1", *QUIET)  # a newer run, of the config's optimizer
    resumed = run("fit", "--trainer.max_epochs", "2", "--optimizer", "adam", "--ckpt_path", "last", *QUIET)
    assert resumed.trainer.log_dir == adam.trainer.log_dir  # the latest Adam run, not the newest run
    assert type(resumed.trainer.optimizers[0]).__name__ == "Adam" and batch_size_of(resumed) == 32


def test_a_resume_with_a_larger_budget_continues_the_learning_rate(in_tmp, capsys):
    record = ["--trainer.callbacks", "[{class_path: test_resume.RecordLR}]"]
    RecordLR.seen = []
    first = run("fit", "--trainer.max_epochs", "2", "--scheduler", "cosine", *record, *QUIET)
    before, planned = RecordLR.seen[-1], first.trainer.global_step
    RecordLR.seen = []
    capsys.readouterr()
    resumed = run("fit", "--trainer.max_epochs", "4", "--scheduler", "cosine", "--ckpt_path", "last", *record, *QUIET)
    assert resumed.trainer.current_epoch == 4
    # A cosine over 2 epochs ends near 0; replanned over 4 it would restart from its middle.
    assert max(RecordLR.seen) <= before + 1e-9, (before, RecordLR.seen[:3])
    # ... and the end of the run says so.
    extra, steps = resumed.trainer.global_step - planned, resumed.trainer.global_step
    assert f"Note: Cosine was planned over {planned} steps: the last {extra} of the {steps} ran at its final learning rate" \
        in capsys.readouterr().out


def test_a_resume_with_a_budget_the_run_has_passed_ends_at_once_without_an_error(in_tmp):
    run("fit", "--trainer.max_epochs", "1", "--name", "extended", *QUIET)
    run("fit", "--trainer.max_epochs", "3", "--name", "extended", "--ckpt_path", "last", *QUIET)  # past the first budget...
    again = run("fit", "--trainer.max_epochs", "2", "--name", "extended", "--ckpt_path", "last", *QUIET)  # ...then below it
    assert again.trainer.current_epoch == 3 and Path(again.trainer.log_dir).name == "extended"  # nothing more to train


def test_a_resumed_runs_table_covers_the_whole_run(in_tmp, capsys):
    first = run("fit", "--trainer.max_epochs", "2", *QUIET)
    last = Path(first.trainer.log_dir) / "checkpoints" / "last.ckpt"
    (summary,) = [callback for callback in first.trainer.callbacks if isinstance(callback, RunSummary)]
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["callbacks"][summary.state_key]["best"] == summary.best  # every checkpoint keeps it
    capsys.readouterr()
    resumed = run("fit", "--trainer.max_epochs", "4", "--ckpt_path", "last", *QUIET)
    printed = capsys.readouterr().out
    parts = [[event.value for event in read_scalars(path, "val/loss")]
             for path in sorted(Path(resumed.trainer.log_dir).glob("events.out.tfevents.*"))]
    assert len(parts) == 2 and all(parts), parts  # an event file for each part of the run
    values = parts[0] + parts[1]
    (best,) = re.findall(r"^  val/loss +(\S+) +\S+$", printed, re.M)
    assert float(best) == pytest.approx(min(values), rel=1e-3)
    # A best value and a training time from before the resume are kept (as if the first part had done better).
    checkpoint["callbacks"][summary.state_key] = {"best": {"val/loss": -1.0}, "seconds": 1000.0}
    torch.save(checkpoint, last)
    again = run("fit", "--trainer.max_epochs", "5", "--ckpt_path", "last", *QUIET)
    printed = capsys.readouterr().out
    assert re.search(r"^  val/loss +-1 ", printed, re.M) and re.search(r"optimizer steps, 10\d\d\.\d s", printed), printed
    assert again.trainer.log_dir == first.trainer.log_dir


def read_scalars(path: Path, tag: str) -> list:
    """The events of one scalar tag in one event file."""
    events = EventAccumulator(str(path), size_guidance={"scalars": 0})
    events.Reload()
    return events.Scalars(tag) if tag in events.Tags()["scalars"] else []


def test_the_config_of_a_resumed_run_repeats_it_from_the_start(in_tmp):
    first = run("fit", "--trainer.max_epochs", "1", *QUIET)
    resumed = run("fit", "--trainer.max_epochs", "2", "--ckpt_path", "last", *QUIET)
    saved = yaml.safe_load((Path(resumed.trainer.log_dir) / "config.yaml").read_text())
    assert saved["ckpt_path"] is None and saved["trainer"]["max_epochs"] == 2
    assert saved["name"] == Path(first.trainer.log_dir).name
    again = run("fit", "--config", str(Path(resumed.trainer.log_dir) / "config.yaml"), *QUIET)
    assert again.trainer.log_dir != first.trainer.log_dir and again.trainer.global_step == resumed.trainer.global_step


def test_missing_checkpoints_and_unwritable_folders_end_with_one_line(in_tmp, capsys):
    fails_with("checkpoint nothere.ckpt does not exist", capsys, "fit", "--ckpt_path", "nothere.ckpt")
    (in_tmp / "a_file").write_text("in the way of the runs folder")
    fails_with("cannot write runs into a_file/runs/", capsys, "fit", "--trainer.logger.init_args.save_dir", "a_file/runs")
    torch.save({"state_dict": {"w": torch.zeros(100_000)}}, in_tmp / "damaged.ckpt")
    damaged = bytearray((in_tmp / "damaged.ckpt").read_bytes())
    damaged[len(damaged) // 2: len(damaged) // 2 + 64] = b"\xff" * 64  # a valid zip, with garbage in its weights
    (in_tmp / "damaged.ckpt").write_bytes(damaged)
    fails_with("checkpoint damaged.ckpt is damaged (", capsys, "fit", "--ckpt_path", "damaged.ckpt")


@TWO_FAMILIES
def test_a_checkpoint_of_another_family_ends_with_one_line(in_tmp, capsys):
    tabular = run("fit", "--config", str(CONFIGS / "tabular.yaml"), "--trainer.max_epochs", "1", *QUIET)
    checkpoint = str(Path(tabular.trainer.log_dir) / "checkpoints" / "last.ckpt")
    vision = ["--config", str(CONFIGS / "vision.yaml")]
    fails_with("changes the run it would resume (model.class_path", capsys, "fit", *vision, "--ckpt_path", checkpoint)
    fails_with("is of another model or data than this config", capsys, "test", *vision, "--ckpt_path", checkpoint)


@pytest.mark.skipif(not (CONFIGS / "tabular.yaml").exists(), reason="the tabular family is not in this project")
def test_runs_of_a_csv_file_are_named_after_it_and_resume_their_own(in_tmp):
    header = ",".join(f"x{i}" for i in range(4)) + ",target\n"
    for name, width in (("first", 4), ("second", 2)):
        rows = [",".join(str((i * 7 + j) % 5) for j in range(width)) + f",{i % 2}" for i in range(40)]
        columns = header if width == 4 else "x0,x1,target\n"
        (in_tmp / f"{name}.csv").write_text(columns + "\n".join(rows) + "\n")
    csv = ["--config", str(CONFIGS / "tabular.yaml"), "--data.init_args.source", "csv", "--trainer.max_epochs", "1"]
    first = run("fit", *csv, "--data.init_args.csv_path", "first.csv", *QUIET)
    second = run("fit", *csv, "--data.init_args.csv_path", "second.csv", *QUIET)
    assert Path(first.trainer.log_dir).parent.name == "tabular_first"
    assert Path(second.trainer.log_dir).parent.name == "tabular_second"
    resumed = run("fit", *csv, "--data.init_args.csv_path", "first.csv", "--trainer.max_epochs", "2",
                  "--ckpt_path", "last", *QUIET)
    assert resumed.trainer.log_dir == first.trainer.log_dir and resumed.trainer.current_epoch == 2


def test_the_best_checkpoint_keeps_the_best_epochs_score_and_file(in_tmp):
    # mode max: the best epoch is then seldom the last, so a score overwritten by later values would show.
    RecordValLoss.seen = []
    cli = run("fit", "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "2", "--checkpoint.monitor", "val/loss",
              "--checkpoint.mode", "max", "--trainer.callbacks", "[{class_path: test_resume.RecordValLoss}]", *QUIET)
    best, seen = cli.trainer.checkpoint_callback, RecordValLoss.seen
    assert isinstance(best, BestCheckpoint) and len(seen) == 3
    epoch = seen.index(max(seen))
    steps = cli.trainer.global_step // 3 * (epoch + 1)
    assert float(best.best_model_score) == max(seen)
    assert Path(best.best_model_path).name == f"best-epoch={epoch}-step={steps}.ckpt"
    assert best.on_train_batch_end is None  # not called at every step: it saves at epochs' ends
    assert callable(BestCheckpoint(every_n_train_steps=2).on_train_batch_end)  # unless asked to save within epochs
