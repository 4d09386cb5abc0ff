"""Tests of the objective family: the math of each problem, the theory GD and SGD must follow,
the counterexample search, float64 runs, and every config."""

import lightning as L
import pytest
import torch
from conftest import CONFIGS, run_one_batch

from conditioning_momentum_and_the_noise_floor.config_errors import ConfigError
from conditioning_momentum_and_the_noise_floor.optim import make_optimizer
from conditioning_momentum_and_the_noise_floor.problems.objective import ObjectiveModule, Samples
from conditioning_momentum_and_the_noise_floor.problems.objective_function import project_simplex_
from conditioning_momentum_and_the_noise_floor.problems.objective_problems import CompressedSensing, LeastSquares, NoisyQuadratic

INEQUALITY = "conditioning_momentum_and_the_noise_floor.problems.objective.cyclic_sum_gap"


def fit(module: ObjectiveModule, steps: int, **trainer_args) -> L.Trainer:
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", **trainer_args)
    trainer.fit(module)
    return trainer


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("objective*.yaml")), ids=lambda path: path.stem)
def test_every_objective_config_runs_one_batch(config, in_tmp):
    run_one_batch(config)


def test_gradient_descent_on_a_quadratic_follows_theory():
    L.seed_everything(0)
    module = ObjectiveModule("quadratic", {"dim": 6, "condition_number": 10.0}, optimizer=make_optimizer("sgd", lr=1.0))
    x0, steps = module.x.detach().clone().double(), 40
    fit(module, steps)
    problem = module.problem
    basis, eigenvalues = problem.float64_values["basis"], problem.float64_values["eigenvalues"]
    # GD with step 1/L = 1: the error along eigenvector i is multiplied by (1 - h_i) at every step.
    predicted = basis @ torch.diag((1 - eigenvalues) ** steps) @ basis.T @ (x0 - problem.float64_values["x_star"])
    error = module.x.detach().double() - problem.float64_values["x_star"]
    assert torch.allclose(error, predicted, rtol=1e-3, atol=1e-5)
    initial = torch.linalg.vector_norm(x0 - problem.float64_values["x_star"])
    assert torch.linalg.vector_norm(error) <= (1 - 1 / 10) ** steps * initial * 1.001


def test_least_squares_optimum_matches_a_direct_solve():
    problem = LeastSquares(rows=200, dim=10, condition_number=30.0, noise_std=0.5, seed=3)
    a, b = problem.float64_values["a"], problem.float64_values["b"]
    direct = torch.linalg.solve(a.T @ a, a.T @ b)  # the normal equations
    assert torch.allclose(problem.float64_values["x_star"], direct, rtol=1e-10, atol=1e-10)
    eigenvalues = torch.linalg.eigvalsh(a.T @ a / 200)
    assert float(eigenvalues.max() / eigenvalues.min()) == pytest.approx(30.0, rel=1e-3)


def test_lasso_solution_satisfies_the_optimality_conditions():
    problem = CompressedSensing(dim=50, measurements=30, sparsity=3, l1=0.05, seed=1)
    a, b, x = (problem.float64_values[name] for name in ("a", "b", "x_star"))
    gradient = a.T @ (a @ x - b)
    on = x != 0
    assert on.any() and torch.allclose(gradient[on], -0.05 * torch.sign(x[on]), atol=1e-8)
    assert (gradient[~on].abs() <= 0.05 + 1e-8).all()


def sgd_floor(lr: float, batch_size: int, steps: int = 3000) -> float:
    """Mean suboptimality of SGD with constant step over the second half of the run."""
    torch.manual_seed(0)
    problem = NoisyQuadratic(dim=10, condition_number=10.0, noise_std=1.0)
    x = torch.nn.Parameter(problem.float64_values["x_star"].float().clone())  # start at the floor's centre
    optimizer = torch.optim.SGD([x], lr=lr)
    values = []
    for step, batch in enumerate(Samples(problem, batch_size, steps, seed=0)):
        optimizer.zero_grad()
        problem.loss(x, batch).backward()
        optimizer.step()
        if step >= steps // 2:
            values.append(float(problem.value(x.detach())))
    return sum(values) / len(values)


def test_sgd_noise_floor_falls_with_larger_batches_and_smaller_steps():
    base, bigger_batch, smaller_step = sgd_floor(0.2, 2), sgd_floor(0.2, 8), sgd_floor(0.05, 2)
    assert bigger_batch < base / 2.5 and smaller_step < base / 2.5
    problem = NoisyQuadratic(dim=10, condition_number=10.0, noise_std=1.0)
    for floor, lr, batch_size in ((base, 0.2, 2), (bigger_batch, 0.2, 8), (smaller_step, 0.05, 2)):
        assert floor == pytest.approx(problem.noise_floor(lr, batch_size), rel=0.3)


def search(bound: float) -> ObjectiveModule:
    L.seed_everything(0)
    args = {"function": INEQUALITY, "function_args": {"bound": bound}, "shape": [3], "domain": "positive"}
    module = ObjectiveModule("function", args, optimizer=make_optimizer("adam", lr=0.05))
    fit(module, 150)
    return module


def test_inequality_search_finds_a_counterexample_to_a_false_inequality_only(capsys):
    found, x, value = search(1.6).problem.counterexample()
    assert found and value < -0.09  # the minimum of the sum is 3/2: 1.5 - 1.6 = -0.1
    assert (x > 0).all() and float((x / (x.roll(-1) + x.roll(-2))).sum()) < 1.6
    assert "Counterexample found" in capsys.readouterr().out
    found, _, value = search(1.5).problem.counterexample()  # Nesbitt's inequality: true
    assert not found and value > -1e-6
    assert "No counterexample found" in capsys.readouterr().out


def test_projection_keeps_iterates_in_the_domain():
    x = torch.tensor([[0.5, 2.0, -1.0], [0.2, 0.3, 0.5]])
    project_simplex_(x)
    assert torch.allclose(x.sum(dim=1), torch.ones(2)) and (x >= 0).all()
    assert torch.allclose(x[1], torch.tensor([0.2, 0.3, 0.5]))  # already on the simplex: unchanged
    L.seed_everything(0)
    args = {"function": INEQUALITY, "shape": [3], "domain": "simplex", "constraint": "project", "restarts": 4}
    module = ObjectiveModule("function", args, optimizer=make_optimizer("sgd", lr=0.01))
    fit(module, 20)
    assert torch.allclose(module.x.sum(dim=1), torch.ones(4), atol=1e-5) and (module.x >= 0).all()


def test_float64_runs_converge_beyond_float32_accuracy():
    L.seed_everything(0)
    module = ObjectiveModule("least_squares", {"rows": 60, "dim": 5, "condition_number": 3.0},
                             optimizer=make_optimizer("sgd", lr=1.0))
    trainer = fit(module, 150, precision="64-true")
    assert module.x.dtype == torch.float64 and module.problem.x_star.dtype == torch.float64
    assert trainer.callback_metrics["val/dist_to_opt"] < 1e-11


@pytest.mark.parametrize("problem, args", [("phase_retrieval", {}), ("matrix_completion", {})])
def test_nonconvex_problems_recover_the_ground_truth(problem, args):
    L.seed_everything(0)
    lr, momentum = {"phase_retrieval": (0.005, 0.5), "matrix_completion": (5.0, 0.8)}[problem]
    module = ObjectiveModule(problem, args, optimizer=make_optimizer("sgd", lr=lr, momentum=momentum))
    trainer = fit(module, 300)
    assert trainer.callback_metrics["val/dist_to_opt"] < 1e-3


def test_bad_problems_are_explained():
    with pytest.raises(ConfigError, match="least_squares, matrix_completion"):
        ObjectiveModule("quadratc")
    with pytest.raises(ConfigError, match="set batch_size to a number"):
        ObjectiveModule("noisy_quadratic")
    with pytest.raises(ConfigError, match=r"batch_size must be a number of samples per step >= 1 .*got -3"):
        ObjectiveModule("least_squares", batch_size=-3)
    with pytest.raises(ConfigError, match="cannot import function"):
        ObjectiveModule("function", {"function": "no_such_module.f"})
    with pytest.raises(ConfigError, match="'dimension'"):
        ObjectiveModule("quadratic", {"dimension": 3})
