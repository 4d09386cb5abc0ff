"""A multilayer perceptron: flatten the input, then Linear -> activation (-> dropout) layers.

The lecture's Fashion-MNIST network 784-512-512-10 is MLP((1, 28, 28), 10, widths=[512, 512]).
"""

import math

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class MLP(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        widths: list[int] = (256, 256),  # sizes of the hidden layers; [] gives a linear model
        activation: str = "relu",  # relu, gelu, tanh or sigmoid
        dropout: float = 0.0,  # probability of zeroing a hidden unit while training
    ):
        super().__init__()
        layers = [nn.Flatten()]
        width_in = math.prod(input_shape)
        for width in widths:
            layers += [nn.Linear(width_in, width), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width_in = width
        layers.append(nn.Linear(width_in, num_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
