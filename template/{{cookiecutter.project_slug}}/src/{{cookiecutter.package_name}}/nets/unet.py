"""A small U-Net that predicts the noise in a noisy image, given the noise level (the step t).

Down path: at each level a residual block, then a stride-2 convolution halves the image; a
middle block; up path: upsample, concatenate the skip connection of the same level, residual
block. The step t enters every residual block through a sinusoidal embedding and an MLP.
Works for any image size (8x8 digits, 28x28 MNIST, 32x32 CIFAR).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sines and cosines of t at geometrically spaced frequencies, as in the transformer."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, channels_in), channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.time = nn.Linear(time_dim, channels_out)
        self.norm2 = nn.GroupNorm(min(groups, channels_out), channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.skip = nn.Conv2d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(time)[:, :, None, None]  # the noise level shifts every channel
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, int, int],
        channels: list[int] = (32, 64),  # channels at each resolution; each further level halves the image
        time_dim: int = 128,  # size of the noise-level embedding
        groups: int = 8,  # groups of the GroupNorm layers
    ):
        super().__init__()
        image_channels = input_shape[0]
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(image_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        channels_in = channels[0]
        for i, width in enumerate(channels):
            self.down.append(ResBlock(channels_in, width, time_dim, groups))
            last = i == len(channels) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(width, width, 3, stride=2, padding=1))
            channels_in = width
        self.middle = ResBlock(channels_in, channels_in, time_dim, groups)
        self.up = nn.ModuleList()
        for width in reversed(channels):
            self.up.append(ResBlock(channels_in + width, width, time_dim, groups))
            channels_in = width
        self.out = nn.Sequential(nn.GroupNorm(min(groups, channels_in), channels_in), nn.SiLU(),
                                 nn.Conv2d(channels_in, image_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # start by predicting zero noise
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise (same shape as x) for images x (B, C, H, W) at integer steps t (B,)."""
        time = self.time_mlp(timestep_embedding(t, self.time_dim))
        h = self.stem(x)
        skips = []
        for block, downsample in zip(self.down, self.downsample, strict=True):
            h = block(h, time)
            skips.append(h)
            h = downsample(h)
        h = self.middle(h, time)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:  # back to the skip's size (7 -> 14 -> 28 for odd sizes too)
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), time)
        return self.out(h)
