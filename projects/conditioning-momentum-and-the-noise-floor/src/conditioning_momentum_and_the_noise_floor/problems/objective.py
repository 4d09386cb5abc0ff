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
(torch.optim.SGD without momentum or weight decay) or by optimizers.PreconditionedGD with
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
    uv run python -m conditioning_momentum_and_the_noise_floor.figures objective_zigzag
draws each run's path over the contours of f.

Your own objective: `problem: function` with `problem_args: {function: my_module.my_function}`,
see `Function` below and the worked example `cyclic_sum_gap`.
"""

import importlib
import inspect
import math
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import DeviceBatches, SeededDraws
from ..fista import fista
from ..module import CourseModule, OptimizerFactory, ScheduleFactory
from ..registry import ConfigError, check_arguments, lookup
from .objective_theory import QuadraticTheory, Trajectory, choose_plane, noise_floor, plane_through, preconditioner_eigenvalues


def rounded(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` rounded to float32 and back to float64: the problem data are float32 numbers, so
    32-bit and 64-bit runs solve exactly the same problem, whose optimum is computed in float64."""
    return tensor.float().double()


def random_rotation(dim: int, generator: torch.Generator) -> torch.Tensor:
    """A random orthogonal matrix (Haar distributed), float64."""
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def spectrum(dim: int, condition_number: float) -> torch.Tensor:
    """`dim` eigenvalues spaced evenly on a log scale from 1/condition_number to 1 (so L = 1)."""
    if condition_number < 1:
        raise ConfigError(f"condition_number must be >= 1, got {condition_number}")
    return torch.logspace(-math.log10(condition_number), 0.0, dim, dtype=torch.float64)


class Problem(nn.Module):
    """An objective f(x) = E[loss(x, batch)] with what is known about its minimizer.

    Subclasses set `shape` (of the variable), `sampling` ("none": deterministic, "rows":
    batches of row indices out of `num_rows`, "noise": fresh standard normal samples of
    `noise_shape`) and, when known, the buffers `x_star` and `f_star`. Data are buffers, so
    they follow the module to its device and dtype; `exact(name, value)` also keeps a float64
    copy that a 64-true run uses instead of the float32 buffer.
    """

    sampling = "none"
    num_rows = 0
    noise_shape: tuple[int, ...] = ()

    def __init__(self):
        super().__init__()
        self.float64_values: dict[str, torch.Tensor] = {}
        self.x_star: torch.Tensor | None = None
        self.f_star: torch.Tensor | None = None

    def exact(self, name: str, value: torch.Tensor) -> None:
        """Register `value` (float64) as a buffer, remembering it for 64-bit runs."""
        if name in self.__dict__:
            delattr(self, name)  # x_star and f_star start as None
        self.float64_values[name] = value
        self.register_buffer(name, value.to(torch.get_default_dtype()), persistent=False)

    def use_float64(self) -> None:
        """Replace the float32 buffers by their float64 values (for precision 64-true)."""
        for name, value in self.float64_values.items():
            setattr(self, name, value.clone())

    def initial_point(self) -> torch.Tensor:
        """The starting parameter, drawn from the global seed (seed_everything)."""
        return torch.randn(self.shape)

    def point(self, param: torch.Tensor) -> torch.Tensor:
        """The iterate x for the module's parameter (a constraint's parametrization goes here)."""
        return param

    def project_(self, param: torch.Tensor) -> None:
        """Project the parameter onto the feasible set in place after each step (none here)."""

    def sample(self, batch_size: int | None, generator: torch.Generator) -> torch.Tensor:
        """One step's batch: row indices, noise samples, or an empty tensor."""
        if self.sampling == "rows":
            if batch_size is None or batch_size >= self.num_rows:
                return torch.arange(self.num_rows)  # full batch: gradient descent
            return torch.randint(self.num_rows, (batch_size,), generator=generator)  # with replacement
        if self.sampling == "noise":
            return torch.randn(batch_size, *self.noise_shape, generator=generator)
        return torch.empty(0)

    def loss(self, x: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The objective estimated on `batch` (default: the exact objective)."""
        return self.value(x)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """The exact objective f(x). Abstract: every problem below defines its own."""
        raise NotImplementedError

    def distance(self, x: torch.Tensor) -> torch.Tensor | None:
        """||x - x*||, or None when the minimizer is unknown."""
        return None if self.x_star is None else torch.linalg.vector_norm(x - self.x_star)

    def metrics(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Problem-specific measures logged at validation (e.g. support recovery)."""
        return {}


class Quadratic(Problem):
    """f(x) = 1/2 (x - x*)^T H (x - x*), H with eigenvalues from 1/condition_number to 1.

    L = 1 and mu = 1/condition_number, so gradient descent with lr 1 (= 1/L) shrinks the error
    along the eigenvector of eigenvalue h by (1 - h) per step: the slowest by 1 - 1/condition_number.
    """

    def __init__(self, dim: int = 20, condition_number: float = 50.0, rotate: bool = True, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.shape = (dim,)
        eigenvalues = spectrum(dim, condition_number)
        rotation = random_rotation(dim, generator)  # drawn even when unused: else x* below would equal the start
        basis = rotation if rotate else torch.eye(dim, dtype=torch.float64)  # drawn from a global seed equal to `seed`
        self.rotate = rotate
        self.exact("eigenvalues", eigenvalues)
        self.exact("basis", basis)  # columns are the eigenvectors; rotate: false aligns them with the axes
        self.exact("hessian", rounded(basis @ torch.diag(eigenvalues) @ basis.T))
        self.exact("x_star", rounded(torch.randn(dim, generator=generator, dtype=torch.float64)))
        self.exact("f_star", torch.zeros((), dtype=torch.float64))

    def value(self, x):
        error = x - self.x_star
        return 0.5 * error @ self.hessian @ error


class NoisyQuadratic(Quadratic):
    """The noisy quadratic model: the quadratic above, observed through a batch of B noise draws.

    Each sample xi ~ N(0, I) adds noise_std * xi^T H^(1/2) (x - x*) to the loss, so the batch
    gradient is H (x - x*) plus noise of covariance noise_std^2 H / B. SGD with constant step lr
    then stops improving at the noise floor E[f - f*] = sum_i lr noise_std^2 h_i / (2 B (2 - lr h_i)),
    which is about lr * noise_std^2 * trace(H) / (4 B): proportional to lr / B.
    """

    sampling = "noise"

    def __init__(self, dim: int = 20, condition_number: float = 10.0, noise_std: float = 1.0,
                 rotate: bool = True, seed: int = 0):
        super().__init__(dim, condition_number, rotate, seed)
        self.noise_shape = (dim,)
        self.noise_std = noise_std
        root = self.float64_values["basis"] @ torch.diag(self.float64_values["eigenvalues"].sqrt())
        self.exact("noise_map", rounded(root @ self.float64_values["basis"].T))  # H^(1/2)

    def loss(self, x, batch):
        noise = batch.mean(dim=0)  # the mean of B draws: variance 1/B
        return self.value(x) + self.noise_std * noise @ self.noise_map @ (x - self.x_star)

    def noise_floor(self, lr: float, batch_size: int, preconditioner: torch.Tensor | None = None) -> float:
        """The expected suboptimality that SGD with constant step `lr` settles at (formula above).
        `preconditioner`: the eigenvalues p_i, in H's eigenbasis, of P in steps x <- x - lr P g."""
        return noise_floor(self.float64_values["eigenvalues"], self.noise_std, lr, batch_size, preconditioner)



class Rosenbrock(Problem):
    """f(x) = sum_i b (x_(i+1) - x_i^2)^2 + (a - x_i)^2: a curved valley; minimizer (a, a^2, a, ...)
    for dim 2, (1, ..., 1) for a = 1 in any dimension. Starts at the classic (-1.2, 1, -1.2, 1, ...)."""

    def __init__(self, dim: int = 2, a: float = 1.0, b: float = 100.0):
        super().__init__()
        if dim < 2 or (dim > 2 and a != 1.0):
            raise ConfigError("rosenbrock needs dim >= 2, and a = 1 when dim > 2 (else its minimizer is not known here)")
        self.shape, self.a, self.b = (dim,), a, b
        x_star = torch.tensor([a, a * a] if dim == 2 else [1.0] * dim, dtype=torch.float64)
        self.exact("x_star", x_star)
        self.exact("f_star", torch.zeros((), dtype=torch.float64))

    def initial_point(self):
        return torch.tensor([-1.2, 1.0] * (self.shape[0] // 2) + [-1.2] * (self.shape[0] % 2))

    def value(self, x):
        return (self.b * (x[1:] - x[:-1] ** 2) ** 2 + (self.a - x[:-1]) ** 2).sum()


def design_matrix(rows: int, dim: int, condition_number: float, generator: torch.Generator) -> torch.Tensor:
    """A rows x dim matrix A whose A^T A / rows has eigenvalues from 1/condition_number to 1 exactly."""
    if rows < dim:
        raise ConfigError(f"rows ({rows}) must be >= dim ({dim}) for a well-posed least-squares problem")
    left, _ = torch.linalg.qr(torch.randn(rows, dim, generator=generator, dtype=torch.float64))
    right = random_rotation(dim, generator)
    return math.sqrt(rows) * left @ torch.diag(spectrum(dim, condition_number).sqrt()) @ right.T


class LeastSquares(Problem):
    """f(x) = 1/(2 rows) ||A x - b||^2 with b = A x_true + noise; x* solved exactly (float64).

    A^T A / rows has eigenvalues from 1/condition_number to 1, so L = 1. A batch is a set of
    rows drawn uniformly (with replacement); batch_size null takes all rows (gradient descent).
    """

    sampling = "rows"

    def __init__(self, rows: int = 500, dim: int = 50, condition_number: float = 100.0,
                 noise_std: float = 0.1, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.shape, self.num_rows = (dim,), rows
        a = rounded(design_matrix(rows, dim, condition_number, generator))
        x_true = torch.randn(dim, generator=generator, dtype=torch.float64)
        b = rounded(a @ x_true + noise_std * torch.randn(rows, generator=generator, dtype=torch.float64))
        x_star = torch.linalg.lstsq(a, b[:, None]).solution[:, 0]
        self.exact("a", a)
        self.exact("b", b)
        self.exact("x_star", x_star)
        self.exact("f_star", 0.5 * ((a @ x_star - b) ** 2).mean())

    def loss(self, x, batch):
        return 0.5 * ((self.a[batch] @ x - self.b[batch]) ** 2).mean()

    def value(self, x):
        return 0.5 * ((self.a @ x - self.b) ** 2).mean()


def lasso(a: torch.Tensor, b: torch.Tensor, l1: float, tolerance: float = 1e-13, max_steps: int = 100_000):
    """argmin_x 1/2 ||a x - b||^2 + l1 ||x||_1 by FISTA (fista.py), in float64."""
    step = 1.0 / torch.linalg.matrix_norm(a, ord=2) ** 2  # 1 / the largest eigenvalue of a^T a
    x = fista(lambda y: a.T @ (a @ y - b), torch.zeros(a.shape[1], dtype=torch.float64), step, l1, tolerance, max_steps)
    if x is None:
        raise RuntimeError("the Lasso solver did not converge")
    return x


class CompressedSensing(Problem):
    """Recover a sparse x_true from measurements b = A x_true + noise, with fewer measurements than
    unknowns: f(x) = 1/2 ||A x - b||^2 + l1 ||x||_1 (A Gaussian, scaled by 1/sqrt(measurements)).

    x* is the Lasso solution (solved in float64), which differs a little from x_true; besides the
    distance to x*, validation reports `relative_error` ||x - x_true|| / ||x_true|| and
    `support_recovery`, the fraction of x_true's nonzeros among the `sparsity` largest |x_i|.
    """

    sampling = "rows"

    def __init__(self, dim: int = 200, measurements: int = 80, sparsity: int = 8, noise_std: float = 0.0,
                 l1: float = 0.01, seed: int = 0):
        super().__init__()
        if not 0 < sparsity <= dim:
            raise ConfigError(f"sparsity must be between 1 and dim ({dim}), got {sparsity}")
        generator = torch.Generator().manual_seed(seed)
        self.shape, self.num_rows, self.sparsity, self.l1 = (dim,), measurements, sparsity, l1
        a = rounded(torch.randn(measurements, dim, generator=generator, dtype=torch.float64) / math.sqrt(measurements))
        support = torch.randperm(dim, generator=generator)[:sparsity]
        x_true = torch.zeros(dim, dtype=torch.float64)
        x_true[support] = rounded(torch.randn(sparsity, generator=generator, dtype=torch.float64))
        b = rounded(a @ x_true + noise_std * torch.randn(measurements, generator=generator, dtype=torch.float64))
        x_star = lasso(a, b, l1)
        self.exact("a", a)
        self.exact("b", b)
        self.exact("x_true", x_true)
        self.exact("x_star", x_star)
        self.exact("f_star", 0.5 * ((a @ x_star - b) ** 2).sum() + l1 * x_star.abs().sum())

    def initial_point(self):
        return torch.zeros(self.shape)

    def loss(self, x, batch):
        # the rows' share of the measurement term, scaled to estimate the whole sum
        residual = self.a[batch] @ x - self.b[batch]
        return 0.5 * self.num_rows * (residual**2).mean() + self.l1 * x.abs().sum()

    def value(self, x):
        return 0.5 * ((self.a @ x - self.b) ** 2).sum() + self.l1 * x.abs().sum()

    def metrics(self, x):
        top = x.abs().topk(self.sparsity).indices
        return {
            "relative_error": torch.linalg.vector_norm(x - self.x_true) / torch.linalg.vector_norm(self.x_true),
            "support_recovery": (self.x_true[top] != 0).float().mean(),
        }


class PhaseRetrieval(Problem):
    """Recover x_true from y_i = (a_i . x_true)^2, signs lost: f(x) = 1/(4 m) sum_i ((a_i . x)^2 - y_i)^2.

    Nonconvex; x_true and -x_true are both minimizers (f* = 0), so the distance is to the
    nearer one. Starts from the spectral initialization (top eigenvector of sum_i y_i a_i a_i^T),
    or from a random point with init: random.
    """

    sampling = "rows"

    def __init__(self, dim: int = 20, measurements: int = 200, init: str = "spectral", seed: int = 0):
        super().__init__()
        lookup({"spectral": None, "random": None}, init, "phase retrieval init")
        generator = torch.Generator().manual_seed(seed)
        self.shape, self.num_rows, self.init = (dim,), measurements, init
        a = rounded(torch.randn(measurements, dim, generator=generator, dtype=torch.float64))
        x_true = rounded(torch.randn(dim, generator=generator, dtype=torch.float64))
        self.exact("a", a)
        self.exact("y", rounded((a @ x_true) ** 2))
        self.exact("x_star", x_true)
        self.exact("f_star", torch.zeros((), dtype=torch.float64))

    def initial_point(self):
        if self.init == "random":
            return torch.randn(self.shape)
        a, y = self.float64_values["a"], self.float64_values["y"]
        _, vectors = torch.linalg.eigh((a.T * y) @ a / len(y))
        return (vectors[:, -1] * y.mean().sqrt()).to(torch.get_default_dtype())  # ||x_true||^2 ~ mean(y)

    def loss(self, x, batch):
        return 0.25 * (((self.a[batch] @ x) ** 2 - self.y[batch]) ** 2).mean()

    def value(self, x):
        return 0.25 * (((self.a @ x) ** 2 - self.y) ** 2).mean()

    def distance(self, x):
        return torch.minimum(torch.linalg.vector_norm(x - self.x_star), torch.linalg.vector_norm(x + self.x_star))


class MatrixCompletion(Problem):
    """Recover a rank-r matrix M* (rows x cols) from a fraction of its entries by factorization:
    x = [U; V] with U rows x r and V cols x r, f(x) = 1/(2 |observed|) sum_observed ((U V^T)_ij - M*_ij)^2.

    Nonconvex; f* = 0 at U V^T = M*, reached only up to an invertible r x r matrix, so the
    distance reported is ||U V^T - M*||_F / ||M*||_F (relative error, over all entries).
    Starts from the spectral initialization (top-r SVD of the rescaled observed entries).
    """

    sampling = "rows"

    def __init__(self, rows: int = 60, cols: int = 40, rank: int = 3, observed: float = 0.4, seed: int = 0):
        super().__init__()
        if not 0 < observed <= 1:
            raise ConfigError(f"observed is the fraction of entries seen: between 0 and 1, got {observed}")
        generator = torch.Generator().manual_seed(seed)
        self.shape, self.split = (rows + cols, rank), rows
        u = torch.randn(rows, rank, generator=generator, dtype=torch.float64)
        v = torch.randn(cols, rank, generator=generator, dtype=torch.float64)
        target = rounded(u @ v.T / math.sqrt(rank))
        entries = torch.randperm(rows * cols, generator=generator)[: max(1, round(observed * rows * cols))]
        self.num_rows = len(entries)
        self.exact("target", target)
        self.exact("f_star", torch.zeros((), dtype=torch.float64))
        self.register_buffer("entries", entries, persistent=False)  # observed entries, as flat indices
        self.observed = observed

    def product(self, x):
        return x[: self.split] @ x[self.split :].T

    def initial_point(self):
        target, entries = self.float64_values["target"], self.entries
        seen = torch.zeros(target.numel(), dtype=torch.float64)
        seen[entries] = target.flatten()[entries] / self.observed  # an unbiased estimate of M*
        u, s, vh = torch.linalg.svd(seen.reshape(target.shape), full_matrices=False)
        rank, root = self.shape[1], s[: self.shape[1]].sqrt()
        return torch.cat([u[:, :rank] * root, vh[:rank].T * root]).to(torch.get_default_dtype())

    def loss(self, x, batch):
        entries = self.entries[batch]
        return 0.5 * ((self.product(x).flatten()[entries] - self.target.flatten()[entries]) ** 2).mean()

    def value(self, x):
        return self.loss(x, slice(None))

    def distance(self, x):
        return torch.linalg.matrix_norm(self.product(x) - self.target) / torch.linalg.matrix_norm(self.target)


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
