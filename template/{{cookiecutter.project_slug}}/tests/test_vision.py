"""Tests of the image-classification family: data, augmentation, nets, learning, configs.

The downloadable datasets are replaced by small fake copies written in torchvision's own
on-disk format (tests have no network).
"""

import csv
import hashlib
import pickle
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import CONFIGS, QUIET, fails_with, run, run_one_batch
from lightning.pytorch.loggers import CSVLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from {{ cookiecutter.package_name }}.config_errors import ConfigError
from {{ cookiecutter.package_name }}.image_datasets import DatasetMissing
from {{ cookiecutter.package_name }}.nets.cnn import SmallCNN
from {{ cookiecutter.package_name }}.nets.mlp import MLP
from {{ cookiecutter.package_name }}.nets.resnet import ResNet
from {{ cookiecutter.package_name }}.optim import make_optimizer
from {{ cookiecutter.package_name }}.problems.vision import DATASETS, ImageClassifier, VisionDataModule, random_crop_flip

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


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("vision*.yaml")), ids=lambda path: path.stem)
def test_every_vision_config_runs_one_batch(config, in_tmp, fake_datasets):
    run_one_batch(config)  # configs keep data in data/, where fake_datasets wrote it


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
def test_downloadable_datasets_load_from_files_on_disk(dataset, fake_datasets):
    data = VisionDataModule(dataset, data_dir=str(fake_datasets), download=False, val_size=8)
    data.setup("fit")
    images, labels = data.splits["train"]
    assert images.dtype == torch.uint8 and images.shape[1:] == DATASETS[dataset][0]
    assert len(images) + len(data.splits["val"][0]) == FAKE_TRAIN_SIZE[dataset]
    assert labels.max() < data.num_classes
    batch = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert batch[0].dtype == torch.float32 and abs(float(batch[0].mean())) < 0.5  # normalised


def test_missing_dataset_says_where_to_put_the_files(tmp_path):
    data = VisionDataModule("fashion_mnist", data_dir=str(tmp_path), download=False)
    with pytest.raises(DatasetMissing) as error:
        data.setup("fit")
    message = str(error.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert "train-images-idx3-ubyte.gz" in message and "dataset: digits" in message


def test_partial_download_is_reported_not_loaded(tmp_path):
    write_mnist_like(tmp_path, "MNIST", n_train=20, n_test=10)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetMissing, match="t10k-labels-idx1-ubyte"):
        VisionDataModule("mnist", data_dir=str(tmp_path), download=False).setup("fit")


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ConfigError, match="cifar10, digits, fashion_mnist, mnist"):
        VisionDataModule("imagenet")


def test_digits_splits_are_disjoint_and_seeded():
    first, second = VisionDataModule(), VisionDataModule()
    first.setup("fit"), second.setup("fit")
    for split in ("train", "val", "test"):
        assert torch.equal(first.splits[split][0], second.splits[split][0])
    sizes = [len(first.splits[split][1]) for split in ("train", "val", "test")]
    assert sum(sizes) == 1797 and sizes[2] == round(0.2 * 1797)
    rows = {tuple(image.flatten().tolist()) for split in ("val", "test") for image in first.splits[split][0]}
    assert not any(tuple(image.flatten().tolist()) in rows for image in first.splits["train"][0][:200])


def test_random_crop_flip_moves_pixels_but_keeps_the_image():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    assert torch.equal(random_crop_flip(images, padding=0, flip=False), images)
    torch.manual_seed(0)
    flipped = [random_crop_flip(images, padding=0, flip=True) for _ in range(20)]
    assert all(torch.equal(f[i], images[i]) or torch.equal(f[i], images[i].flip(-1)) for f in flipped for i in range(2))
    assert any(torch.equal(f[0], images[0].flip(-1)) for f in flipped)
    shifted = random_crop_flip(images, padding=2, flip=False)
    assert shifted.shape == images.shape
    # Every crop is a window of the reflection-padded image: its centre pixel is a shifted neighbour.
    padded = torch.nn.functional.pad(images, (2,) * 4, mode="reflect")
    for i in range(2):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(shifted[i], window) for window in windows)


@pytest.mark.parametrize("net, args", [("mlp", {}), ("cnn", {}), ("resnet", {"blocks": 1})])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_every_net_fits_every_image_size(net, args, shape):
    model = ImageClassifier(net, args, input_shape=shape, num_classes=10)
    assert model(torch.randn(4, *shape)).shape == (4, 10)


def test_lecture_mlp_is_784_512_512_10():
    mlp = MLP((1, 28, 28), 10, widths=[512, 512])
    sizes = [(layer.in_features, layer.out_features) for layer in mlp.modules() if isinstance(layer, torch.nn.Linear)]
    assert sizes == [(784, 512), (512, 512), (512, 10)]
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10


def test_resnet_defaults_are_resnet20_and_cnn_halves_each_block():
    convs = [m for m in ResNet((3, 32, 32), 10).modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 20  # 19 convolutions and the final linear layer
    features = SmallCNN((1, 28, 28), 10, channels=[8, 16, 32]).layers[:-3]  # up to the pooling
    assert features(torch.zeros(1, 1, 28, 28)).shape == (1, 32, 4, 4)


def test_bad_net_arguments_are_named():
    with pytest.raises(ConfigError, match="'width'.*widths"):
        ImageClassifier("mlp", {"width": [10]}, input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ConfigError, match="cnn, mlp, resnet"):
        ImageClassifier("vgg", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ConfigError, match="input_shape and num_classes"):
        ImageClassifier("mlp")


def test_overfits_one_batch_to_full_accuracy():
    L.seed_everything(0)
    data = VisionDataModule(batch_size=32)
    model = ImageClassifier("mlp", {"widths": [128]}, input_shape=data.input_shape, num_classes=10,
                            optimizer=make_optimizer("adam", lr=3e-3))
    trainer = L.Trainer(overfit_batches=1, max_epochs=60, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, data)
    assert trainer.callback_metrics["train/acc"] == 1.0
    assert trainer.callback_metrics["train/loss"] < 0.05


def fit(model, data, epochs: int, logger=False) -> L.Trainer:
    trainer = L.Trainer(max_epochs=epochs, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(model, data)
    return trainer


def logged(trainer) -> dict[str, list[float]]:
    """Every value the run's CSVLogger wrote, by metric name, in order."""
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    return {name: [float(row[name]) for row in rows if row[name]] for name in rows[0]}


def test_train_acc_is_the_accuracy_of_the_starting_weights_in_a_full_batch_epoch():
    L.seed_everything(0)
    data = VisionDataModule(batch_size=10_000)  # one batch: the whole training set, one step an epoch
    data.setup("fit")
    model = ImageClassifier(input_shape=data.input_shape, num_classes=10, optimizer=make_optimizer("sgd", lr=0.5))
    images, labels = data.on_after_batch_transfer(data.splits["train"], 0)
    correct = lambda: float((model(images).argmax(dim=-1) == labels).float().mean())  # noqa: E731
    before = correct()
    trainer = fit(model, data, 1)
    assert float(trainer.callback_metrics["train/acc"]) == pytest.approx(before, abs=1e-6)
    assert correct() != pytest.approx(before, abs=1e-3)  # the step changed the weights: the test tells them apart


def test_test_every_epoch_adds_test_curves_equal_to_testing_and_leaves_val_alone(tmp_path):
    runs = {}
    for every_epoch in (False, True):
        L.seed_everything(0)
        data = VisionDataModule(batch_size=256, eval_batch_size=100, test_every_epoch=every_epoch)
        model = ImageClassifier(net_args={"widths": [32]}, input_shape=data.input_shape, num_classes=10,
                                optimizer=make_optimizer("sgd", lr=0.1))
        trainer = fit(model, data, 2, logger=CSVLogger(tmp_path, name=str(every_epoch)))
        runs[every_epoch] = logged(trainer)
    assert len(runs[True]["test/acc"]) == len(runs[True]["test/loss"]) == len(runs[True]["val/acc"]) == 2
    tested = trainer.test(model, data, verbose=False)[0]  # the end of the run with test_every_epoch: the same weights
    assert runs[True]["test/acc"][-1] == pytest.approx(tested["test/acc"], abs=1e-6)
    assert runs[True]["test/loss"][-1] == pytest.approx(tested["test/loss"], rel=1e-5)
    assert not any(name.startswith("test/") for name in runs[False])
    for name in ("val/acc", "val/loss", "train/acc"):
        assert runs[True][name] == pytest.approx(runs[False][name], rel=1e-6)


def test_augmentation_applies_only_while_training():
    data = VisionDataModule(augment=True, crop_padding=2)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    trainer = L.Trainer(logger=False)
    data.trainer = trainer  # not training: validation batches must stay as they are
    first, second = data.on_after_batch_transfer(batch, 0)[0], data.on_after_batch_transfer(batch, 0)[0]
    assert torch.equal(first, second)
    trainer.training = True
    assert not torch.equal(data.on_after_batch_transfer(batch, 0)[0], first)


@pytest.mark.slow  # three runs of the command line: seconds
def test_a_run_resumes_with_test_every_epoch_switched_off_and_on(in_tmp):
    lecture = ["--config", str(CONFIGS / "vision_lecture.yaml"), "--trainer.limit_train_batches", "2", *QUIET]
    run("fit", *lecture, "--trainer.max_epochs", "1")  # test_every_epoch: true
    for epochs, every_epoch in (("2", "false"), ("3", "true")):
        resumed = run("fit", *lecture, "--trainer.max_epochs", epochs, "--ckpt_path", "last",
                      "--data.init_args.test_every_epoch", every_epoch)
    assert resumed.trainer.global_step == 6
    events = EventAccumulator(resumed.trainer.log_dir)
    events.Reload()
    assert [event.step for event in events.Scalars("val/acc")] == [1, 3, 5]
    assert [event.step for event in events.Scalars("test/acc")] == [1, 5]  # not in the epoch resumed without


@pytest.mark.slow
def test_lecture_config_reproduces_the_lectures_three_curves_offline(in_tmp):
    run("fit", "--config", str(CONFIGS / "vision_lecture.yaml"), *QUIET)  # no override: as a student runs it
    events = EventAccumulator(str(next((in_tmp / "runs" / "vision_lecture").glob("*/config.yaml")).parent))
    events.Reload()
    curves = {tag: [event.value for event in events.Scalars(tag)] for tag in ("train/acc", "test/acc", "train/loss")}
    assert len(curves["train/acc"]) == len(curves["test/acc"]) == 10  # one point an epoch
    assert curves["test/acc"][-1] > 0.93 and curves["train/acc"][-1] > 0.95  # measured: 0.958 and 0.973
    assert curves["train/loss"][-1] < curves["train/loss"][0] / 10
    layout = events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0]  # TensorBoard's Custom Scalars
    assert b"acc (training, validation and test)" in layout and b"^(train|val|test)/acc$" in layout


def test_lecture_sgd_at_learning_rate_10_ends_cleanly(in_tmp, capsys):
    # SGD with learning rate 10, as in the lecture: the run stops, with status 0 and a message.
    result = run("fit", "--config", str(CONFIGS / "vision.yaml"), "--optimizer", "sgd", "--optimizer.lr", "10",
                 "--trainer.max_epochs", "3", *QUIET)
    assert result is None  # train.py exits normally
    assert "Diverged: the loss diverged by step" in capsys.readouterr().err
    events = EventAccumulator(str(next((in_tmp / "runs").glob("*/*/config.yaml")).parent))
    events.Reload()
    assert events.Scalars("diverged")[-1].value == 1.0


def test_a_float_val_size_above_1_is_refused_in_one_line(in_tmp, capsys):
    # 1.5 was once read as a count: training and validating on one image, with val/acc = 1.000.
    fails_with("error: val_size 1.5: give a fraction below 1 (e.g. 0.1) or a whole number", capsys,
               "fit", "--data.init_args.val_size", "1.5")


@pytest.mark.parametrize("args, message", [
    ({"val_size": 0}, "val_size 0: give a whole number of samples >= 1"),
    ({"val_size": -3}, "val_size -3"),
    ({"val_size": 1.0}, "val_size 1.0: give a fraction below 1"),
    ({"batch_size": 0}, "batch_size 0: give a whole number >= 1"),
    ({"eval_batch_size": -1}, "eval_batch_size -1"),
    ({"augment": True, "crop_padding": 8}, "crop_padding 8: give a number of pixels from 0 to 7"),
])
def test_bad_data_settings_are_refused_before_loading(args, message):
    with pytest.raises(ConfigError, match=message):
        VisionDataModule(**args)


@pytest.mark.parametrize("val_size, message", [
    (0.0001, "val_size 0.0001 is 0 of the 1438 samples"),
    (1438, "val_size 1438 holds out 1438 of the 1438 samples, leaving none to train on"),
])
def test_val_size_must_leave_both_splits_some_images(val_size, message):
    with pytest.raises(ConfigError, match=message):
        VisionDataModule(val_size=val_size).setup("fit")
