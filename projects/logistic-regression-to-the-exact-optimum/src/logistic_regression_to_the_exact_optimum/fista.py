"""FISTA, the accelerated proximal gradient method, for an L1-penalized smooth convex objective:
the exact solutions the objective family (compressed sensing's Lasso) and the tabular family
(linear models with l1 > 0) measure their runs against, solved in float64.

    import torch
    from logistic_regression_to_the_exact_optimum.fista import fista
    a, b = torch.randn(30, 50, dtype=torch.float64), torch.randn(30, dtype=torch.float64)
    step = 1 / torch.linalg.matrix_norm(a, ord=2) ** 2   # 1 / L, L the largest curvature of f
    x = fista(lambda x: a.T @ (a @ x - b), torch.zeros(50, dtype=torch.float64), step, l1=0.1)
    # x minimizes 1/2 ||a x - b||^2 + 0.1 ||x||_1
"""

import math

import torch


def soft_threshold(x: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """The proximal map of threshold * ||x||_1: each entry moved `threshold` towards 0, stopping at 0."""
    return torch.sign(x) * torch.clamp(x.abs() - threshold, min=0.0)


def fista(gradient, start: torch.Tensor, step: float | torch.Tensor, l1: float | torch.Tensor,
          tolerance: float = 1e-12, max_steps: int = 50_000) -> torch.Tensor | None:
    """Minimize f(x) + sum_i l1_i |x_i| from `start` by FISTA with adaptive restarts (momentum is
    reset whenever it points uphill); None if it has not converged after `max_steps` steps.

    gradient: x -> the gradient of the smooth convex f at x;
    step:     1 / L, where L bounds the curvature of f (the largest eigenvalue of its Hessian);
    l1:       the penalty's weight: a number, or one per entry of x (0: that entry is not penalized);
    converged when a step moves x by at most tolerance * max(1, ||x||)."""
    threshold = step * l1
    x = y = start
    t = 1.0
    for _ in range(max_steps):
        x_new = soft_threshold(y - step * gradient(y), threshold)
        if torch.linalg.vector_norm(x_new - x) <= tolerance * max(1.0, float(torch.linalg.vector_norm(x_new))):
            return x_new
        t_new = 1.0 if (y - x_new) @ (x_new - x) > 0 else (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = x_new + (t - 1) / t_new * (x_new - x)
        x, t = x_new, t_new
    return None
