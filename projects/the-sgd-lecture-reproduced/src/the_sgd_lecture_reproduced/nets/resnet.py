"""A ResNet for small images (CIFAR-style): a 3x3 stem, then stages of torchvision's basic
residual blocks, each stage after the first halving the image and doubling the channels.

The defaults (widths 16-32-64, 3 blocks per stage) are ResNet-20; blocks=[2, 2, 2, 2] with
widths [64, 128, 256, 512] is the ResNet-18 commonly used on CIFAR-10.
"""

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock


class ResNet(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_outputs: int,
        widths: list[int] = (16, 32, 64),  # channels of each stage
        blocks: list[int] | int = 3,  # residual blocks per stage (one number for all stages)
    ):
        super().__init__()
        blocks = [blocks] * len(widths) if isinstance(blocks, int) else list(blocks)
        layers = [
            nn.Conv2d(input_shape[0], widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        channels_in = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                downsample = None
                if stride != 1 or channels_in != width:  # match the shortcut to the block's output
                    downsample = nn.Sequential(
                        nn.Conv2d(channels_in, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
                    )
                layers.append(BasicBlock(channels_in, width, stride=stride, downsample=downsample))
                channels_in = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels_in, num_outputs)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
