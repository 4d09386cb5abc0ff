"""The TensorBoard logger of every config: Lightning's TensorBoardLogger, writing in fewer pieces.

A config names it as the trainer's logger:

    trainer:
      logger:
        class_path: optimizers_for_a_small_gpt.run.logger.TensorBoardLogger
        init_args:
          save_dir: runs        # runs/<name>/<run name>/: uv run tensorboard --logdir runs
          name: vision_digits
          flush_seconds: 5      # wait for the event file to be written at most this often

It writes the same event files as Lightning's logger (TensorBoard and figures.py read them
alike), with two differences that matter when a training step takes a millisecond:
- the metrics logged at one step go into one TensorBoard event, not one event each: a training
  step's loss, learning rate and diagnostics (logged by several calls) are written together when
  the next step logs, when the logger saves (`flush_seconds`) and when the run ends;
- TensorBoard's writer thread writes the events to the file as they come. Lightning's logger
  waits for it to finish (and looks for hparams.yaml on disk) after every call: 0.5 ms each time,
  more than a small model's whole training step. This one waits at most every `flush_seconds`,
  and when the run ends.
"""

import time
from argparse import Namespace
from collections.abc import Mapping

from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoardLogger (every argument of it is accepted), plus `flush_seconds`."""

    def __init__(
        self,
        save_dir: str,  # the folder of all runs (runs)
        name: str | None = "lightning_logs",  # the experiment: runs/<name>/
        version: int | str | None = None,  # the run's folder under it (None: version_0, version_1, ...)
        flush_seconds: float = 5.0,  # wait for the events to be written at most this often (and at the end)
        **kwargs,  # the rest of Lightning's TensorBoardLogger: log_graph, default_hp_metric, prefix, sub_dir
    ):
        super().__init__(save_dir, name=name, version=version, **kwargs)
        self.metric_prefix = kwargs.get("prefix", "")  # put before every metric's name (Lightning's `prefix`)
        self.flush_seconds = flush_seconds
        self.flushed_at = float("-inf")
        self.pending: dict[str, float] = {}  # the metrics of step pending_step, not written yet
        self.pending_step = None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.metric_prefix:
            metrics = {f"{self.metric_prefix}{self.LOGGER_JOIN_CHAR}{name}": value for name, value in metrics.items()}
        groups = {name: value for name, value in metrics.items() if isinstance(value, Mapping)}
        if groups:  # add_scalars' groups of curves: Lightning's way
            super().log_metrics(groups, step)
        if step != self.pending_step:
            self.write_pending()
            self.pending_step = step
        self.pending.update((name, float(value)) for name, value in metrics.items() if name not in groups)

    @rank_zero_only
    def log_hyperparams(self, params, metrics=None) -> None:
        """Keeps `params` for hparams.yaml, but writes no HParams row: Lightning calls this with every
        argument of the model and data (and internal keys) beside a meaningless hp_metric = -1, and
        summary.RunSummary writes the run's row instead, from its config, with its results."""
        self.hparams.update(vars(params) if isinstance(params, Namespace) else params)

    def write_pending(self) -> None:
        """Hand the pending step's metrics, as one event, to TensorBoard's writer thread."""
        if not self.pending:
            return
        writer = self.experiment  # torch's SummaryWriter
        if writer.file_writer is None:  # closed when fit ended (a test after it): add_scalar opens it again
            for name, value in self.pending.items():
                writer.add_scalar(name, value, self.pending_step)
        else:
            values = [Summary.Value(tag=name, simple_value=value) for name, value in self.pending.items()]
            writer.file_writer.add_summary(Summary(value=values), self.pending_step)
        self.pending = {}

    @rank_zero_only
    def save(self) -> None:
        if time.monotonic() - self.flushed_at >= self.flush_seconds:
            self.write_pending()
            super().save()  # waits for the writer (and writes hparams.yaml the first time)
            self.flushed_at = time.monotonic()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.write_pending()
        super().finalize(status)
