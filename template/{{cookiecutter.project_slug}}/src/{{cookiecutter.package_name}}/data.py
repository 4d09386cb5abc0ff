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

import torch
from torch.utils.data import DistributedSampler

from .registry import ConfigError


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
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tuple(tensors)
        self.sampler = DistributedSampler(
            range(len(self.tensors[0])), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
        )
        self.batch_size = min(batch_size, len(self.sampler))  # larger than the data: full batch
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


def split_indices(n: int, holdout: int | float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle range(n) with `seed` and cut off `holdout` indices: a fraction of n if below 1,
    else a count. Returns (kept, held_out)."""
    size = round(holdout * n) if holdout < 1 else int(holdout)
    if not 0 < size < n:
        raise ConfigError(f"a holdout of {holdout} leaves no data on one side of the split of {n} samples")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[size:], order[:size]
