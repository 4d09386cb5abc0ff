"""Shared test helpers: run the command line in-process, and write small fake copies of the
downloadable datasets in torchvision's own on-disk format (no network in tests).

Run the tests with `pytest` (about two minutes on a laptop CPU).
"""

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package_name }}.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
EXPERIMENTS = sorted(path for path in CONFIGS.glob("*.yaml"))
PRESETS = sorted(CONFIGS.glob("trainer/*.yaml"))
DEFAULT = CONFIGS / "{{ 'vision' if cookiecutter.problem_family == 'all' else cookiecutter.problem_family }}.yaml"
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none is visible")


def run(*args: str):
    """Run `python train.py ...` in this process and return the CLI (its .trainer, .model, ...)."""
    return main(list(args), default_config=DEFAULT)


# Fake datasets are just large enough for the validation sizes the configs hold out.
FAKE_TRAIN_SIZE = {"mnist": 10_050, "fashion_mnist": 10_050, "cifar10": 5 * 1_010}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` (uint8) in the IDX format of the MNIST files."""
    magic = {1: 2049, 3: 2051}[array.ndim]  # label files, image files
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_like(data_dir: Path, class_name: str, n_train: int = 10_050, n_test: int = 50) -> None:
    """Fake MNIST or FashionMNIST files where torchvision looks for them (data_dir/<class>/raw)."""
    raw = data_dir / class_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def write_cifar10(data_dir: Path, monkeypatch, n_per_batch: int = 1_010) -> None:
    """Fake CIFAR-10 python pickles, with torchvision's expected MD5 sums set to theirs."""
    import torchvision

    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    dataset = torchvision.datasets.CIFAR10
    checksums = {}
    for name, _ in dataset.train_list + dataset.test_list:
        batch = {"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 "labels": list(np.arange(n_per_batch) % 10)}
        (folder / name).write_bytes(pickle.dumps(batch))
        checksums[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    meta_md5 = hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest()
    monkeypatch.setattr(dataset, "train_list", [[n, checksums[n]] for n, _ in dataset.train_list])
    monkeypatch.setattr(dataset, "test_list", [[n, checksums[n]] for n, _ in dataset.test_list])
    monkeypatch.setattr(dataset, "meta", {**dataset.meta, "md5": meta_md5})


@pytest.fixture
def fake_datasets(tmp_path, monkeypatch) -> Path:
    """A data folder holding small fake copies of every downloadable dataset."""
    data_dir = tmp_path / "data"
    write_mnist_like(data_dir, "MNIST")
    write_mnist_like(data_dir, "FashionMNIST")
    write_cifar10(data_dir, monkeypatch)
    return data_dir


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder, so runs/ and data/ are written there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
