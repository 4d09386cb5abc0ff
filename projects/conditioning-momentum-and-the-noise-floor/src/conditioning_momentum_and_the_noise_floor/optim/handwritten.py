"""Optimizers that torch.optim does not ship in the form the course needs.

- SignSGD / Signum: step along the sign of the gradient (or of its momentum average). No
  maintained package provides it, so it is written out here; it is a few lines.
- MuonWithAdamW: torch.optim.Muon for the hidden weight matrices and torch.optim.AdamW for
  every other parameter, stepped together as one optimizer (Lightning's automatic optimization
  steps exactly one). optim.param_groups decides which parameters go where.
- SGDMomentum: SGD with momentum written out by hand, the template for an optimizer of your own.
- PreconditionedGD: x <- x - lr * P g with P from the Hessian (Newton, Jacobi) or from the
  gradients seen so far (AdaGrad, RMSprop): the lecture's preconditioned gradient methods side by side.
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
        uv run python train.py fit --optimizer conditioning_momentum_and_the_noise_floor.optim.SGDMomentum

    Copy this class into a file of your own (e.g. src/conditioning_momentum_and_the_noise_floor/my_optimizers.py)
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


class PreconditionedGD(Optimizer):
    """Preconditioned gradient descent, x <- x - lr * P g, with x all parameters as one vector:

        identity   P = I                              plain gradient descent
        newton     P = (H + damping I)^-1             Newton's method: lr 1, damping 0 solve a quadratic in one step
        diagonal   P = diag(H_ii + damping)^-1        Jacobi: exact when H is diagonal
        adagrad    P = diag(1 / (sqrt(s) + eps))      s <- s + g^2, the sum over every step so far
        rmsprop    P = diag(1 / (sqrt(v) + eps))      v <- beta v + (1 - beta) g^2, a moving average

    H is the Hessian of the objective over the flattened, concatenated parameters: newton and
    diagonal call `self.curvature()`, which CourseModule.configure_optimizers sets to the module's
    `curvature` method. Only the objective family computes it (its only parameter is x, so the
    vector is x itself); elsewhere the module refuses newton and diagonal when it is made.
    Newton solves a linear system (no inverse); a singular H gives inf/nan there: add damping.
    Where H_ii + damping <= 0 (no positive curvature to divide by), diagonal takes a plain
    gradient step along that coordinate. Each parameter group keeps its own lr; the other
    settings are the first group's, and a parameter without a gradient counts as a zero gradient.
    adagrad and rmsprop match torch.optim.Adagrad and RMSprop (beta is RMSprop's alpha) and
    work in every family.

        uv run python train.py fit --config configs/objective_preconditioned.yaml
        uv run python train.py fit --config configs/objective_preconditioned.yaml --optimizer.preconditioner diagonal
        uv run python train.py fit --config configs/objective.yaml --optimizer newton
    """

    def __init__(self, params, lr: float = 1.0, preconditioner: str = "newton", damping: float = 0.0,
                 beta: float = 0.99, eps: float = 1e-8):
        if preconditioner not in PRECONDITIONERS:
            raise ValueError(f"preconditioner must be one of {', '.join(PRECONDITIONERS)}, got {preconditioner!r}")
        if lr <= 0 or damping < 0 or not 0.0 <= beta < 1.0 or eps < 0:
            raise ValueError(f"need lr > 0, damping >= 0, beta in [0, 1) and eps >= 0; got {lr}, {damping}, {beta}, {eps}")
        defaults = {"lr": lr, "preconditioner": preconditioner, "damping": damping, "beta": beta, "eps": eps}
        super().__init__(params, defaults)
        self.curvature = None  # a function returning H (n x n); the module sets it

    @property
    def needs_curvature(self) -> bool:
        """Whether this preconditioner needs the Hessian (the module then sets self.curvature)."""
        return self.param_groups[0]["preconditioner"] in ("newton", "diagonal")

    def directions(self, params: list, grads: list) -> list:
        """P g, one tensor per parameter."""
        settings = self.param_groups[0]
        kind, eps = settings["preconditioner"], settings["eps"]
        if kind == "identity":
            return grads
        if kind in ("adagrad", "rmsprop"):
            directions = []
            for param, grad in zip(params, grads, strict=True):
                total = self.state[param].setdefault("square_sum", torch.zeros_like(param))  # s or v
                if kind == "adagrad":
                    total.addcmul_(grad, grad)
                else:
                    total.mul_(settings["beta"]).addcmul_(grad, grad, value=1 - settings["beta"])
                directions.append(grad / (total.sqrt() + eps))
            return directions
        if self.curvature is None:
            raise RuntimeError(f"preconditioner {kind} needs the Hessian: set optimizer.curvature to a function "
                               "returning it (the objective family's module does), or use adagrad or rmsprop")
        g = torch.cat([grad.flatten() for grad in grads])
        hessian = self.curvature().to(g)
        if hessian.shape != (len(g), len(g)):
            raise RuntimeError(f"curvature() returned shape {tuple(hessian.shape)}, expected ({len(g)}, {len(g)})")
        if kind == "newton":
            identity = torch.eye(len(g), dtype=g.dtype, device=g.device)
            direction = torch.linalg.solve_ex(hessian + settings["damping"] * identity, g).result  # no sync
        else:
            scale = hessian.diagonal() + settings["damping"]
            direction = g / torch.where(scale > 0, scale, torch.ones_like(scale))
        return [d.view_as(p) for d, p in zip(direction.split([p.numel() for p in params]), params, strict=True)]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [param for group in self.param_groups for param in group["params"]]
        grads = [torch.zeros_like(param) if param.grad is None else param.grad for param in params]
        directions = iter(self.directions(params, grads))
        for group in self.param_groups:
            for param in group["params"]:
                param.add_(next(directions), alpha=-group["lr"])
        return loss


PRECONDITIONERS = ("identity", "newton", "diagonal", "adagrad", "rmsprop")
