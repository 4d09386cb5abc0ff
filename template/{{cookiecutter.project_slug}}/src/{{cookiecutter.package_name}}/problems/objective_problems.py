"""The objective family's built-in problems: each knows its objective, its minimizer or ground
truth, and what makes it random (rows of a measurement matrix, or fresh noise).

    from {{ cookiecutter.package_name }}.problems.objective_problems import Quadratic
    Quadratic(dim=2, condition_number=10).value(torch.ones(2))  # f at (1, 1)

problems/objective.py names them (PROBLEMS) and trains them; its docstring says what each step logs.
"""

import math

import torch
from torch import nn

from ..config_errors import ConfigError, lookup
from ..fista import fista
from .objective_theory import noise_floor


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
