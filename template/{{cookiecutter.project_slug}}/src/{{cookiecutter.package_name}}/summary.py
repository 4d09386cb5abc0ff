"""What a run reached, where a student looks: printed at the end of `fit` and `test`, and in
TensorBoard's HParams tab (one row per run: its settings, its best and final results).

train.py adds a RunSummary callback to every run; nothing here runs on a training step. At the
end of `python train.py fit` it prints, for example:

    Run vision_digits/adam_lr0.003: 30 epochs, 1710 optimizer steps, 14.1 s, did not diverge
      metric      best      final
      val/acc     0.9889    0.9833
      val/loss    0.04512   0.05127
    Saved in runs/vision_digits/adam_lr0.003 (config.yaml, checkpoints/, TensorBoard events)
"""

import math
import time

from lightning.pytorch import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from .callbacks import Diverged
from .figures import HIGHER_IS_BETTER


def is_better(metric: str, new: float, old: float) -> bool:
    """Whether `new` beats `old` for this metric (accuracies: higher; losses and the rest: lower)."""
    if math.isnan(old):
        return not math.isnan(new)
    higher = HIGHER_IS_BETTER.search(metric.rsplit("/", 1)[-1])
    return new > old if higher else new < old


def metrics_table(best: dict[str, float], final: dict[str, float]) -> list[str]:
    """Lines of a small table: one metric a row, its best and final value."""
    width = max(len(name) for name in final) + 2
    lines = [f"  {'metric':<{width}}{'best':<10}final"]
    for name in sorted(final):
        lines.append(f"  {name:<{width}}{best[name]:<10.4g}{final[name]:.4g}")
    return lines


class RunSummary(Callback):
    """Keeps the best and final value of every val/ metric, prints them when fit ends (or the run
    diverges or is interrupted), and writes the run's settings and results to the HParams tab.

    `settings`: the run's hyperparameters as the HParams tab should show them (train.py makes them
    from the config: optimizer and its arguments, schedule, batch size, seed, budget, ...).
    """

    def __init__(self, settings: dict | None = None, hint: str = ""):
        self.settings = settings or {}
        self.hint = hint  # printed last, e.g. how to open TensorBoard
        self.best: dict[str, float] = {}
        self.final: dict[str, float] = {}
        self.started = None
        self.exception = None  # what ended the run, if not its budget

    def setup(self, trainer, pl_module, stage):
        # This callback writes the HParams tab; Lightning's own version would list every init
        # argument (and internal keys) beside a meaningless hp_metric = -1.
        pl_module._log_hyperparams = False
        if trainer.datamodule is not None:
            trainer.datamodule._log_hyperparams = False

    def on_fit_start(self, trainer, pl_module):
        self.started = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        for name, value in trainer.callback_metrics.items():
            if name.startswith("val/"):
                value = float(value)  # one synchronisation per validation, not per step
                self.final[name] = value
                if is_better(name, value, self.best.get(name, math.nan)):
                    self.best[name] = value

    def on_exception(self, trainer, pl_module, exception):
        self.exception = exception

    def teardown(self, trainer, pl_module, stage):
        # After the progress bar has finished drawing, so the table is the last thing printed.
        if stage == "fit" and (self.exception is None or isinstance(self.exception, (Diverged, KeyboardInterrupt))):
            self.report(trainer, diverged=isinstance(self.exception, Diverged), interrupted=self.exception is not None)

    def on_test_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        results = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("test/")}
        if results:
            print("\nTest results:")
            for name in sorted(results):
                print(f"  {name:<20}{results[name]:.4g}")

    def report(self, trainer, diverged: bool, interrupted: bool = False) -> None:
        if self.started is None or not trainer.is_global_zero:
            return
        self.write_hparams(trainer, diverged)
        seconds = time.perf_counter() - self.started
        outcome = "DIVERGED" if diverged else ("stopped early" if interrupted else "did not diverge")
        # The logger's folder (trainer.log_dir would wait for the other processes of a DDP run).
        where = str(getattr(trainer.logger, "log_dir", None) or trainer.default_root_dir)  # fast_dev_run: none
        name = "/".join(where.replace("\\", "/").split("/")[-2:])
        lines = [f"\nRun {name}: {trainer.current_epoch} epochs, {trainer.global_step} optimizer steps, "
                 f"{seconds:.1f} s, {outcome}"]
        if self.final:
            lines += metrics_table(self.best, self.final)
        lines.append(f"Saved in {where} (config.yaml, checkpoints/, TensorBoard events)")
        if self.hint:
            lines.append(self.hint)
        print("\n".join(lines))

    def write_hparams(self, trainer, diverged: bool) -> None:
        """One HParams row: the run's settings, then its results as metric columns.

        The final values are the last points of the val/ charts themselves; the best ones are
        written once, at the last step, as best/<metric>; `diverged` (1) exists only for runs
        that diverged.
        """
        from torch.utils.tensorboard.summary import hparams

        best = {f"best/{name}": value for name, value in self.best.items()}
        for logger in trainer.loggers:
            if not isinstance(logger, TensorBoardLogger):
                continue
            logger.log_metrics(best, step=trainer.global_step)
            columns = {**best, **self.final, "diverged": float(diverged)}  # `diverged` is logged only when it happens
            experiment, start, end = hparams(self.settings, columns)
            writer = logger.experiment._get_file_writer()
            for summary in (experiment, start, end):
                writer.add_summary(summary)
            logger.save()
