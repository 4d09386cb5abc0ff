"""Tests of preconditioned gradient descent (optimizers.PreconditionedGD) on the objective family:
Newton's step solves an ill-conditioned quadratic at once, and it amplifies gradient noise."""

import pytest
from conftest import CONFIGS, QUIET, run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

PRECONDITIONED = str(CONFIGS / "objective_preconditioned.yaml")
NOISE = str(CONFIGS / "objective_preconditioned_noise.yaml")


def final(*args: str) -> dict[str, float]:
    """The metrics at the end of a 3-step run of objective_preconditioned.yaml (validated after it)."""
    short = ["--trainer.max_steps", "3", "--model.init_args.steps_per_epoch", "3", "--trainer.logger", "false"]
    cli = run("fit", "--config", PRECONDITIONED, *short, *QUIET, *args)
    return {name: float(value) for name, value in cli.trainer.callback_metrics.items()}


def test_newton_solves_an_ill_conditioned_quadratic_where_gradient_descent_crawls(in_tmp):
    newton = final()
    assert newton["val/suboptimality"] < 1e-6 and newton["val/dist_to_opt"] < 1e-3
    gradient_descent = final("--optimizer", "sgd", "--optimizer.lr", "1.0")  # step 1/L
    assert gradient_descent["val/suboptimality"] > 0.1 and gradient_descent["val/dist_to_opt"] > 2  # 0.32, 4.8


def settled_suboptimality(*args: str, steps: int = 600, settled: int = 150) -> tuple[float, object]:
    """Mean train/suboptimality of objective_preconditioned_noise.yaml over steps settled..steps."""
    cli = run("fit", "--config", NOISE, "--trainer.max_steps", str(steps), *QUIET, *args)
    events = EventAccumulator(cli.trainer.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    values = [event.value for event in events.Scalars("train/suboptimality") if event.step >= settled]
    assert len(values) == steps - settled
    return sum(values) / len(values), cli.model


@pytest.mark.slow
def test_newton_has_a_higher_noise_floor_than_sgd_at_the_same_step(in_tmp):
    newton, module = settled_suboptimality()
    sgd, _ = settled_suboptimality("--optimizer", "sgd", "--optimizer.lr", "0.2")
    problem, lr, batch_size = module.problem, 0.2, module.hparams.batch_size
    h, noise = problem.float64_values["eigenvalues"], problem.noise_std**2 / batch_size
    # stationary E[f - f*] = sum_i lr p_i h_i noise / (2 (2 - lr p_i h_i)), p_i = 1 / h_i for Newton, 1 for SGD
    newton_theory = len(h) * lr * noise / (2 * (2 - lr))
    assert sgd == pytest.approx(problem.noise_floor(lr, batch_size), rel=0.2)
    assert newton == pytest.approx(newton_theory, rel=0.2)
    assert newton > 2 * sgd  # 0.278 against 0.106 in theory
