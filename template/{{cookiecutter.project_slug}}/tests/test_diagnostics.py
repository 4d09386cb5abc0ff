"""Tests of the optimization diagnostics (run/callbacks.py), divergence handling, the optimizers on
the default experiment's model, Schedule-Free's two sets of weights, and the modifiers."""

import re
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import CONFIGS, DEFAULT, QUIET, fails_with, run, steps
from lightning.pytorch.callbacks import Callback, WeightAveraging
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from {{ cookiecutter.package_name }}.optim import OPTIMIZERS, check_optimizer, make_optimizer
from {{ cookiecutter.package_name }}.run.callbacks import (
    Diagnostics,
    OptimizerModes,
    ProgressBar,
    noise_scale_parts,
    top_hessian_eigenvalue,
)
from {{ cookiecutter.package_name }}.run.checkpoints import BestCheckpoint

SHORT = ["--trainer.max_steps", "3", "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "0",
         "--trainer.logger", "false", *QUIET]


def scalar(run_dir: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def test_sharpness_of_a_quadratic_is_its_largest_eigenvalue():
    torch.manual_seed(0)
    eigenvalues = torch.linspace(1.0, 50.0, 20)
    basis, _ = torch.linalg.qr(torch.randn(20, 20))
    hessian = basis @ torch.diag(eigenvalues) @ basis.T
    x = torch.randn(20, requires_grad=True)
    estimate = top_hessian_eigenvalue(lambda: 0.5 * x @ hessian @ x, [x], iterations=100)
    assert estimate == pytest.approx(50.0, rel=0.01)


def test_gradient_noise_scale_matches_a_known_noise():
    # loss_i(w) = |w - x_i|^2 / 2 with x_i ~ N(mu, sigma^2 I): G = w - mu, tr(Sigma) = d sigma^2.
    torch.manual_seed(0)
    dim, sigma = 10, 1.0
    w = torch.nn.Parameter(torch.zeros(dim))
    mu = torch.full((dim,), 1.0 / dim**0.5)  # |G|^2 = 1, so the noise scale is d sigma^2 = 10
    true_norms, traces = [], []
    for _ in range(50):
        batch = (mu + sigma * torch.randn(512, dim),)
        parts = noise_scale_parts(lambda b: 0.5 * ((w - b[0]) ** 2).sum(dim=1).mean(), batch, [w], pieces=8)
        true_norms.append(parts[0])
        traces.append(parts[1])
    estimate = sum(traces) / sum(true_norms)
    assert estimate == pytest.approx(dim * sigma**2, rel=0.2)


def test_diagnostics_are_logged(in_tmp):
    cli = run("fit", "--trainer.max_epochs", "4", "--trainer.max_steps", "4", "--diagnostics.every_n_steps", "2",
              "--diagnostics.sharpness_every_n_steps", "2", "--diagnostics.noise_scale_every_n_steps", "2", *QUIET)
    events = EventAccumulator(cli.trainer.log_dir)
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"opt/grad_norm", "opt/param_norm", "opt/update_ratio", "opt/sharpness", "perf/samples_per_sec"}
    assert expected <= tags
    assert "diverged" not in tags  # logged only when it happens: no flat chart in every run
    groups = [group.get("name") for group in cli.trainer.optimizers[0].param_groups]
    per_group = {f"opt/{measure}/{name}" for measure in ("grad_norm", "lr") for name in groups}
    assert per_group <= tags if len(groups) > 1 else not any(tag.startswith(("opt/grad_norm/", "opt/lr/")) for tag in tags)
    assert all(value > 0 for value in scalar(Path(cli.trainer.log_dir), "opt/update_ratio"))


class PoisonWeights(L.Callback):
    """Turns the weights into NaN at the start of epoch `epoch`: a run that diverges midway."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 0:
            with torch.no_grad():
                next(module.parameters()).fill_(float("nan"))


def test_divergence_ends_cleanly_and_keeps_the_last_finite_checkpoint(in_tmp, capsys):
    poison = "[{class_path: test_diagnostics.PoisonWeights, init_args: {epoch: 1}}]"
    result = run("fit", "--trainer.callbacks", poison, "--trainer.max_epochs", "3",
                 "--last_checkpoint.every_seconds", "0", *QUIET)  # last.ckpt after every epoch
    assert result is None  # train.py exits with status 0: a sweep counts the run as a result
    run_dir = next((in_tmp / "runs").glob("*/*/config.yaml")).parent
    message = capsys.readouterr().err
    assert "Diverged: the loss diverged by step" in message
    assert "checkpoints from before are kept: " in message and f"{run_dir.name}/checkpoints/last.ckpt" in message
    assert scalar(run_dir, "diverged")[-1] == 1.0
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert last["global_step"] > 0
    assert all(torch.isfinite(value).all() for value in last["state_dict"].values() if value.is_floating_point())


class BlowUp(L.Callback):
    """Draws the weights anew, about a million times too large, before the second step: a loss that
    explodes early, between two logged steps. With a learning rate of 1e-30 they stay so."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == 1:
            with torch.no_grad():
                for parameter in module.parameters():
                    parameter.normal_(0.0, 1e6)


def test_an_early_explosion_is_measured_against_the_first_step(in_tmp, capsys):
    blow_up = "[{class_path: test_diagnostics.BlowUp}]"
    result = run("fit", "--trainer.callbacks", blow_up, "--optimizer.lr", "1e-30", "--trainer.max_steps", "12",
                 "--trainer.log_every_n_steps", "5", "--trainer.logger", "false", *QUIET)
    assert result is None
    message = capsys.readouterr().err
    # Caught by the first logged step after it (step 5), or an epoch's end before: a loss far above
    # the one at step 0 (or not a number, where the net overflows). Measured from step 5, it looked fine.
    assert int(re.search(r"Diverged: the loss diverged by step (\d+) \(loss ", message).group(1)) <= 5


def test_the_first_step_loss_is_kept_across_a_resume():
    diagnostics = Diagnostics()
    diagnostics.first_loss = 2.3
    resumed = Diagnostics()
    resumed.load_state_dict(diagnostics.state_dict())
    assert resumed.first_loss == 2.3


@pytest.mark.skipif(not (CONFIGS / "vision.yaml").is_file(), reason="the lecture's run is on the vision family")
@pytest.mark.parametrize("optimizer", [["--optimizer.lr", "10"], ["--optimizer", "sgd", "--optimizer.lr", "10"]],
                         ids=["momentum", "plain"])
def test_sgd_at_learning_rate_10_diverges_before_any_checkpoint(optimizer, in_tmp, capsys):
    # The lecture's run. With momentum the loss is 2.3 at step 0, 4.7e7 at step 9, then falls back
    # to about 2.3 (a dead network, at chance): measured from a later step, it looked fine.
    result = run("fit", "--config", str(CONFIGS / "vision.yaml"), *optimizer, "--trainer.max_epochs", "2", *QUIET)
    assert result is None  # train.py exits with status 0
    out, err = capsys.readouterr()
    step = int(re.search(r"Diverged: the loss diverged by step (\d+) ", err).group(1))
    assert step <= 20 and "it had saved no checkpoint yet" in err  # before the first validation (step 21)
    run_dir = next((in_tmp / "runs").glob("*/*/config.yaml")).parent
    assert not list(run_dir.glob("checkpoints/*.ckpt"))
    assert scalar(run_dir, "diverged") == [1.0]
    assert "DIVERGED" in out and "(config.yaml, no checkpoint, " in out  # the summary, printed and in HParams
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(run_dir))
    events.Reload()
    start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    settings = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
    assert settings["result: diverged"].number_value == 1  # (torch writes a bool as a number)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_trains_the_default_model(name, in_tmp, capsys):
    if getattr(check_optimizer(make_optimizer(name)), "needs_curvature", False) and DEFAULT.stem != "objective":
        fails_with("needs the Hessian", capsys, "fit", "--optimizer", name, *SHORT)  # Newton-like: objective only
        return
    cli = run("fit", "--optimizer", name, *SHORT)
    assert cli.trainer.global_step == 3
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])


class WeightsAtValidation(L.Callback):
    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        self.weights = [p.detach().clone() for p in module.parameters()]


def test_schedule_free_evaluates_and_saves_its_averaged_weights(in_tmp):
    spy = WeightsAtValidation()
    cli = run("fit", "--optimizer", "schedulefree_adamw", "--trainer.max_epochs", "2", *QUIET)
    if any(isinstance(callback, WeightAveraging) for callback in cli.trainer.callbacks):
        pytest.skip("this family averages its weights with EMA, and checkpoints hold those instead")
    run_dir = Path(cli.trainer.log_dir)
    model, optimizer = cli.model, cli.trainer.optimizers[0]
    training_weights = [p.detach().clone() for p in model.parameters()]
    optimizer.eval()  # the averaged weights
    averaged = [p.detach().clone() for p in model.parameters()]
    assert not all(torch.equal(a, b) for a, b in zip(training_weights, averaged, strict=True))
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")["state_dict"]
    names = [name for name, _ in model.named_parameters()]
    # (switching between the two sets of weights is an interpolation: equal up to rounding)
    assert all(torch.allclose(saved[name], value, atol=1e-6) for name, value in zip(names, averaged, strict=True))
    # ... and validation sees the averaged weights too.
    trainer = L.Trainer(max_epochs=3, callbacks=[OptimizerModes(), spy], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, cli.datamodule, ckpt_path=str(run_dir / "checkpoints" / "last.ckpt"))
    trainer.optimizers[0].eval()
    # (on the CPU: Lightning moves the model back there after fitting on a GPU)
    assert all(torch.allclose(a.cpu(), p.cpu(), atol=1e-6) for a, p in zip(spy.weights, model.parameters(), strict=True))


@pytest.mark.parametrize(
    "modifier",
    [
        ["--trainer.gradient_clip_val", "0.5"],
        ["--trainer.gradient_clip_val", "0.01", "--trainer.gradient_clip_algorithm", "value"],
        ["--trainer.accumulate_grad_batches", "3", "--trainer.max_steps", "2"],
        ["--trainer.callbacks", "[{class_path: lightning.pytorch.callbacks.EMAWeightAveraging}]"],
    ],
    ids=["clip_norm", "clip_value", "accumulate", "ema"],
)
def test_modifiers_are_config_keys(modifier, in_tmp):
    cli = run("fit", "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1", "--trainer.logger", "false",
              *modifier, *QUIET)
    assert cli.trainer.global_step > 0 and torch.isfinite(cli.trainer.callback_metrics["train/loss"])


def test_lightning_skips_the_batch_hooks_a_callback_leaves_empty(in_tmp):
    ema = "[{class_path: lightning.pytorch.callbacks.EMAWeightAveraging}]"  # one given in the config too
    cli = run("fit", *steps(3), "--trainer.limit_train_batches", "3", "--trainer.logger", "false",
              "--trainer.callbacks", ema, *QUIET)
    assert cli.trainer.global_step == 3
    for callback in cli.trainer.callbacks:
        for hook in ("on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_before_optimizer_step"):
            defined = getattr(type(callback), hook) is not getattr(Callback, hook)
            defined &= not (isinstance(callback, BestCheckpoint) and hook == "on_train_batch_end")  # (see BestCheckpoint)
            assert callable(getattr(callback, hook)) if defined else getattr(callback, hook) is None, (callback, hook)
    diagnostics = next(callback for callback in cli.trainer.callbacks if isinstance(callback, Diagnostics))
    assert diagnostics.on_before_backward is None and diagnostics.first_loss is not None  # its own hooks ran


def load_benchmark():
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "scripts" / "benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark


def test_benchmark_script_runs_and_prints_its_ratios(capsys, in_tmp):
    benchmark = load_benchmark()
    family = benchmark.FAMILIES[0]
    times = benchmark.main(["--families", family, "--repeats", "2", "--epochs", "1"])  # no timing is asserted
    assert list(times) == [family] and all(len(times[family][variant]) == 2 for variant in benchmark.VARIANTS)
    assert all(seconds > 0 for runs in times[family].values() for seconds in runs)
    printed = capsys.readouterr().out
    for ratio in ("train.py / plain loop", "Lightning floor / plain loop", "train.py / Lightning floor"):
        assert re.search(rf"{re.escape(ratio)} +\d+\.\d\dx \[\d+\.\d\d - \d+\.\d\d\]", printed)
    assert "1 thread(s)" in printed
    assert not list(in_tmp.iterdir())  # the runs went to a temporary folder


def test_benchmark_times_start_up():
    # One command, which ends before Lightning loads (all four take half a minute); no timing is asserted.
    error = "train.py fit --optimizer adamm (an error)"
    seconds = load_benchmark().startup_seconds(only=[error])
    assert list(seconds) == [error] and seconds[error] > 0


def test_progress_bar_shows_validation_results_on_the_training_bar(in_tmp, capsys):
    short = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.logger", "false",
             "--trainer.enable_model_summary", "false"]
    cli = run("fit", *short)
    # Ours in place of Lightning's, which is Rich where rich is installed (as on Colab), else TQDM.
    assert type(cli.trainer.progress_bar_callback) is ProgressBar
    fitting = "".join(capsys.readouterr())  # Lightning's bars write to stdout
    assert "Epoch 1: 100%" in fitting and "val/loss=" in fitting  # the results, on the training bar
    assert "Validation" not in fitting  # no bar of its own for a validation this short
    cli.trainer.validate(cli.model, cli.datamodule)
    assert "Validation DataLoader 0: 100%" in "".join(capsys.readouterr())  # `validate` keeps its bar
