"""Tests of run/logger.py (TensorBoard events in fewer pieces) and of how training metrics reach it:
module.log_step writes straight to the logger, and still feeds callbacks and the progress bar."""

from pathlib import Path

import yaml
from conftest import run, steps
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from {{ cookiecutter.package_name }}.run.logger import TensorBoardLogger


def events_of(folder: str) -> list:
    """Every event in the folder's one event file, in order."""
    (file,) = Path(folder).glob("events.out.tfevents.*")
    return list(EventFileLoader(str(file)).Load())


def scalars(folder: str) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(folder, size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_one_event_per_step_that_tensorboard_reads_as_separate_scalars(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="experiment", version="run")
    logger.log_metrics({"train/loss": 0.5, "opt/lr": 0.125}, step=3)
    logger.log_metrics({"opt/grad_norm": 2.0}, step=3)  # the same step, from another call (the diagnostics)
    logger.log_metrics({"val/loss": 0.25}, step=4)
    logger.log_metrics({"losses": {"train": 1.0, "val": 2.0}}, step=5)  # a group of curves (add_scalars)
    logger.log_metrics({"opt/lr": 0.0625}, step=5)
    logger.finalize("success")  # writes step 5's, still pending
    written = [event for event in events_of(logger.log_dir) if event.HasField("summary")]
    assert [(event.step, len(event.summary.value)) for event in written] == [(3, 3), (4, 1), (5, 1)]
    assert scalars(logger.log_dir) == {"train/loss": [(3, 0.5)], "opt/lr": [(3, 0.125), (5, 0.0625)],
                                       "opt/grad_norm": [(3, 2.0)], "val/loss": [(4, 0.25)]}
    groups = sorted(path.name for path in Path(logger.log_dir).iterdir() if path.is_dir())
    assert groups == ["losses_train", "losses_val"]  # as Lightning's logger writes them


def test_save_waits_for_the_writer_every_flush_seconds_and_at_the_end(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="experiment", flush_seconds=3600, default_hp_metric=False)
    flushes = []
    writer_flush = logger.experiment.flush
    logger.experiment.flush = lambda: flushes.append(1) or writer_flush()
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.save()  # the first save waits for the writer (and writes hparams.yaml)
    assert len(flushes) == 1 and scalars(logger.log_dir) == {"train/loss": [(0, 1.0)]}
    assert yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text()) == {"lr": 0.1}
    logger.log_metrics({"train/loss": 0.5}, step=1)
    logger.save()  # within the hour: no waiting (Lightning's logger waits here, after every call)
    assert len(flushes) == 1
    logger.finalize("success")
    assert len(flushes) == 2 and scalars(logger.log_dir) == {"train/loss": [(0, 1.0), (1, 0.5)]}


def test_training_metrics_reach_tensorboard_callbacks_and_the_progress_bar(in_tmp, capsys):
    short = [*steps(6), "--trainer.limit_train_batches", "3", "--trainer.log_every_n_steps", "2",
             "--trainer.enable_model_summary", "false"]
    cli = run("fit", *short)
    assert "train/loss=" in "".join(capsys.readouterr())  # on the progress bar
    trainer = cli.trainer
    assert set(trainer.progress_bar_metrics) >= {"train/loss", "val/loss"}
    logged = scalars(trainer.log_dir)
    assert [step for step, _ in logged["train/loss"]] == [1, 3, 5]  # the 2nd, 4th and 6th steps, as Lightning counts
    assert [step for step, _ in logged["opt/lr"]] == [1, 3, 5]
    assert float(trainer.callback_metrics["train/loss"]) == logged["train/loss"][-1][1]  # what callbacks read
