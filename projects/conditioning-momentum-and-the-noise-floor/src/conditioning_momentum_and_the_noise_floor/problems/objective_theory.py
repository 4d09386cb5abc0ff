"""The objective family's recorded paths and theory lines (used by objective.py's ObjectiveModule).

- Trajectory: the iterate's path, one point per optimizer step, in a plane (choose_plane,
  plane_through), kept on the device and written to the run folder's trajectory.npz, which
  `uv run python -m conditioning_momentum_and_the_noise_floor.figures` draws over the contours of f.
- QuadraticTheory: what theory expects of (preconditioned) gradient descent on the quadratics,
  step by step: the theory/ lines logged beside the measurements.
The formats and the tags are listed in objective.py's docstring.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config_errors import ConfigError
from ..optim import PreconditionedGD

# The problems here are objective.py's Problem and Quadratic, typed as nn.Module: objective.py
# imports this file, and this one imports nothing of it (no import cycle).


def noise_floor(eigenvalues: torch.Tensor, noise_std: float, lr: float, batch_size: int,
                preconditioner: torch.Tensor | None = None) -> float:
    """sum_i 1/2 h_i lr p_i noise_std^2 / (B (2 - lr p_i h_i)), in float64 (p_i = 1 without a
    preconditioner): where E[f - f*] settles on the noisy quadratic; inf if some lr p_i h_i >= 2."""
    h = eigenvalues
    step = lr * (torch.ones_like(h) if preconditioner is None else preconditioner)
    if bool((step * h >= 2).any()):
        return math.inf  # that direction diverges: no stationary value
    return float((0.5 * h * step * noise_std**2 / (batch_size * (2 - step * h))).sum())


PLANES = ("coordinates", "eigenvectors", "random")  # what `trajectory` records the path in


def choose_plane(trajectory: str | None, problem: nn.Module, size: int) -> str | None:
    """The plane that `trajectory` asks for (None: record nothing), or a ConfigError if impossible."""
    if trajectory is not None and trajectory not in (*PLANES, "auto"):
        raise ConfigError(f"trajectory must be coordinates, eigenvectors, random, auto or null, got {trajectory!r}")
    if trajectory == "auto":
        return "coordinates" if size == 2 else None
    if trajectory is None:
        return None
    if size < 2:
        raise ConfigError(f"trajectory {trajectory} needs a variable of 2 or more numbers, this one has {size}: "
                          "set trajectory: null")
    if trajectory == "coordinates" and size != 2:
        raise ConfigError(f"trajectory coordinates needs a variable of exactly 2 numbers, this one has {size}: "
                          "use trajectory random (or eigenvectors on a quadratic)")
    if trajectory == "eigenvectors" and "eigenvalues" not in problem.float64_values:  # not a quadratic
        raise ConfigError("trajectory eigenvectors needs problem quadratic or noisy_quadratic (it uses H's "
                          "eigenvectors): use trajectory random (or coordinates in 2-D)")
    return trajectory


def plane_through(problem: nn.Module, plane: str, start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(origin, basis), float64: x = origin + xy @ basis for the points xy of `plane` (basis: 2 x d,
    orthonormal rows). Through x* (the starting point where x* is unknown), except coordinates."""
    x_star = problem.float64_values.get("x_star")
    origin = start.flatten().double() if x_star is None else x_star.flatten()
    if plane == "coordinates":
        return torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    if plane == "eigenvectors":  # eigenvalues ascending: the valley's floor, then across it
        vectors = problem.float64_values["basis"]
        return origin.clone(), torch.stack([vectors[:, 0], vectors[:, -1]])
    generator = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(origin.numel(), 2, generator=generator, dtype=torch.float64))
    return origin.clone(), q.T.contiguous()


class Trajectory:
    """The iterate's path in a plane, one point per optimizer step, kept on the device until saved.

    A point is xy = (x - origin) @ basis.T (x flattened). Points go into a preallocated device
    tensor, doubled when full, so recording costs no synchronisation with the GPU; `save`
    copies them to the host and writes them after any earlier points of a resumed run.
    """

    def __init__(self, plane: str, origin: torch.Tensor, basis: torch.Tensor, x_star: torch.Tensor | None):
        self.plane, self.origin, self.basis = plane, origin, basis
        self.minimizer = torch.full((2,), math.nan, dtype=torch.float64)  # x* in the plane (NaN: unknown)
        if x_star is not None:
            self.minimizer = (x_star.flatten() - origin) @ basis.T
        self.start(0, None)

    def start(self, step: int, file: Path | None) -> None:
        """Begin recording at `step`, to be saved in `file` (None: not saved). A resumed run
        (step > 0) keeps the points that `file` has from before `step`."""
        self.file = file
        self.steps: list[int] = []  # the global step of each point recorded
        self.points: torch.Tensor | None = None  # (capacity, 2), float64, on the device
        self.earlier = {"step": np.zeros(0, dtype=np.int64), "xy": np.zeros((0, 2))}
        if step > 0 and file is not None and file.exists():
            with np.load(file) as saved:
                keep = saved["step"] < step
                self.earlier = {"step": saved["step"][keep], "xy": saved["xy"][keep]}

    def record(self, x: torch.Tensor, step: int) -> None:
        x = x.detach().flatten().double()
        count = len(self.steps)
        if self.points is None or count == len(self.points) or self.points.device != x.device:
            grown = torch.empty(max(256, 2 * count), 2, dtype=torch.float64, device=x.device)
            if count:
                grown[:count] = self.points.to(x.device)
            self.points = grown
            self.plane_here = (self.origin.to(x.device), self.basis.to(x.device))
        origin, basis = self.plane_here
        self.points[count] = (x - origin) @ basis.T
        self.steps.append(step)

    def save(self) -> None:
        """Write the file (its format is in the module docstring), replacing it at once."""
        if self.file is None or not self.steps:
            return
        xy = self.points[: len(self.steps)].cpu().numpy()
        arrays = {
            "step": np.concatenate([self.earlier["step"], np.array(self.steps, dtype=np.int64)]),
            "xy": np.concatenate([self.earlier["xy"], xy]),
            "origin": self.origin.numpy(),
            "basis": self.basis.numpy(),
            "minimizer": self.minimizer.numpy(),
            "plane": np.str_(self.plane),
        }
        self.file.parent.mkdir(parents=True, exist_ok=True)
        partial_file = self.file.with_name(self.file.name + ".partial")
        with open(partial_file, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(partial_file, self.file)  # a reader never sees half a file


def preconditioner_eigenvalues(optimizer: torch.optim.Optimizer, problem: nn.Module) -> torch.Tensor | None:
    """The eigenvalues p_i, in H's eigenbasis, of the optimizer's P in x <- x - lr P g, for the
    optimizers whose expected path on a quadratic has a closed form; None for any other."""
    groups = optimizer.param_groups
    plain = all(not (group.get("momentum", 0) or group.get("weight_decay", 0) or group.get("nesterov", False)
                     or group.get("maximize", False)) for group in groups)
    h = problem.float64_values["eigenvalues"]
    if plain and isinstance(optimizer, torch.optim.SGD):
        return torch.ones_like(h)
    if plain and isinstance(optimizer, PreconditionedGD):
        kind, damping = groups[0]["preconditioner"], groups[0]["damping"]
        if kind == "identity":
            return torch.ones_like(h)
        if kind == "newton" or (kind == "diagonal" and not problem.rotate):  # diag H = H without rotation
            return 1 / (h + damping)
    return None


class QuadraticTheory(nn.Module):
    """The expected path of (preconditioned) gradient descent on quadratic and noisy_quadratic.

    Along eigenvector i of H (eigenvalue h_i), where P has eigenvalue p_i, the error e_i of
    x <- x - lr P g evolves on its own: e_i <- (1 - lr p_i h_i) e_i - lr p_i (gradient noise of
    variance noise_std^2 h_i / B), so its mean square m_i = E[e_i^2] follows

        m_i <- (1 - lr p_i h_i)^2 m_i + lr^2 p_i^2 noise_std^2 h_i / B,    m_i(0) = e_i(0)^2,

    with each step's own lr, and E[f - f*] = 1/2 sum_i h_i m_i. m and the rate bound are buffers:
    they stay on the device and are saved in checkpoints, so a resumed run continues them.
    """

    def __init__(self, problem: nn.Module):
        super().__init__()
        h = problem.float64_values["eigenvalues"]
        self.eigenvalues, self.noise_std = h, getattr(problem, "noise_std", 0.0)  # on the CPU
        self.noisy = problem.sampling == "noise"  # noisy_quadratic
        self.register_buffer("mean_square", torch.zeros_like(h))  # m_i
        self.register_buffer("rate_bound", torch.zeros((), dtype=torch.float64))  # prod max_i (1 - lr q_i)^2 (f0 - f*)
        self.register_buffer("h", h.clone(), persistent=False)  # the same numbers, on the device
        self.register_buffer("q", h.clone(), persistent=False)  # p_i h_i
        self.register_buffer("noise", torch.zeros_like(h), persistent=False)  # p_i^2 noise_std^2 h_i / B
        self.active = False  # whether this run's optimizer has a theory line (see `start`)
        self.floor_cache = (math.nan, math.nan)  # (lr, noise floor at that lr)

    def start(self, preconditioner: torch.Tensor, batch: int, error: torch.Tensor | None) -> None:
        """Begin with P's eigenvalues p_i, B noise samples per step and, for a new run (not a
        resumed one), the starting error x0 - x* in H's eigenbasis (float64)."""
        h = self.eigenvalues
        self.preconditioner, self.batch, self.active = preconditioner, batch, True
        q = preconditioner * h
        self.q_range = (float(q.min()), float(q.max()))
        self.q.copy_(q)
        self.noise.copy_(preconditioner**2 * self.noise_std**2 * h / batch)
        if error is not None:
            self.mean_square.copy_(error**2)
            self.rate_bound.fill_(float(0.5 * (h * error**2).sum()))

    def step(self, lr: float) -> None:
        """Advance by one optimizer step with step size `lr`: device work only, no synchronisation."""
        self.mean_square.mul_((1 - lr * self.q).square_())
        if self.noisy:
            self.mean_square.add_(self.noise, alpha=lr * lr)
        low, high = self.q_range  # the largest |1 - lr q_i| is at the smallest or the largest q_i
        self.rate_bound.mul_(max((1 - lr * low) ** 2, (1 - lr * high) ** 2))

    def lines(self, lr: float) -> dict[str, torch.Tensor | float]:
        """The theory/ values for the iterate this step starts from, and step size `lr`."""
        lines = {"suboptimality": 0.5 * (self.h * self.mean_square).sum()}
        if not self.noisy:
            lines["rate_bound"] = self.rate_bound
            return lines
        if self.floor_cache[0] != lr:  # float64 on the CPU, once per step size
            self.floor_cache = (lr, noise_floor(self.eigenvalues, self.noise_std, lr, self.batch, self.preconditioner))
        if math.isfinite(self.floor_cache[1]):
            lines["noise_floor"] = self.floor_cache[1]
        return lines
