"""Minimize a function you write down: the decision variable is the module's only parameter.

    uv run python train.py fit --config configs/objective.yaml             # GD on a quadratic, condition number 50
    uv run python train.py fit --config configs/objective_zigzag.yaml      # GD zigzags down a narrow 2-D valley
    uv run python train.py fit --config configs/objective_noise_floor.yaml # SGD on the noisy quadratic model
    uv run python train.py fit --config configs/objective_inequality.yaml  # search for a counterexample

There is no dataset: each training step draws what makes the objective random (rows of a
measurement matrix, or fresh noise), and an "epoch" is just `steps_per_epoch` steps, after
which the exact (noise-free) objective is evaluated as `val/loss`.

Every built-in problem (PROBLEMS below) knows its minimizer or ground truth, so each step logs
    train/loss           the objective on the step's batch (what the optimizer sees)
    train/grad_norm      the norm of its gradient
    train/suboptimality  f(x) - f(x*), the exact objective minus its optimal value
    train/dist_to_opt    the distance from the iterate to the minimizer (or ground truth)
and validation logs the same as val/loss, val/suboptimality, val/dist_to_opt plus the
problem's own measures (relative error, support recovery, ...) and theory/loss, the optimal
value f* (where it is known) that val/loss approaches.

Theory lines: on quadratic and noisy_quadratic, trained by plain (stochastic) gradient descent
(torch.optim.SGD without momentum or weight decay) or by optim.PreconditionedGD with
preconditioner identity, newton, or diagonal (with rotate: false), the steps that log
train/suboptimality also log what theory expects of the same iterate (formulas: objective_theory.py):
    theory/suboptimality  E[f(x) - f*], followed step by step with each step's lr (schedules too)
    theory/rate_bound     quadratic: prod over steps of max_i (1 - lr p_i h_i)^2, times f(x0) - f*:
                          (1 - 1/condition_number)^(2t) (f(x0) - f*) for GD at lr 1/L
    theory/noise_floor    noisy_quadratic: where E[f - f*] settles at the current lr (noise_floor below),
                          with B = batch_size x accumulate_grad_batches x devices noise samples per step
Any other optimizer prints one line at the start of training and logs none of them.

The path: `trajectory` records the iterate (flattened: d numbers) at the start and after every
optimizer step, in a plane, into runs/<experiment>/<run name>/trajectory.npz (beside
config.yaml; rewritten after each validation and at the end; a resumed run continues it):
    step       int64 (n,)      the global step of each point (0: the start)
    xy         float64 (n, 2)  the points: xy = (x - origin) @ basis.T
    origin     float64 (d,)    where the plane's (0, 0) is: x* (the start where x* is unknown)
    basis      float64 (2, d)  orthonormal rows spanning the plane: origin + xy @ basis is in it
    minimizer  float64 (2,)    x* in the plane (NaN where it is not known)
    plane      string          coordinates: x itself (a 2-D variable; origin 0, basis the identity);
                               eigenvectors (quadratics): along H's eigenvectors of the smallest
                               eigenvalue (the valley's floor) and of the largest (across it);
                               random: two random orthonormal directions (seed 0)
f over the plane is problem.value(origin + a basis[0] + b basis[1]) in the variable's shape, so
    uv run python -m {{ cookiecutter.package_name }}.figures objective_zigzag
draws each run's path over the contours of f.

Your own objective: `problem: function` with `problem_args: {function: my_module.my_function}`,
see `Function` below and the worked example `cyclic_sum_gap`.
"""

import math
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config_errors import ConfigError, check_arguments, lookup
from ..data import DeviceBatches, SeededDraws
from ..module import CourseModule, OptimizerFactory, ScheduleFactory
from .objective_function import Function, cyclic_sum_gap  # configs name it here: <package>.problems.objective.cyclic_sum_gap
from .objective_problems import (
    CompressedSensing,
    LeastSquares,
    MatrixCompletion,
    NoisyQuadratic,
    PhaseRetrieval,
    Problem,
    Quadratic,
    Rosenbrock,
)
from .objective_theory import QuadraticTheory, Trajectory, choose_plane, plane_through, preconditioner_eigenvalues

__all__ = ["PROBLEMS", "ObjectiveModule", "Samples", "cyclic_sum_gap"]

PROBLEMS = {
    "quadratic": Quadratic,
    "noisy_quadratic": NoisyQuadratic,
    "rosenbrock": Rosenbrock,
    "least_squares": LeastSquares,
    "compressed_sensing": CompressedSensing,
    "phase_retrieval": PhaseRetrieval,
    "matrix_completion": MatrixCompletion,
    "function": Function,
}


class Samples(SeededDraws):
    """`steps` batches per epoch of what makes the objective random (row indices or noise),
    drawn reproducibly (see SeededDraws)."""

    def __init__(self, problem: Problem, batch_size: int | None, steps: int, seed: int, rank: int = 0):
        super().__init__(partial(problem.sample, batch_size), steps, seed, rank)



class ObjectiveModule(CourseModule):
    """Minimizes a problem from PROBLEMS over its variable, the module's only parameter `x`."""

    metrics_higher_is_better = ()  # the objective, suboptimality and distances: all best at their minimum

    def __init__(
        self,
        problem: str = "quadratic",  # a name in PROBLEMS: quadratic, noisy_quadratic, rosenbrock, least_squares, ...
        problem_args: dict[str, Any] | None = None,  # arguments of that problem class, e.g. {dim: 2, condition_number: 50}
        batch_size: int | None = None,  # rows or noise samples per step; null: all rows (gradient descent)
        steps_per_epoch: int = 50,  # steps between two validations (exact objective, distance to x*)
        optimizer: OptimizerFactory | None = None,  # --optimizer NAME (see optim/choices.py); None: adam
        scheduler: ScheduleFactory | None = None,  # --scheduler NAME (see optim/schedules.py); None: constant
        param_groups: list[dict[str, Any]] | None = None,  # settings of x, the only parameter, e.g. [{match: "x", lr: 0.1}]
        trajectory: str | None = "auto",  # the path into trajectory.npz: coordinates, eigenvectors, random, auto (2-D only), null
        start: list[float] | None = None,  # the starting point, flattened, e.g. [-8, 1]; null: drawn from the seed
    ):
        super().__init__(optimizer, scheduler, param_groups)
        self.save_hyperparameters()
        problem_class = lookup(PROBLEMS, problem, "problem")
        check_arguments(problem_class, problem_args or {}, f"problem {problem!r}")
        self.problem = problem_class(**(problem_args or {}))
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be a number of samples per step >= 1 (or null: every row, gradient descent), "
                              f"got {batch_size}")
        if self.problem.sampling == "noise" and batch_size is None:
            raise ConfigError(f"problem {problem!r} draws fresh noise every step: set batch_size to a number")
        if steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.x = nn.Parameter(self.starting_point(start))
        plane = choose_plane(trajectory, self.problem, self.x.numel())
        self.trajectory = None
        if plane is not None:
            origin, basis = plane_through(self.problem, plane, self.iterate().detach())
            self.trajectory = Trajectory(plane, origin, basis, self.problem.float64_values.get("x_star"))
        self.theory = QuadraticTheory(self.problem) if isinstance(self.problem, Quadratic) else None

    def starting_point(self, start: list[float] | None) -> torch.Tensor:
        """`start` in the variable's shape, or the problem's own starting point (drawn from the seed).
        For problem function with constraint parametrize, `start` is the parameter z of x = phi(z)."""
        if start is None:
            return self.problem.initial_point()
        size = math.prod(self.problem.shape)
        if len(start) != size:
            raise ConfigError(f"start has {len(start)} numbers, but the variable has {size} (shape "
                              f"{list(self.problem.shape)}): give {size} numbers, or null to draw it from the seed")
        return torch.tensor(start, dtype=torch.get_default_dtype()).reshape(self.problem.shape)

    def setup(self, stage: str):
        if str(self.trainer.precision).startswith("64"):
            self.problem.use_float64()
        # Sampling seed from the global seed: another seed_everything gives other batches.
        self.sample_seed = int(torch.randint(0, 2**31 - 1, ()))

    def iterate(self) -> torch.Tensor:
        return self.problem.point(self.x)

    def curvature(self) -> torch.Tensor:
        """The Hessian of the exact objective at the current parameter, as an n x n matrix over its
        n flattened entries (what Newton-like preconditioned methods use): the quadratics' H, and
        torch.func.hessian (automatic differentiation) for every other problem."""
        hessian = getattr(self.problem, "hessian", None)
        if isinstance(hessian, torch.Tensor) and type(self.problem).point is Problem.point:
            return hessian
        n = self.x.numel()

        def objective(flat: torch.Tensor) -> torch.Tensor:
            return self.problem.value(self.problem.point(flat.view_as(self.x)))

        return torch.func.hessian(objective)(self.x.detach().flatten()).reshape(n, n)

    def forward(self) -> torch.Tensor:
        """The current iterate x (what `uv run python train.py predict` returns)."""
        return self.iterate()

    def predict_step(self, batch, batch_idx):
        return self.iterate().detach()

    def progress(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exact objective's suboptimality and the distance to x*, where they are known."""
        measures = {}
        with torch.no_grad():
            if self.problem.f_star is not None:
                measures["suboptimality"] = self.problem.value(x) - self.problem.f_star
            distance = self.problem.distance(x)
            if distance is not None:
                measures["dist_to_opt"] = distance
        return measures

    def loss(self, batch) -> torch.Tensor:
        """The objective at the current iterate on one batch (used by the diagnostics)."""
        return self.problem.loss(self.iterate(), batch)

    def training_step(self, batch, batch_idx):
        x = self.iterate()
        loss = self.problem.loss(x, batch)
        self.log_step("train/loss", loss, prog_bar=True)  # on logging steps only: see module.py
        if self.writes_logs():  # the other measures are computed only then
            for name, value in self.progress(x.detach()).items():  # of the iterate this step starts from
                self.log_step(f"train/{name}", value)
            if self.theory is not None and self.theory.active:  # what theory expects of the same iterate
                for name, value in self.theory.lines(self.learning_rate()).items():
                    self.log_step(f"theory/{name}", value)
        return loss

    def learning_rate(self) -> float:
        """This step's lr (a Python float: no synchronisation). x is the only parameter, so the
        optimizer has a single parameter group."""
        return self.trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_start(self):
        step = self.trainer.global_step  # > 0 when resuming from a checkpoint
        if self.trajectory is not None:
            self.trajectory.start(step, self.trajectory_file())
            self.trajectory.record(self.iterate(), step)
        if self.theory is not None:
            self.start_theory(fresh=step == 0)

    def start_theory(self, fresh: bool) -> None:
        """Start the theory lines if the optimizer has them (plain SGD/GD, preconditioned GD)."""
        optimizer, trainer = self.trainer.optimizers[0], self.trainer
        preconditioner = preconditioner_eigenvalues(optimizer, self.problem)
        if preconditioner is None:
            self.print(f"No theory/ lines for this run's {type(optimizer).__name__}: they are for plain SGD/GD (momentum "
                       "and weight decay 0) and PreconditionedGD (identity, newton; diagonal with rotate: false) only.")
            return
        batch = (self.hparams.batch_size or 1) * trainer.accumulate_grad_batches * trainer.world_size
        error = None
        if fresh:  # the starting error in H's eigenbasis, float64 (one copy to the host, once)
            problem = self.problem.float64_values
            error = problem["basis"].T @ (self.iterate().detach().double().cpu() - problem["x_star"])
        self.theory.start(preconditioner, batch, error)

    def on_before_optimizer_step(self, optimizer):
        if self.writes_logs():
            self.log_step("train/grad_norm", torch.linalg.vector_norm(self.x.grad))
        if self.theory is not None and self.theory.active:
            self.theory.step(self.learning_rate())  # the lr this step uses (the schedule moves it after)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        with torch.no_grad():
            self.problem.project_(self.x)
        stepped = self.trajectory is not None and self.trainer.global_step > self.trajectory.steps[-1]
        if stepped:  # once per optimizer step, also with gradient accumulation
            self.trajectory.record(self.iterate(), self.trainer.global_step)

    def trajectory_file(self) -> Path | None:
        """runs/<experiment>/<run name>/trajectory.npz, beside config.yaml; None where nothing is
        written (no trajectory, no logger, fast_dev_run, or a process other than the first)."""
        trainer = self.trainer
        if self.trajectory is None or not trainer.loggers or trainer.fast_dev_run:
            return None
        folder = trainer.log_dir  # every process asks (under DDP it is a collective call); the first writes
        return Path(folder) / "trajectory.npz" if folder is not None and trainer.is_global_zero else None

    def save_trajectory(self) -> None:
        if self.trajectory is not None:
            self.trajectory.save()

    def on_validation_end(self):
        if not self.trainer.sanity_checking:
            self.save_trajectory()

    def evaluate(self, stage: str) -> None:
        x = self.iterate().detach()
        self.log(f"{stage}/loss", self.problem.value(x), prog_bar=True)
        for name, value in (self.progress(x) | self.problem.metrics(x)).items():
            self.log(f"{stage}/{name}", value)
        if stage == "val" and self.problem.f_star is not None:  # the optimal value, for the loss panel
            self.log("theory/loss", float(self.problem.float64_values["f_star"]))

    def validation_step(self, batch, batch_idx):
        self.evaluate("val")

    def test_step(self, batch, batch_idx):
        self.evaluate("test")

    def on_train_end(self):
        self.save_trajectory()
        if isinstance(self.problem, Function):
            self.print(self.problem.report())

    def batches(self, steps: int, batch_size: int | None) -> Samples:
        trainer = self.trainer
        return Samples(self.problem, batch_size, steps, self.sample_seed, trainer.global_rank if trainer else 0)

    def train_dataloader(self):
        return self.batches(self.hparams.steps_per_epoch, self.hparams.batch_size)

    def val_dataloader(self):
        return DeviceBatches((torch.zeros(1),), batch_size=1)  # one evaluation of the exact objective

    def test_dataloader(self):
        return DeviceBatches((torch.zeros(1),), batch_size=1)

    def predict_dataloader(self):
        return DeviceBatches((torch.zeros(1),), batch_size=1)
