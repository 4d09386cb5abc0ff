"""Optimizers that torch.optim does not ship in the form the course needs.

- SignSGD / Signum: step along the sign of the gradient (or of its momentum average). No
  maintained package provides it, so it is written out here; it is a few lines.
- MuonWithAdamW: torch.optim.Muon for the hidden weight matrices and torch.optim.AdamW for
  every other parameter, stepped together as one optimizer (Lightning's automatic optimization
  steps exactly one). optim.param_groups decides which parameters go where.
- SGDMomentum: SGD with momentum written out by hand, the template for an optimizer of your own.
"""

import warnings

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
    """Muon on the weight matrices of hidden layers and AdamW on every other parameter.

    `params` are parameter groups as optim.param_groups makes them: the group named "matrices"
    goes to Muon, the others to AdamW. Given plain tensors instead (your own code calling
    MuonWithAdamW(model.parameters())), 2-D tensors go to Muon and the rest to AdamW.
    Both share this optimizer's param_groups, so a learning-rate schedule scales both; each
    group keeps its own lr (Muon's `lr`, AdamW's `adamw_lr`).
    """

    def __init__(
        self,
        params,
        lr: float = 0.02,  # Muon's learning rate
        momentum: float = 0.95,  # Muon's momentum
        nesterov: bool = True,  # Muon's Nesterov momentum
        weight_decay: float = 0.0,  # Muon's decoupled weight decay
        adamw_lr: float = 3e-3,  # AdamW's learning rate, for embeddings, head, biases and norms
        adamw_betas: tuple[float, float] = (0.9, 0.95),  # AdamW's betas
        adamw_weight_decay: float = 0.0,  # AdamW's weight decay (never on biases, norms, embeddings)
    ):
        groups = list(params)
        if groups and not isinstance(groups[0], dict):  # plain tensors
            groups = [{"name": "matrices", "params": [p for p in groups if p.ndim == 2]},
                      {"name": "others", "params": [p for p in groups if p.ndim != 2]}]
        muon_groups = [g for g in groups if g.get("name") == "matrices" and g["params"]]
        adamw_groups = [g for g in groups if g.get("name") != "matrices" and g["params"]]
        if not muon_groups:
            warnings.warn("muon: this model has no weight matrix, so every parameter is trained by AdamW", stacklevel=2)
        # Either part may be empty (a model without weight matrices, or with nothing else).
        self.muon = torch.optim.Muon(muon_groups, lr=lr, momentum=momentum, nesterov=nesterov,
                                     weight_decay=weight_decay) if muon_groups else None
        self.adamw = torch.optim.AdamW(adamw_groups, lr=adamw_lr, betas=adamw_betas,
                                       weight_decay=adamw_weight_decay) if adamw_groups else None
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


class SGDMomentum(Optimizer):
    """A worked example of writing an optimizer: SGD with heavy-ball momentum, by hand.

        v <- momentum * v + grad            (one velocity per parameter, kept in self.state)
        p <- p - lr * (v + weight_decay * p)

    It matches torch.optim.SGD(lr, momentum) (tests/test_optim.py checks this). Train with it:

        uv run python train.py fit --optimizer sgd_momentum --optimizer.lr 0.05
        uv run python train.py fit --optimizer {{ cookiecutter.package_name }}.optimizers.SGDMomentum

    Copy this class into a file of your own (e.g. src/{{ cookiecutter.package_name }}/my_optimizers.py)
    and name it by its import path; no other file needs to change.
    """

    def __init__(self, params, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 0.0):
        if lr <= 0 or not 0.0 <= momentum < 1.0 or weight_decay < 0:
            raise ValueError(f"need lr > 0, momentum in [0, 1) and weight_decay >= 0; got {lr}, {momentum}, {weight_decay}")
        # The defaults fill in what a parameter group does not set (e.g. the no-decay group's weight_decay=0).
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()  # the update itself is not part of the graph
    def step(self, closure=None):
        loss = None
        if closure is not None:  # Lightning passes one: it computes the loss and the gradients
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad.add(param, alpha=group["weight_decay"]) if group["weight_decay"] else param.grad
                velocity = self.state[param].setdefault("velocity", torch.zeros_like(param))
                velocity.mul_(group["momentum"]).add_(grad)
                param.add_(velocity, alpha=-group["lr"])
        return loss
