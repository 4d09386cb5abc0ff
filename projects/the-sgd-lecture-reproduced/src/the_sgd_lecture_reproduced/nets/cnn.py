"""A small convolutional network: blocks of conv3x3 -> batch norm -> ReLU -> 2x2 max pool,
then global average pooling and a linear classifier. Works for 8x8 up to 32x32 images."""

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_outputs: int,
        channels: list[int] = (32, 64),  # output channels of each block; each halves the image size
    ):
        super().__init__()
        layers, channels_in = [], input_shape[0]
        for channels_out in channels:
            layers += [
                nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            channels_in = channels_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels_in, num_outputs)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
