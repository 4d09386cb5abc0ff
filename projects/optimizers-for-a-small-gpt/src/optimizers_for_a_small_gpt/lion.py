"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"), written out by hand:
the optimizer this worked example scores on the course benchmark (docs/benchmark.md).

    uv run python train.py fit --optimizer optimizers_for_a_small_gpt.lion.Lion --optimizer.lr 3e-4
    uv run python -m optimizers_for_a_small_gpt.benchmark score --optimizer optimizers_for_a_small_gpt.lion.Lion \\
        --space benchmark/spaces/lion.yaml

Each step, for a parameter x with gradient g and momentum m (zero at first):

    c = beta1 * m + (1 - beta1) * g          # the direction: an interpolation of momentum and gradient
    x = x - lr * (sign(c) + weight_decay * x)  # every coordinate moves by lr exactly (before decay)
    m = beta2 * m + (1 - beta2) * g          # the momentum, with a longer memory (beta2 > beta1)

Like SignSGD it takes the sign, so every coordinate moves by the same amount; unlike Adam it keeps
one buffer per parameter, not two. Its steps are as large as lr in every coordinate, so its
learning rate is usually 3 to 10 times smaller than AdamW's.
"""

import torch


class Lion(torch.optim.Optimizer):
    """Lion: x -= lr * (sign(beta1 m + (1 - beta1) g) + weight_decay x); m = beta2 m + (1 - beta2) g."""

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0):
        if lr <= 0 or not all(0 <= beta < 1 for beta in betas) or weight_decay < 0:
            raise ValueError(f"Lion needs lr > 0, betas in [0, 1) and weight_decay >= 0; got {lr}, {betas}, {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                momentum = self.state[param].setdefault("momentum", torch.zeros_like(param))
                direction = momentum.mul(beta1).add_(param.grad, alpha=1 - beta1).sign_()
                param.add_(direction + group["weight_decay"] * param, alpha=-group["lr"])
                momentum.mul_(beta2).add_(param.grad, alpha=1 - beta2)
        return loss
