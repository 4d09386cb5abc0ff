"""`problem: function`: an objective you write down as a Python function, on a domain kept by
parametrization or projection; `cyclic_sum_gap` is the worked example (a search for a counterexample).

    uv run python train.py fit --config configs/objective_inequality.yaml
"""

import importlib
import inspect
import math
from functools import partial
from typing import Any

import torch

from ..config_errors import ConfigError, check_arguments, lookup
from .objective_problems import Problem


# Feasible sets for `Function`: (parametrization x = phi(z), projection onto the set in place).
def project_simplex_(x: torch.Tensor) -> None:
    """Euclidean projection of each row of x onto the probability simplex (sort-based)."""
    ordered, _ = x.sort(dim=-1, descending=True)
    cumulative = ordered.cumsum(dim=-1) - 1
    ks = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
    count = (ordered - cumulative / ks > 0).sum(dim=-1, keepdim=True)
    threshold = cumulative.gather(-1, count - 1) / count
    x.copy_(torch.clamp(x - threshold, min=0.0))


DOMAINS = {
    "real": (lambda z: z, lambda x: None),
    "positive": (torch.exp, lambda x: x.clamp_(min=1e-12)),
    "simplex": (partial(torch.softmax, dim=-1), project_simplex_),
    "unit_box": (torch.sigmoid, lambda x: x.clamp_(0.0, 1.0)),
    "sphere": (lambda z: z / torch.linalg.vector_norm(z, dim=-1, keepdim=True),
               lambda x: x.div_(torch.linalg.vector_norm(x, dim=-1, keepdim=True))),
}
CONSTRAINTS = ("parametrize", "project")


def import_function(path: str):
    """The function named by an import path such as my_package.my_module.my_function."""
    module_name, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"cannot import function {path!r} ({error}): write module.path.function_name") from error


class Function(Problem):
    """Your objective: f(x), or f(x, batch) for a random one, named by import path.

    Write f for one x of shape `shape` with torch operations; it runs on `restarts` starting
    points at once (torch.func.vmap) and the loss is the sum over them, so each restart moves
    on its own. A function with a `batch` argument gets `batch_size` fresh standard normal
    samples of shape `sample_shape` each step (transform them into the noise you need).

    The domain is enforced either by parametrization (x = exp(z) for positive, softmax(z) for
    the simplex, ...) or by projecting x back onto it after every step. The best value seen
    and its x are kept; at the end of training the module prints whether a counterexample
    was found, that is a value below -tolerance (for f = RHS - LHS of an inequality LHS <= RHS).
    """

    def __init__(self, function: str = "", function_args: dict[str, Any] | None = None,
                 shape: list[int] = (3,), domain: str = "real", constraint: str = "parametrize",
                 restarts: int = 16, init_scale: float = 1.0, sample_shape: list[int] = (),
                 tolerance: float = 1e-6):
        super().__init__()
        self.function_path = function
        self.function = import_function(function)
        self.function_args = dict(function_args or {})
        self.takes_batch = "batch" in inspect.signature(self.function).parameters
        check_arguments(self.function, self.function_args, f"function {function}", skip=("x", "batch"))
        self.phi, self.projection = lookup(DOMAINS, domain, "domain")
        if constraint not in CONSTRAINTS:
            raise ConfigError(f"constraint must be parametrize or project, got {constraint!r}")
        self.domain, self.constraint = domain, constraint
        self.shape = (restarts, *shape)
        self.init_scale, self.tolerance = init_scale, tolerance
        if self.takes_batch:
            self.sampling, self.noise_shape = "noise", tuple(sample_shape)
        self.register_buffer("best_value", torch.tensor(math.inf))
        self.register_buffer("best_x", torch.zeros(tuple(shape)))

    def initial_point(self):
        z = self.init_scale * torch.randn(self.shape)
        return z if self.constraint == "parametrize" else self.phi(z)

    def point(self, param):
        return self.phi(param) if self.constraint == "parametrize" else param

    def project_(self, param):
        if self.constraint == "project":
            self.projection(param)

    def values(self, x, batch=None):
        """f at each restart's x: a vector of length `restarts`."""
        function = partial(self.function, **self.function_args)
        if self.takes_batch:
            return torch.func.vmap(function, in_dims=(0, None))(x, batch)
        return torch.func.vmap(function)(x)

    def loss(self, x, batch):
        values = self.values(x, batch)
        with torch.no_grad():  # keep the best point seen (no host synchronisation)
            best = values.argmin()
            better = values[best] < self.best_value
            self.best_value.copy_(torch.where(better, values[best], self.best_value))
            self.best_x.copy_(torch.where(better, x[best], self.best_x))
        return values.sum()

    def fixed_values(self, x):
        """f at each restart, on the same 1024 samples at every evaluation if f takes a batch."""
        if not self.takes_batch:
            return self.values(x)
        samples = torch.randn(1024, *self.noise_shape, generator=torch.Generator().manual_seed(0))
        return self.values(x, samples.to(x))

    def value(self, x):
        return self.fixed_values(x).sum()

    def metrics(self, x):
        return {"value": self.fixed_values(x).min(), "best_value": self.best_value}

    def counterexample(self) -> tuple[bool, torch.Tensor, float]:
        """(found, best x, its value): found when the value is below -tolerance."""
        value = float(self.best_value)
        return value < -self.tolerance, self.best_x.detach().cpu(), value

    def report(self) -> str:
        found, x, value = self.counterexample()
        where = f"at x = {x.tolist()}"
        if found:
            return (f"Counterexample found: {self.function_path}(x) = {value:.6g} < -{self.tolerance:g} {where}. "
                    "The inequality is false there (check this x by hand, in exact arithmetic if it is close).")
        return (f"No counterexample found: the smallest value of {self.function_path} was {value:.6g} "
                f">= -{self.tolerance:g}, over {self.shape[0]} restarts (best {where}). This is evidence "
                "that the inequality holds on the domain, not a proof.")


def cyclic_sum_gap(x: torch.Tensor, bound: float | None = None) -> torch.Tensor:
    """Worked example: RHS - LHS of Shapiro's cyclic inequality for positive x_1..x_n,

        sum_i x_i / (x_(i+1) + x_(i+2))  >=  bound  (indices mod n; bound = n / 2 by default).

    For n = 3 it is Nesbitt's inequality, true with bound 3/2 (equality at x_1 = x_2 = x_3), false
    for any larger bound. Shapiro's inequality holds for even n <= 12 and odd n <= 23 and fails
    for n = 14 and n >= 25: a search for those counterexamples is a project of its own.
    """
    n = x.shape[-1]
    bound = n / 2 if bound is None else bound
    return (x / (torch.roll(x, -1) + torch.roll(x, -2))).sum() - bound
