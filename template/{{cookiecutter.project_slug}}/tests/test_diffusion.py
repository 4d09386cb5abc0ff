"""Tests of the diffusion family: data, noise schedules, the U-Net, samplers, learning, configs.

MNIST and Fashion-MNIST are replaced by small fake copies in torchvision's format (no network).
"""

import runpy
import sys

import lightning as L
import numpy as np
import pytest
import torch
from conftest import CONFIGS, run_one_batch

from {{ cookiecutter.package_name }}.config_errors import ConfigError
from {{ cookiecutter.package_name }}.optim import make_optimizer
from {{ cookiecutter.package_name }}.problems import diffusion
from {{ cookiecutter.package_name }}.problems.diffusion import Diffusion, ImageDataModule, noise_schedule

TINY = {"channels": [8, 16], "time_dim": 16, "groups": 4}


def write_mnist_like(data_dir, class_name, n_train=200, n_test=20):
    """Fake MNIST-format files where torchvision looks for them (data_dir/<class>/raw)."""
    raw = data_dir / class_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind, shape, magic in (("images-idx3", (n, 28, 28), 2051), ("labels-idx1", (n,), 2049)):
            header = np.array([magic, *shape], dtype=">i4").tobytes()
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(header + rng.integers(0, 10, shape).astype(np.uint8).tobytes())


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("diffusion*.yaml")), ids=lambda path: path.stem)
def test_every_diffusion_config_runs_one_batch(config, in_tmp):
    write_mnist_like(in_tmp / "data", "MNIST")
    write_mnist_like(in_tmp / "data", "FashionMNIST")
    # The config's own model and data on a CPU-sized batch: a batch of 128 costs a U-Net seconds here.
    cli = run_one_batch(config, "--trainer.precision", "32-true", "--data.init_args.val_size", "20",
                        "--data.init_args.batch_size", "8", "--data.init_args.eval_batch_size", "10",
                        "--model.init_args.samples", "4", "--model.init_args.sample_steps", "2")
    assert "val/loss" in cli.trainer.callback_metrics


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_forward_process_matches_its_closed_form(schedule):
    model = Diffusion(TINY, steps=100, schedule=schedule, input_shape=(1, 8, 8), ema_decay=None)
    betas = noise_schedule(schedule, 100)
    assert torch.all(betas > 0) and torch.all(betas < 1)
    # Noising step by step, x_t = sqrt(1 - beta_t) x_(t-1) + sqrt(beta_t) e_t, has variance 1 - abar_t
    # around sqrt(abar_t) x0: check both moments on many samples.
    torch.manual_seed(0)
    x0 = torch.full((20_000, 1, 1, 1), 0.7, dtype=torch.float64)
    x = x0.clone()
    for t in range(60):
        x = (1 - betas[t]).sqrt() * x + betas[t].sqrt() * torch.randn_like(x)
    alpha_bar = float(torch.prod(1 - betas[:60]))
    assert model.alpha_bar[59] == pytest.approx(alpha_bar, rel=1e-5)
    assert float(x.mean()) == pytest.approx(0.7 * alpha_bar**0.5, abs=0.02)
    assert float(x.var()) == pytest.approx(1 - alpha_bar, abs=0.02)
    noise = torch.randn(3, 1, 8, 8)
    t = torch.tensor([0, 59, 99])
    noisy = model.add_noise(torch.zeros(3, 1, 8, 8), t, noise)
    assert torch.allclose(noisy, (1 - model.alpha_bar[t]).sqrt().view(-1, 1, 1, 1) * noise)
    assert model.alpha_bar[0] > 0.99 and model.alpha_bar[-1] < 0.01  # from almost clean to almost pure noise


def test_ddim_with_every_step_and_eta_1_matches_ddpm():
    torch.manual_seed(0)
    model = Diffusion(TINY, steps=50, input_shape=(1, 8, 8), ema_decay=None)
    x, eps, noise = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    for t in (49, 20, 1):
        ddpm = model.ddpm_step(x, eps, t, None, clip=False)
        # The textbook DDPM mean: (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)
        beta, ab = model.betas[t], model.alpha_bar[t]
        assert torch.allclose(ddpm, (x - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt(), atol=1e-4)
        assert torch.allclose(model.ddim_step(x, eps, t, t - 1, 1.0, None, clip=False), ddpm, atol=1e-4)
        # ... and the same noise scale: one ancestral step is one eta = 1 DDIM step.
        assert torch.allclose(model.ddim_step(x, eps, t, t - 1, 1.0, noise, clip=False),
                              model.ddpm_step(x, eps, t, noise, clip=False), atol=1e-4)


def test_both_samplers_recover_a_single_image_with_the_exact_denoiser():
    model = Diffusion(TINY, steps=50, input_shape=(1, 8, 8), ema_decay=None)
    target = torch.linspace(-0.9, 0.9, 64).view(1, 1, 8, 8)

    def exact_noise(x, t):  # for data that is one image, the noise in x_t is known exactly
        ab = model.alpha_bar[t].view(-1, 1, 1, 1)
        return (x - ab.sqrt() * target) / (1 - ab).sqrt()

    model.forward = exact_noise
    for sampler, steps in (("ddpm", 50), ("ddim", 5), ("ddim", 50)):
        assert torch.allclose(model.sample(3, sampler, steps), target.expand(3, -1, -1, -1), atol=1e-3)


@pytest.mark.slow
def test_denoiser_learns_digits_and_sampling_command_writes_a_png(tmp_path, capsys, monkeypatch):
    L.seed_everything(0)
    data = ImageDataModule(batch_size=64)
    model = Diffusion({"channels": [16, 32], "time_dim": 32}, steps=100, samples=0, ema_decay=0.9,
                      optimizer=make_optimizer("adam", lr=3e-3), input_shape=data.input_shape)
    trainer = L.Trainer(max_epochs=4, logger=False, default_root_dir=tmp_path, enable_progress_bar=False,
                        enable_model_summary=False)
    untrained = trainer.validate(model, data, verbose=False)[0]["val/loss"]
    trainer.fit(model, data)
    trained = trainer.callback_metrics["val/loss"]
    assert trained < untrained / 2, f"val/loss {untrained:.3f} -> {float(trained):.3f}"
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    from PIL import Image

    for method in ("ddim", "ddpm"):
        out = diffusion.main(["--ckpt", str(ckpt), "--out", str(tmp_path / f"{method}.png"), "--n", "16",
                              "--method", method, "--steps", "10", "--fid"])
        assert Image.open(out).size == (8 * 9 + 1, 2 * 9 + 1)  # 16 images of 8x8, 8 per row, 1-pixel gaps
    assert "FID" in capsys.readouterr().out  # its value, or why it was skipped
    command = ["--ckpt", str(ckpt), "--out", str(tmp_path / "module.png"), "--n", "8", "--steps", "5"]
    monkeypatch.setattr(sys, "argv", ["diffusion.py", *command])  # as `python -m ...problems.diffusion ...`
    runpy.run_module(diffusion.__name__, run_name="__main__")
    assert Image.open(tmp_path / "module.png").size == (8 * 9 + 1, 9 + 1)


def test_training_noise_depends_only_on_the_step():
    model = Diffusion(TINY, steps=100, input_shape=(1, 8, 8), ema_decay=None)
    images = torch.zeros(4, 1, 8, 8)
    first = model.noise_loss(images, torch.Generator().manual_seed(5))
    torch.rand(10)  # the global RNG moves on...
    assert model.noise_loss(images, torch.Generator().manual_seed(5)) == first  # ...the training noise does not


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="cosine, linear"):
        noise_schedule("quadratic", 10)
    with pytest.raises(ConfigError, match="ddim or ddpm"):
        Diffusion(sampler="euler", input_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="digits, fashion_mnist, mnist"):
        ImageDataModule("cifar100")
    with pytest.raises(ConfigError, match="input_shape"):
        Diffusion()


def test_bad_data_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match="val_size 1.5: give a fraction below 1"):
        ImageDataModule(val_size=1.5)
    with pytest.raises(ConfigError, match="batch_size 0: give a whole number >= 1"):
        ImageDataModule(batch_size=0)
    with pytest.raises(ConfigError, match="leaving none to train on"):
        ImageDataModule(val_size=5000).setup("fit")
    with pytest.raises(ConfigError) as error:  # offline, without the files: where to put them
        ImageDataModule("mnist", data_dir=str(tmp_path), download=False).setup("fit")
    assert "train-images-idx3-ubyte.gz" in str(error.value) and str(tmp_path / "MNIST" / "raw") in str(error.value)


def test_the_noise_schedule_is_copied_to_the_device_once():
    # Copied at every step, it would make the CPU wait for the GPU at every step.
    model = Diffusion(TINY, steps=50, input_shape=(1, 8, 8), ema_decay=None)
    device = torch.device("meta")  # a second device, without a GPU
    betas, alpha_bar = model.schedule_on(device)
    assert betas.device == alpha_bar.device == device
    again = model.schedule_on(device)
    assert again[0] is betas and again[1] is alpha_bar  # no new copy
