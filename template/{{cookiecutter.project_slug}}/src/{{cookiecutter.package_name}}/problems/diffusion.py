"""Image generation with a denoising diffusion model (DDPM), sampled with DDPM or DDIM.

    uv run python train.py fit --config configs/diffusion.yaml                    # 8x8 digits, offline, a minute
    uv run python train.py fit --config configs/diffusion_mnist.yaml --config configs/trainer/gpu.yaml
    uv run python -m {{ cookiecutter.package_name }}.problems.diffusion --ckpt runs/diffusion/<run name>/checkpoints/last.ckpt \
        --out samples.png --method ddim --steps 50                         # a grid of samples

Training: take an image x0, a step t in 0..T-1 and Gaussian noise e; make the noisy image
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) e, where abar_t (alpha bar) falls from about 1 to
about 0 along the noise schedule (linear or cosine); the U-Net learns to predict e from
(x_t, t) with the mean squared error. Sampling starts from pure noise and removes the
predicted noise step by step: DDPM takes all T steps, each adding a little fresh noise; DDIM
takes any number of steps and, with eta = 0, adds none. The samples are drawn with an
exponential moving average (EMA) of the weights, Lightning's EMAWeightAveraging callback,
which also validates and saves the averaged weights.

Datasets (loaded by image_datasets.py, the vision family's loader too): `digits` is scikit-learn's
bundled 8x8 handwritten digits (no download); `mnist` and `fashion_mnist` come through
torchvision, downloaded into `data_dir` on first use.
"""

import argparse
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from ..config_errors import ConfigError, check_arguments, lookup
from ..data import DeviceBatches, check_holdout, check_whole_numbers, data_device, device_batches, split_indices
from ..image_datasets import TORCHVISION_NAMES, load_images
from ..module import CourseModule, OptimizerFactory, ScheduleFactory
from ..nets.unet import UNet

# name: (image shape (channels, height, width), largest pixel value)
DATASETS = {"digits": ((1, 8, 8), 16), "mnist": ((1, 28, 28), 255), "fashion_mnist": ((1, 28, 28), 255)}


class ImageDataModule(L.LightningDataModule):
    """Images only (no labels), held on the device, scaled to [-1, 1] after transfer."""

    # What the shared code of a run learns of this data (see run/families.py):
    model_links = ("input_shape",)  # handed to the model's arguments of these names
    resume_may_change = {"data_dir", "download", "eval_batch_size"}  # a resume may change these

    def __init__(
        self,
        dataset: str = "digits",  # digits, mnist or fashion_mnist
        data_dir: str = "data",  # where downloaded datasets are kept
        download: bool = True,  # download missing datasets (needs internet)
        val_size: int | float = 0.1,  # validation images taken from the training set: a fraction below 1, or a count
        split_seed: int = 0,  # seed of the train/validation split
        batch_size: int = 128,  # training mini-batch size
        eval_batch_size: int = 1000,  # batch size for validation and test
    ):
        super().__init__()
        lookup(DATASETS, dataset, "dataset")
        check_holdout("val_size", val_size)
        check_whole_numbers(batch_size=batch_size, eval_batch_size=eval_batch_size)
        self.save_hyperparameters()
        self.splits: dict[str, torch.Tensor] = {}

    @property
    def input_shape(self) -> tuple[int, int, int]:  # handed to the model by train.py
        return DATASETS[self.hparams.dataset][0]

    def prepare_data(self):
        if self.hparams.dataset in TORCHVISION_NAMES:
            load_images(self.hparams.dataset, self.hparams.data_dir, self.hparams.download)

    def setup(self, stage: str | None = None):
        if self.splits:
            return
        hp = self.hparams
        data = load_images(hp.dataset, hp.data_dir, download=False)
        images, test_images = data["train"][0], data["test"][0]  # the labels are not needed
        train, val = split_indices(len(images), hp.val_size, hp.split_seed, "val_size")
        device = data_device(self)
        self.splits = {"train": images[train].to(device), "val": images[val].to(device), "test": test_images.to(device)}
        self.shuffle_seed = int(torch.randint(0, 2**31 - 1, ()))

    def batches(self, split: str, training: bool = False) -> DeviceBatches:
        batch_size = self.hparams.batch_size if training else self.hparams.eval_batch_size
        return device_batches(self, (self.splits[split],), batch_size, training)

    def train_dataloader(self):
        return self.batches("train", training=True)

    def val_dataloader(self):
        return self.batches("val")

    def test_dataloader(self):
        return self.batches("test")

    def predict_dataloader(self):
        # One batch of batch_size test images; the model returns as many samples (see predict_step).
        images = self.splits["test"][: self.hparams.batch_size]
        return DeviceBatches((images,), batch_size=len(images))

    def on_after_batch_transfer(self, batch, dataloader_idx):
        (images,) = batch
        return images.float() / DATASETS[self.hparams.dataset][1] * 2 - 1  # pixels in [-1, 1]


def noise_schedule(name: str, steps: int) -> torch.Tensor:
    """betas (steps,): the variance of the noise added at each step."""
    if name == "linear":  # Ho et al. (2020): 1e-4 to 0.02 for 1000 steps, rescaled for other step counts
        scale = 1000 / steps
        return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
    if name == "cosine":  # Nichol & Dhariwal (2021): abar_t follows a squared cosine
        s = 0.008
        f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ConfigError(f"unknown noise schedule {name!r}: choose one of cosine, linear")


class Diffusion(CourseModule):
    """A U-Net trained to predict noise; samples with DDPM or DDIM; logs sample grids."""

    metrics_higher_is_better = ()  # its only metric, the noise-prediction loss, is best at its minimum

    def __init__(
        self,
        net_args: dict[str, Any] | None = None,  # U-Net sizes, e.g. {channels: [32, 64]} (nets/unet.py)
        steps: int = 1000,  # T, the number of noise levels of the forward process
        schedule: str = "cosine",  # noise schedule: cosine or linear
        sampler: str = "ddim",  # how the logged samples are drawn: ddim or ddpm
        sample_steps: int = 50,  # DDIM steps of the logged samples (DDPM always takes all T)
        eta: float = 0.0,  # DDIM's fresh noise: 0 deterministic, 1 as much as DDPM
        samples: int = 64,  # images in each logged sample grid (0: no grids)
        sample_every: int = 1,  # log a grid every this many validations
        ema_decay: float | None = 0.995,  # EMA of the weights used to validate and sample (null: no EMA)
        optimizer: OptimizerFactory | None = None,  # --optimizer NAME (see optim/choices.py); None: adam
        scheduler: ScheduleFactory | None = None,  # --scheduler NAME (see optim/schedules.py); None: constant
        param_groups: list[dict[str, Any]] | None = None,  # per-parameter settings, e.g. [{match: "net.*.bias", lr: 0.1}]
        input_shape: tuple[int, int, int] | None = None,  # filled in from the data by train.py
    ):
        super().__init__(optimizer, scheduler, param_groups)
        self.save_hyperparameters()
        if input_shape is None:
            raise ConfigError(
                "Diffusion needs input_shape, e.g. Diffusion(input_shape=(1, 28, 28)); train.py takes it from the data"
            )
        if sampler not in ("ddim", "ddpm"):
            raise ConfigError(f"unknown sampler {sampler!r}: choose ddim or ddpm")
        check_arguments(UNet, net_args or {}, "net unet", skip=("input_shape",))
        self.net = UNet(tuple(input_shape), **(net_args or {}))
        self.betas = noise_schedule(schedule, steps).float()  # plain tensors, not weights: the EMA leaves them alone
        self.alpha_bar = torch.cumprod(1 - self.betas.double(), 0).float()
        # Noise of each training step comes from (noise_seed, step): a resumed run draws the same.
        self.noise_seed = int(torch.randint(0, 2**31 - 1, ()))

    def configure_callbacks(self):
        from lightning.pytorch.callbacks import EMAWeightAveraging

        return [EMAWeightAveraging(decay=self.hparams.ema_decay)] if self.hparams.ema_decay else []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t)

    def schedule_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """betas and alpha_bar on `device`, copied there once: a copy from the CPU at every step
        would make the CPU wait for the GPU's queued work at every step."""
        if self.alpha_bar.device != device:
            self.betas, self.alpha_bar = self.betas.to(device), self.alpha_bar.to(device)
        return self.betas, self.alpha_bar

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise: the forward process in closed form."""
        alpha_bar = self.schedule_on(x0.device)[1][t].view(-1, 1, 1, 1)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise

    def loss(self, batch) -> torch.Tensor:
        """The training objective on one batch of images (used by the diagnostics)."""
        return self.noise_loss(batch, None)

    def noise_loss(self, x0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        t = torch.randint(0, self.hparams.steps, (len(x0),), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        return F.mse_loss(self(self.add_noise(x0, t, noise), t), noise)

    def training_step(self, images, batch_idx):
        seed = (self.noise_seed + self.global_step) * 1_009 + self.global_rank
        loss = self.noise_loss(images, torch.Generator(images.device).manual_seed(seed))
        self.log_step("train/loss", loss, prog_bar=True)  # on logging steps only: see module.py
        return loss

    def validation_step(self, images, batch_idx):
        # The same steps and noise at every validation: the curve shows the model, not the draw.
        loss = self.noise_loss(images, torch.Generator(images.device).manual_seed(batch_idx))
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)

    def test_step(self, images, batch_idx):
        self.log("test/loss", self.noise_loss(images, torch.Generator(images.device).manual_seed(batch_idx)), sync_dist=True)

    def predict_step(self, images, batch_idx):
        """`uv run python train.py predict`: as many samples (in [-1, 1]) as the batch has images."""
        hp = self.hparams
        return self.sample(len(images), hp.sampler, hp.sample_steps, hp.eta, seed=batch_idx)

    def on_validation_epoch_end(self):
        hp, trainer = self.hparams, self.trainer
        if hp.samples <= 0 or trainer.sanity_checking or trainer.fast_dev_run or (trainer.current_epoch + 1) % hp.sample_every:
            return  # (fast_dev_run logs nothing: no grid to draw)
        experiment = getattr(self.logger, "experiment", None)
        if hasattr(experiment, "add_image"):  # TensorBoard (a no-op stand-in on GPUs other than the first)
            from torchvision.utils import make_grid

            images = self.sample(hp.samples, hp.sampler, hp.sample_steps, hp.eta)
            experiment.add_image("samples", make_grid((images + 1) / 2, nrow=8, padding=1), self.global_step)

    @torch.no_grad()
    def ddpm_step(self, x: torch.Tensor, eps: torch.Tensor, t: int, noise: torch.Tensor | None, clip: bool) -> torch.Tensor:
        """One ancestral step x_t -> x_(t-1): the mean of q(x_(t-1) | x_t, x0) at the predicted x0,
        plus noise of that distribution's variance beta_t (1 - abar_(t-1)) / (1 - abar_t)."""
        betas, alpha_bar = self.schedule_on(x.device)
        beta, ab = betas[t], alpha_bar[t]
        ab_prev = alpha_bar[t - 1] if t > 0 else torch.ones_like(ab)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
        mean = (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x) / (1 - ab)
        if t == 0 or noise is None:
            return mean
        return mean + (beta * (1 - ab_prev) / (1 - ab)).sqrt() * noise

    @torch.no_grad()
    def ddim_step(self, x: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int, eta: float,
                  noise: torch.Tensor | None, clip: bool) -> torch.Tensor:
        """One DDIM step x_t -> x_(t_prev) (Song et al. 2021); t_prev = -1 means the clean image."""
        alpha_bar = self.schedule_on(x.device)[1]
        ab = alpha_bar[t]
        ab_prev = alpha_bar[t_prev] if t_prev >= 0 else torch.ones_like(ab)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        return x if noise is None else x + sigma * noise

    @torch.no_grad()
    def sample(self, n: int, sampler: str = "ddim", steps: int = 50, eta: float = 0.0, seed: int = 0,
               clip: bool = True) -> torch.Tensor:
        """n images in [-1, 1] drawn from pure noise (the same seed gives the same images)."""
        generator = torch.Generator(self.device).manual_seed(seed)  # leaves the global RNG alone
        shape = (n, *self.hparams.input_shape)
        x = torch.randn(shape, device=self.device, generator=generator)
        T = self.hparams.steps
        if sampler == "ddpm":
            times = list(range(T - 1, -1, -1))
        else:
            times = sorted(set(torch.linspace(0, T - 1, max(1, min(steps, T))).round().long().tolist()), reverse=True)
        was_training = self.training
        self.eval()
        for i, t in enumerate(times):
            eps = self(x, torch.full((n,), t, device=self.device))
            noise = torch.randn(shape, device=self.device, generator=generator)
            if sampler == "ddpm":
                x = self.ddpm_step(x, eps, t, noise, clip)
            else:
                t_prev = times[i + 1] if i + 1 < len(times) else -1
                x = self.ddim_step(x, eps, t, t_prev, eta, noise, clip)
        self.train(was_training)
        return x.clamp(-1, 1)


def main(args: list[str] | None = None) -> Path:
    """Sample a grid of images from a checkpoint into a PNG file; returns its path."""
    parser = argparse.ArgumentParser(description="Sample images from a trained diffusion checkpoint.")
    parser.add_argument("--ckpt", required=True, help="a .ckpt file, e.g. runs/diffusion/<run name>/checkpoints/last.ckpt")
    parser.add_argument("--out", default="samples.png", help="PNG file to write")
    parser.add_argument("--n", type=int, default=64, help="number of images (8 per row)")
    parser.add_argument("--method", choices=["ddim", "ddpm"], default="ddim", help="sampler")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (DDPM takes all T)")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM noise: 0 deterministic, 1 like DDPM")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--fid", action="store_true", help="also compute FID against the test images (needs torch-fidelity)")
    options = parser.parse_args(args)
    from torchvision.utils import save_image

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # The checkpoint's weights are the EMA weights when the run used EMA (see EMAWeightAveraging).
    model = Diffusion.load_from_checkpoint(options.ckpt, map_location=device)
    images = model.sample(options.n, options.method, options.steps, options.eta, options.seed)
    out = Path(options.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image((images + 1) / 2, out, nrow=8, padding=1)
    print(f"{options.n} samples written to {out}")
    if options.fid:
        print(fid_note(model, images, options.ckpt))
    return out


def fid_note(model: Diffusion, images: torch.Tensor, ckpt: str) -> str:
    """FID of `images` against the dataset's test images, or why it cannot be computed here."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance

        fid = FrechetInceptionDistance(normalize=True).to(images.device)
    except (ImportError, ModuleNotFoundError, RuntimeError, OSError) as error:
        return (f"FID skipped: {error}. It needs `uv add 'torchmetrics[image]'` (torch-fidelity) and one download "
                "of the Inception weights (internet access).")
    config = torch.load(ckpt, map_location="cpu", weights_only=False).get("datamodule_hyper_parameters", {})
    data = ImageDataModule(**config) if config else ImageDataModule()
    data.setup("test")
    real = data.on_after_batch_transfer((data.splits["test"][: len(images)].to(images.device),), 0)
    rgb = lambda x: ((x + 1) / 2).expand(-1, 3, -1, -1)  # noqa: E731  grey to RGB in [0, 1]
    fid.update(rgb(real), real=True)
    fid.update(rgb(images), real=False)
    return f"FID against {len(real)} test images: {float(fid.compute()):.2f} (few images: biased upwards)"


if __name__ == "__main__":
    # Run through the package's copy of this module: a checkpoint names its class as
    # {{ cookiecutter.package_name }}.problems.diffusion..., not __main__..., and Lightning loads only that one.
    import importlib

    importlib.import_module(__spec__.name).main()
