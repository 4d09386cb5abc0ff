"""Optimizers that torch.optim does not ship in the form the course needs.

- SignSGD / Signum: step along the sign of the gradient (or of its momentum average). No
  maintained package provides it, so it is written out here; it is a few lines.
- MuonWithAdamW: torch.optim.Muon for the hidden weight matrices and torch.optim.AdamW for
  every other parameter, stepped together as one optimizer (Lightning's automatic optimization
  steps exactly one). optim.py decides which parameters go where.
"""

import torch
from torch.optim import Optimizer


class SignSGD(Optimizer):
    """p <- p - lr * sign(m), with m = momentum * m + (1 - momentum) * grad.

    momentum=0 is signSGD (the sign of the gradient itself); momentum>0 is Signum. Weight decay
    is decoupled, as in AdamW: p <- p * (1 - lr * weight_decay) before the step.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                direction = param.grad
                if group["momentum"] > 0:
                    average = self.state[param].setdefault("momentum_buffer", torch.zeros_like(param))
                    average.lerp_(param.grad, 1 - group["momentum"])
                    direction = average
                if group["weight_decay"]:
                    param.mul_(1 - group["lr"] * group["weight_decay"])
                param.add_(direction.sign(), alpha=-group["lr"])
        return loss


class MuonWithAdamW(Optimizer):
    """Muon on `muon_groups` (2-D weight matrices only) and AdamW on `adamw_groups`.

    Both share this optimizer's param_groups, so a learning-rate schedule scales both; each
    group keeps its own lr (Muon's `lr`, AdamW's `adamw_lr`).
    """

    def __init__(
        self,
        muon_groups: list[dict],
        adamw_groups: list[dict],
        lr: float = 0.02,  # Muon's learning rate
        momentum: float = 0.95,  # Muon's momentum
        nesterov: bool = True,  # Muon's Nesterov momentum
        weight_decay: float = 0.0,  # Muon's decoupled weight decay
        adamw_lr: float = 3e-3,  # AdamW's learning rate, for embeddings, head, biases and norms
        adamw_betas: tuple[float, float] = (0.9, 0.95),  # AdamW's betas
        adamw_weight_decay: float = 0.0,  # AdamW's weight decay (only where param_groups allows it)
    ):
        # Either part may be empty (a model without weight matrices, or with nothing else).
        self.muon = torch.optim.Muon(muon_groups, lr=lr, momentum=momentum, nesterov=nesterov,
                                     weight_decay=weight_decay) if muon_groups else None
        for group in adamw_groups:
            group["weight_decay"] = adamw_weight_decay if group.get("weight_decay") else 0.0
        self.adamw = torch.optim.AdamW(adamw_groups, lr=adamw_lr, betas=adamw_betas) if adamw_groups else None
        self.parts = [part for part in (self.muon, self.adamw) if part is not None]
        # Register the very same group dicts here, so schedulers and loggers see both optimizers.
        super().__init__([group for part in self.parts for group in part.param_groups], {})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def state_dict(self):
        return {"muon": self.muon and self.muon.state_dict(), "adamw": self.adamw and self.adamw.state_dict()}

    def load_state_dict(self, state_dict):
        for name, part in (("muon", self.muon), ("adamw", self.adamw)):
            if part is not None:
                part.load_state_dict(state_dict[name])
