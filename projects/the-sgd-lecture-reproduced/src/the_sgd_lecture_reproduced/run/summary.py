"""What a run reached, where a student looks: printed at the end of `fit` and `test`, in
TensorBoard's HParams tab (one row per run: its settings, its best and final results), and in
its Custom Scalars tab (training and validation loss in one chart, then each result).

train.py adds a RunSummary callback to every run; nothing here runs on a training step. At the
end of `uv run python train.py fit` it prints, for example:

    Run vision_digits/adam_lr0.003: 30 epochs, 1710 optimizer steps, 14.1 s, did not diverge
      metric      best      final
      val/acc     0.9889    0.9833
      val/loss    0.04512   0.05127
    Saved in runs/vision_digits/adam_lr0.003 (config.yaml, checkpoints/, TensorBoard events)
"""

import inspect
import math
import re
import time
from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from ..metrics import higher_is_better
from ..optim import IMPLEMENTATION_SWITCHES, import_class
from .callbacks import Diverged


def is_better(metric: str, new: float, old: float, declared: tuple[str, ...] | None = None) -> bool:
    """Whether `new` beats `old` for this metric: higher for the metrics the module declares better
    higher (`declared`, see metrics.py), lower for losses and the rest."""
    if math.isnan(old):
        return not math.isnan(new)
    return new > old if higher_is_better(metric, declared) else new < old


def metrics_table(best: dict[str, float], final: dict[str, float]) -> list[str]:
    """Lines of a small table: one metric a row, its best and final value (4 significant digits)."""
    # (no best value when every value was nan)
    rows = [("metric", "best", "final")]
    rows += [(name, f"{best.get(name, math.nan):.4g}", f"{final[name]:.4g}") for name in sorted(final)]
    widths = [max(len(row[column]) for row in rows) + 2 for column in range(2)]
    return [f"  {name:<{widths[0]}}{best_value:<{widths[1]}}{final_value}" for name, best_value, final_value in rows]


def saved_files(folder: Path) -> str:
    """The line that says what the run folder holds: only what is there (a run that diverged at
    once has no checkpoint; fast_dev_run and the debug preset keep nothing)."""
    config, events = (folder / "config.yaml").is_file(), any(folder.glob("events.out.tfevents.*"))
    checkpoints = any((folder / "checkpoints").glob("*.ckpt"))
    if not (config or events or checkpoints):
        return "Nothing saved: this run kept no config, checkpoint or TensorBoard events"
    kept = ["config.yaml"] * config + ["checkpoints/" if checkpoints else "no checkpoint"] + ["TensorBoard events"] * events
    return f"Saved in {folder} ({', '.join(kept)})"


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
        self.earlier_seconds = 0.0  # training time before a resume (from the checkpoint)
        self.exception = None  # what ended the run, if not its budget
        self.layout_written = False
        self.declared: tuple[str, ...] | None = None  # the module's metrics_higher_is_better (see metrics.py)

    def state_dict(self) -> dict:
        """What every checkpoint keeps of this callback, so that a resumed run's table and HParams
        row cover the whole run: the best values so far and the seconds trained."""
        return {"best": dict(self.best), "seconds": self.seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = dict(state_dict.get("best", {}))
        self.earlier_seconds = float(state_dict.get("seconds", 0.0))

    def seconds(self) -> float:
        """Seconds of training, those before a resume included."""
        return self.earlier_seconds + (time.perf_counter() - self.started if self.started is not None else 0.0)

    def on_fit_start(self, trainer, pl_module):
        self.started = time.perf_counter()
        self.declared = getattr(pl_module, "metrics_higher_is_better", None)
        if self.declared is not None and trainer.logger is not None:  # hparams.yaml keeps it: the reports read it there
            trainer.logger.log_hyperparams({"metrics_higher_is_better": list(self.declared)})

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        for name, value in trainer.callback_metrics.items():
            if name.startswith("val/"):
                value = float(value)  # one synchronisation per validation, not per step
                self.final[name] = value
                if is_better(name, value, self.best.get(name, math.nan), self.declared):
                    self.best[name] = value
        if not self.layout_written:  # now the metric names are known
            self.write_layout(trainer)
            self.layout_written = True

    def on_exception(self, trainer, pl_module, exception):
        # Lightning calls no teardown after an exception: a run that diverged or was interrupted
        # (Ctrl+C) reports here, after the progress bar's on_exception. Other errors report nothing.
        self.exception = exception
        if trainer.state.fn == "fit" and isinstance(exception, (Diverged, KeyboardInterrupt)):
            self.report(trainer, diverged=isinstance(exception, Diverged), interrupted=True)

    def teardown(self, trainer, pl_module, stage):
        # After the progress bar has finished drawing, so the table is the last thing printed.
        if stage == "fit" and self.exception is None:
            self.report(trainer, diverged=False)

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
        for logger in trainer.loggers:
            logger.save()
        seconds = self.seconds()
        outcome = "DIVERGED" if diverged else ("stopped early" if interrupted else "did not diverge")
        # The logger's folder (trainer.log_dir would wait for the other processes of a DDP run).
        log_dir = getattr(trainer.logger, "log_dir", None)  # fast_dev_run: none
        where = str(log_dir or trainer.default_root_dir)
        name = "/".join(where.replace("\\", "/").split("/")[-2:]) if log_dir else "(no run folder)"
        lines = [f"\nRun {name}: {trainer.current_epoch} epochs, {trainer.global_step} optimizer steps, "
                 f"{seconds:.1f} s, {outcome}"]
        if self.final:
            lines += metrics_table(self.best, self.final)
        for config in trainer.lr_scheduler_configs:  # a schedule that a resume ran past its planned length
            if hasattr(config.scheduler, "end_note") and (note := config.scheduler.end_note(trainer.global_step)):
                lines.append(note)
        lines.append(saved_files(Path(where)))
        if self.hint:
            lines.append(self.hint)
        print("\n".join(lines))

    def write_hparams(self, trainer, diverged: bool) -> None:
        """One HParams row: the run's settings and results as columns.

        The final values are the last points of the val/ charts themselves (metric columns); the
        best ones and `diverged` are columns beside the settings, so that no chart of a single
        point stands among the curves.
        """
        from torch.utils.tensorboard.summary import hparams

        # Named to sort after the settings: the tab shows the first columns alphabetically.
        results = {f"result: best {name}": value for name, value in self.best.items()} | {"result: diverged": diverged}
        for writer in tensorboard_writers(trainer):
            for summary in hparams({**self.settings, **results}, dict(self.final)):
                writer.add_summary(summary)

    def write_layout(self, trainer) -> None:
        """The Custom Scalars tab: loss first (training and validation in one chart, and test with
        the data's test_every_epoch), then each result (val/acc beside train/acc, ...), then the
        learning rate."""
        from torch.utils.tensorboard.summary import custom_scalars

        tested = any(name.startswith("test/") for name in trainer.callback_metrics)  # test_every_epoch
        stages = "train|val|test" if tested else "train|val"
        words = "training, validation and test" if tested else "training and validation"
        results = sorted(name.removeprefix("val/") for name in self.final if name != "val/loss")
        layout = {"loss": {f"{words} loss": ["Multiline", [rf"^({stages})/loss$"]]}}
        for result in results:
            layout[result] = {f"{result} ({words})": ["Multiline", [rf"^({stages})/{re.escape(result)}$"]]}
        layout["learning rate"] = {"learning rate": ["Multiline", [r"^opt/lr$"]]}
        for writer in tensorboard_writers(trainer):
            writer.add_summary(custom_scalars(layout))


def run_settings(config) -> dict:
    """What TensorBoard's HParams tab shows of a run (train.py passes its parsed config): the run's
    name, the optimizer and schedule with the arguments that differ from their class's defaults
    (lr always), batch size, data, seed and budget; no internal keys, no paths."""
    settings = {"seed": config.get("seed_everything"), "run": config.get("name")}
    model = config.model.get("init_args", config.model)
    for entry in ("optimizer", "scheduler"):
        spec = model.get(entry)
        if spec is None:
            continue
        settings[entry] = spec.class_path.rsplit(".", 1)[-1]
        defaults = inspect.signature(import_class(spec.class_path)).parameters
        for key, value in (spec.get("init_args") or {}).items():
            default = defaults[key].default if key in defaults else None
            if key == "lr" or (value != default and value is not None and key not in IMPLEMENTATION_SWITCHES):
                settings[f"{entry}.{key}"] = value
    data = config.get("data") or {}
    data = data.get("init_args", data) if hasattr(data, "get") else {}
    for key in ("batch_size", "dataset", "problem", "net"):
        value = data.get(key) if key in data else model.get(key)
        if value is not None:
            settings[key] = value
    for key in ("max_epochs", "max_steps", "precision", "accumulate_grad_batches"):
        value = config.trainer.get(key)
        if value not in (None, -1):
            settings[f"trainer.{key}"] = value
    return {key: value if isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in settings.items() if value is not None}


def tensorboard_writers(trainer) -> list:
    """The event-file writers of the run's TensorBoard loggers (first process only)."""
    if not trainer.is_global_zero:
        return []
    writers = [logger.experiment.file_writer for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
    return [writer for writer in writers if writer is not None]  # (None once the logger has closed it)
