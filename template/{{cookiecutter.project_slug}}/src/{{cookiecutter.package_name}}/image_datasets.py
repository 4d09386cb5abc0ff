"""The image datasets of the vision and diffusion families, as uint8 tensors: one loader for both.

    from {{ cookiecutter.package_name }}.image_datasets import load_images
    load_images("digits", "data", download=False)["train"]  # (images (N, 1, 8, 8), labels (N,))

`digits` is scikit-learn's bundled 8x8 handwritten digits (no download, grey levels 0..16,
a fixed 20% cut off as its test split); `mnist`, `fashion_mnist` and `cifar10` come through
torchvision, downloaded into `data_dir` on first use (torchvision checks their MD5 sums).
Offline without the files, DatasetMissing says which files to copy where.
"""

from pathlib import Path

import torch

from .config_errors import ConfigError
from .data import split_indices

TORCHVISION_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
DIGITS_TEST_FRACTION = 0.2  # digits has no official test split: a fixed one is cut off


class DatasetMissing(ConfigError):
    """A dataset that is neither on disk nor downloadable from here."""


def load_images(name: str, data_dir: str, download: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": (images, labels), "test": (images, labels)}: uint8 images (N, C, H, W)."""
    if name == "digits":
        from sklearn.datasets import load_digits  # imported here: only digits needs scikit-learn

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.uint8)[:, None]  # grey levels 0..16
        labels = torch.tensor(digits.target, dtype=torch.long)
        train, test = split_indices(len(labels), DIGITS_TEST_FRACTION, seed=0)
        return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}
    return {split: load_torchvision(name, data_dir, split == "train", download) for split in ("train", "test")}


def load_torchvision(name: str, data_dir: str, train: bool, download: bool):
    """One split of a torchvision dataset as (uint8 images (N, C, H, W), labels)."""
    import torchvision  # imported here: slow to import, and digits does not need it

    dataset_class = getattr(torchvision.datasets, TORCHVISION_NAMES[name])
    try:
        dataset = dataset_class(data_dir, train=train, download=download)
    except (RuntimeError, OSError) as error:  # not on disk, no network, or a bad checksum
        raise DatasetMissing(missing_message(name, dataset_class, data_dir, error)) from error
    images = torch.as_tensor(dataset.data)
    images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2)  # to N, C, H, W
    return images.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.long)


def missing_message(name: str, dataset_class, data_dir: str, error: Exception) -> str:
    """Where the dataset's files must go, for someone without internet access."""
    if hasattr(dataset_class, "resources"):  # MNIST and Fashion-MNIST
        folder = Path(data_dir) / dataset_class.__name__ / "raw"
        files = [Path(url).name for url, _ in dataset_class.resources]
    else:  # CIFAR-10
        folder = Path(data_dir) / dataset_class.base_folder
        files = [file for file, _ in dataset_class.train_list + dataset_class.test_list]
    return (
        f"could not load {name} ({error}). "
        f"With internet access, keep data.download: true and run again to download it. "
        f"Offline, copy these files from a machine that has them into {folder}/: {', '.join(files)}"
        + (f" (from {dataset_class.url})" if hasattr(dataset_class, "url") else "")
        + ". Or train on dataset: digits, which ships with scikit-learn and needs no download."
    )
