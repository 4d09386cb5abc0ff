"""Batching for datasets small enough to live in device memory.

The course's datasets (digits, MNIST, CIFAR-10, tabular data, a text corpus) fit on any GPU.
Holding them there as tensors and cutting mini-batches by indexing avoids a CPU DataLoader
that collates samples one by one and copies every batch to the GPU, which for small models is
often slower than the model itself.

    batches = DeviceBatches((x, y), batch_size=128, shuffle=True, seed=0)
    for xb, yb in batches: ...
"""

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DistributedSampler

from .config_errors import ConfigError


class DeviceBatches:
    """Mini-batches of `tensors` (which share their first dimension) made by indexing.

    Lightning accepts any iterable with a length as a dataloader. Before each epoch it calls
    `self.sampler.set_epoch(epoch)`, so the shuffled order depends only on (seed, epoch): a
    resumed run sees the same batches as an uninterrupted one. Under DDP each process takes
    its own shard of the indices (rank, world_size), as with a DistributedSampler.
    """

    batch_sampler = None  # Lightning inspects `sampler` and `batch_sampler` as on a DataLoader

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise ConfigError(f"batch_size {batch_size}: give a whole number >= 1")
        self.tensors = tuple(tensors)
        self.sampler = DistributedSampler(
            range(len(self.tensors[0])), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
        )
        # Larger than the data: one full batch (an empty split, such as test_size 0, has no batches).
        self.batch_size = max(1, min(batch_size, len(self.sampler)))
        self.drop_last = drop_last

    def __len__(self) -> int:
        divide = math.floor if self.drop_last else math.ceil
        return divide(len(self.sampler) / self.batch_size)

    def __iter__(self):
        order = torch.tensor(list(self.sampler), device=self.tensors[0].device)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(tensor[index] for tensor in self.tensors)


class SeededDraws:
    """`length` batches per epoch, each made by `draw(generator)`: for data drawn afresh at every
    step (random text windows, noise samples) rather than cut from a fixed set.

    The generator is seeded by (seed, epoch, rank). Lightning calls `sampler.set_epoch(epoch)`
    before each epoch, so a resumed run draws the same batches as an uninterrupted one, and
    each DDP process draws its own.
    """

    batch_sampler = None  # Lightning inspects `sampler` and `batch_sampler` as on a DataLoader

    def __init__(self, draw, length: int, seed: int = 0, rank: int = 0):
        self.draw, self.length, self.seed, self.rank, self.epoch = draw, length, seed, rank, 0
        self.sampler = self  # what Lightning calls set_epoch on

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_009 + self.rank)
        for _ in range(self.length):
            yield self.draw(generator)


def data_device(datamodule) -> torch.device:
    """Where a DataModule's tensors belong: its trainer's device (the CPU without a trainer)."""
    return datamodule.trainer.strategy.root_device if datamodule.trainer else torch.device("cpu")


def device_batches(datamodule, tensors: Sequence[torch.Tensor], batch_size: int, training: bool) -> DeviceBatches:
    """DeviceBatches of a DataModule's split: shuffled by its `shuffle_seed` when training (but not
    under overfit_batches, which must see the same batch every epoch), sharded across the
    trainer's processes."""
    trainer = datamodule.trainer
    return DeviceBatches(
        tensors,
        batch_size=batch_size,
        shuffle=training and not (trainer and trainer.overfit_batches),
        seed=datamodule.shuffle_seed,
        rank=trainer.global_rank if trainer else 0,
        world_size=trainer.world_size if trainer else 1,
    )


def check_whole_numbers(minimum: int = 1, **values) -> None:
    """Raise a ConfigError naming the first of `values` (name=value) that is not a whole number
    >= `minimum`, e.g. check_whole_numbers(batch_size=0) -> "batch_size 0: give a whole number >= 1"."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} {value!r}: give a whole number >= {minimum}")


def check_holdout(name: str, holdout, minimum: int = 1) -> None:
    """Raise a ConfigError unless `holdout` (the setting `name`, such as val_size) is a fraction
    in [0, 1) or a whole number of samples >= `minimum`. A float is always a fraction: 1.5 is
    neither 150% nor 1 sample, but a mistake."""
    what = "give a fraction below 1 (e.g. 0.1) or a whole number of samples (e.g. 500)"
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)):
        raise ConfigError(f"{name} {holdout!r}: {what}")
    if isinstance(holdout, float) and not 0 <= holdout < 1:  # also catches nan
        raise ConfigError(f"{name} {holdout}: {what}")
    if isinstance(holdout, int) and holdout < minimum:
        raise ConfigError(f"{name} {holdout}: give a whole number of samples >= {minimum} (e.g. 500) "
                          "or a fraction below 1 (e.g. 0.1)")


def holdout_size(name: str, holdout, n: int, minimum: int = 1) -> int:
    """How many of `n` samples `holdout` means: round(holdout * n) for a fraction, else the count.
    Raises a ConfigError if it is not a valid holdout (see check_holdout) or rounds below `minimum`."""
    check_holdout(name, holdout, minimum)
    size = round(holdout * n) if isinstance(holdout, float) else holdout
    if size < minimum:
        raise ConfigError(
            f"{name} {holdout} is {size} of the {n} samples, and at least {minimum} is needed: "
            f"give a larger fraction or a count (e.g. {name} {minimum})"
        )
    return size


def split_indices(n: int, holdout: int | float, seed: int, name: str = "holdout",
                  minimum: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle range(n) with `seed` and cut off `holdout` indices: a fraction of n if a float,
    else a count (see holdout_size; `name` is the setting, for the error message). At least one
    index is kept. Returns (kept, held_out)."""
    size = holdout_size(name, holdout, n, minimum)
    if size >= n:
        raise ConfigError(
            f"{name} {holdout} holds out {size} of the {n} samples, leaving none to train on: "
            f"give a smaller fraction (e.g. 0.1) or count (e.g. {max(1, n // 10)})"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[size:], order[:size]


def read_utf8(path: Path) -> str:
    """The text of the file at `path`; a ConfigError saying where it is not UTF-8 and how to
    convert it (files saved by older Windows programs are often Latin-1 or cp1252)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        converted = Path(path).with_name(f"{Path(path).stem}_utf8{Path(path).suffix}")
        raise ConfigError(
            f"{path} is not UTF-8 text: byte 0x{data[error.start]:02x} at offset {error.start} (line {line}). "
            f"Save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > {converted}`, and use {converted}"
        ) from None
