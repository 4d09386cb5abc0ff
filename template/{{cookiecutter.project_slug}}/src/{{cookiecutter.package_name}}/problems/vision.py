"""Image classification: small image datasets held on the device, and a classifier module.

    uv run python train.py fit                                              # 8x8 digits, offline, seconds
    uv run python train.py fit --config configs/vision_lecture.yaml         # the lecture's MLP, on the digits
    uv run python train.py fit --config configs/vision_fashion_mnist.yaml   # the same on Fashion-MNIST
    uv run python train.py fit --config configs/vision_cifar10.yaml --config configs/trainer/gpu.yaml

Datasets (loaded by image_datasets.py, the diffusion family's loader too): `digits` is scikit-learn's
bundled 8x8 handwritten digits (no download); `mnist`, `fashion_mnist` and `cifar10` come
through torchvision, downloaded into `data_dir` on first use (torchvision checks their MD5 sums).

Metrics: `train/loss`, `train/acc` (over each epoch, as the weights move), `val/loss`, `val/acc`;
with the data's `test_every_epoch: true` also `test/loss` and `test/acc` at every validation:
the lecture's three curves (training loss, training accuracy, test accuracy).
"""

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from ..config_errors import ConfigError, check_arguments, lookup
from ..data import DeviceBatches, check_holdout, check_whole_numbers, data_device, device_batches, split_indices
from ..image_datasets import TORCHVISION_NAMES, load_images
from ..module import CourseModule, OptimizerFactory, ScheduleFactory
from ..nets.cnn import SmallCNN
from ..nets.mlp import MLP
from ..nets.resnet import ResNet

# name: (input shape (channels, height, width), number of classes)
DATASETS = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}
NETS = {"mlp": MLP, "cnn": SmallCNN, "resnet": ResNet}


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool) -> torch.Tensor:
    """Shift each image of the batch by up to `padding` pixels (reflection-padded) and, if
    `flip`, mirror it left-right with probability 1/2. Runs on the batch's device."""
    n, channels, height, width = images.shape
    device = images.device
    if padding > 0:
        padded = F.pad(images, (padding,) * 4, mode="reflect")
        dy = torch.randint(0, 2 * padding + 1, (n, 1), device=device)
        dx = torch.randint(0, 2 * padding + 1, (n, 1), device=device)
        rows = (torch.arange(height, device=device) + dy)[:, None, :, None]  # n, 1, H, 1
        cols = (torch.arange(width, device=device) + dx)[:, None, None, :]  # n, 1, 1, W
        batch = torch.arange(n, device=device)[:, None, None, None]
        channel = torch.arange(channels, device=device)[None, :, None, None]
        images = padded[batch, channel, rows, cols]
    if flip:
        mirrored = torch.rand(n, 1, 1, 1, device=device) < 0.5
        images = torch.where(mirrored, images.flip(-1), images)
    return images


class VisionDataModule(L.LightningDataModule):
    """Train, validation and test splits of a small image dataset, held on the device."""

    # What the shared code of a run learns of this data (see run/families.py):
    model_links = ("input_shape", "num_classes")  # handed to the model's arguments of these names
    resume_may_change = {"data_dir", "download", "eval_batch_size", "test_every_epoch"}  # a resume may change these

    def __init__(
        self,
        dataset: str = "digits",  # digits, mnist, fashion_mnist or cifar10
        data_dir: str = "data",  # where downloaded datasets are kept
        download: bool = True,  # download missing datasets (needs internet)
        val_size: int | float = 0.1,  # validation images taken from the training set: a fraction below 1, or a count
        split_seed: int = 0,  # seed of the train/validation split (fixed, so runs are comparable)
        batch_size: int = 128,  # training mini-batch size
        eval_batch_size: int = 1000,  # batch size for validation and test (no gradients: can be larger)
        augment: bool = False,  # random crops (and flips, see flip) of training images
        crop_padding: int = 4,  # largest shift of a random crop, in pixels
        flip: bool = True,  # mirror training images left-right when augmenting (not for digits!)
        test_every_epoch: bool = False,  # also test at every validation of fit: test/ curves (choose settings on val/ only)
    ):
        super().__init__()
        (_, height, width), _ = lookup(DATASETS, dataset, "dataset")
        check_holdout("val_size", val_size)
        check_whole_numbers(batch_size=batch_size, eval_batch_size=eval_batch_size)
        if augment and not 0 <= crop_padding < min(height, width):
            raise ConfigError(f"crop_padding {crop_padding}: give a number of pixels from 0 to {min(height, width) - 1} "
                              f"for the {height}x{width} images of {dataset}")
        self.save_hyperparameters()
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return DATASETS[self.hparams.dataset][0]

    @property
    def num_classes(self) -> int:
        return DATASETS[self.hparams.dataset][1]

    def prepare_data(self):
        if self.hparams.dataset in TORCHVISION_NAMES:  # download once, on one process per machine
            load_images(self.hparams.dataset, self.hparams.data_dir, self.hparams.download)

    def setup(self, stage: str | None = None):
        if self.splits:
            return
        hp = self.hparams
        data = load_images(hp.dataset, hp.data_dir, download=False)
        train_images, train_labels = data["train"]
        train, val = split_indices(len(train_labels), hp.val_size, hp.split_seed, "val_size")
        device = data_device(self)
        self.splits = {
            "train": (train_images[train].to(device), train_labels[train].to(device)),
            "val": (train_images[val].to(device), train_labels[val].to(device)),
            "test": (data["test"][0].to(device), data["test"][1].to(device)),
        }
        # Normalise with the training images' per-channel statistics.
        pixels = self.splits["train"][0].float()
        self.mean = pixels.mean(dim=(0, 2, 3), keepdim=True)
        self.std = pixels.std(dim=(0, 2, 3), keepdim=True)
        # Shuffling order: drawn from the global seed (seed_everything), so runs with different
        # seeds see different orders while the split above stays the same.
        self.shuffle_seed = int(torch.randint(0, 2**31 - 1, ()))

    def batches(self, split: str, training: bool = False) -> DeviceBatches:
        batch_size = self.hparams.batch_size if training else self.hparams.eval_batch_size
        return device_batches(self, self.splits[split], batch_size, training)

    def train_dataloader(self):
        return self.batches("train", training=True)

    def val_dataloader(self):
        if self.hparams.test_every_epoch and self.trainer and self.trainer.state.fn == "fit":
            return [self.batches("val"), self.batches("test")]  # the module logs the second under test/
        return self.batches("val")

    def test_dataloader(self):
        return self.batches("test")

    def predict_dataloader(self):
        return self.batches("test")

    def on_after_batch_transfer(self, batch, dataloader_idx):
        images, labels = batch
        images = (images.float() - self.mean) / self.std
        if self.hparams.augment and self.trainer and self.trainer.training:
            images = random_crop_flip(images, self.hparams.crop_padding, self.hparams.flip)
        return images, labels


class ImageClassifier(CourseModule):
    """A network from NETS trained with cross-entropy; logs loss and accuracy."""

    metrics_higher_is_better = ("acc",)  # accuracy; the loss is best at its minimum

    def __init__(
        self,
        net: str = "mlp",  # mlp, cnn or resnet (see src/<package>/nets/)
        net_args: dict[str, Any] | None = None,  # arguments of the net, e.g. {widths: [512, 512]} for the MLP
        label_smoothing: float = 0.0,  # spread this much target probability over all classes
        optimizer: OptimizerFactory | None = None,  # --optimizer NAME (see optim/choices.py); None: adam
        scheduler: ScheduleFactory | None = None,  # --scheduler NAME (see optim/schedules.py); None: constant
        param_groups: list[dict[str, Any]] | None = None,  # per-parameter settings, e.g. [{match: "net.*.bias", lr: 0.1}]
        input_shape: tuple[int, int, int] | None = None,  # filled in from the data by train.py
        num_classes: int | None = None,  # filled in from the data by train.py
    ):
        super().__init__(optimizer, scheduler, param_groups)
        self.save_hyperparameters()
        if input_shape is None or num_classes is None:
            raise ConfigError(
                "ImageClassifier needs input_shape and num_classes. train.py takes them from the data; "
                "in your own code pass them, e.g. ImageClassifier(input_shape=(1, 28, 28), num_classes=10)"
            )
        net_class = lookup(NETS, net, "net")
        check_arguments(net_class, net_args or {}, f"net {net!r}", skip=("input_shape", "num_outputs"))
        self.net = net_class(tuple(input_shape), num_classes, **(net_args or {}))
        self.train_loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # average="micro": the fraction of images classified correctly
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def loss(self, batch) -> torch.Tensor:
        """The training objective on one batch (used by the diagnostics)."""
        images, labels = batch
        return self.train_loss(self(images), labels)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        logits = self(images)
        loss = self.train_loss(logits, labels)
        self.log_step("train/loss", loss, prog_bar=True)  # on logging steps only: see module.py
        self.log_epoch_mean("train/acc", (logits.argmax(dim=-1) == labels).sum(), len(labels))
        return loss

    def evaluate(self, batch, stage: str, accuracy: MulticlassAccuracy, prog_bar: bool = True):
        images, labels = batch
        logits = self(images)
        accuracy(logits, labels)
        # Plain cross-entropy (no label smoothing): comparable across runs and settings.
        # add_dataloader_idx=False: test/acc stays test/acc when validation also runs the test split;
        # sync_dist: the mean over every process's images (under DDP; summed once, at the epoch's end).
        loss = F.cross_entropy(logits, labels)
        self.log(f"{stage}/loss", loss, prog_bar=prog_bar, add_dataloader_idx=False, sync_dist=True)
        self.log(f"{stage}/acc", accuracy, prog_bar=prog_bar, add_dataloader_idx=False)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        if dataloader_idx == 0:
            self.evaluate(batch, "val", self.val_acc)
        else:  # the test split, with data.test_every_epoch: test/ curves, kept out of the progress bar
            self.evaluate(batch, "test", self.test_acc, prog_bar=False)

    def test_step(self, batch, batch_idx):
        self.evaluate(batch, "test", self.test_acc)

    def predict_step(self, batch, batch_idx):
        images, _ = batch
        return self(images).argmax(dim=-1)
