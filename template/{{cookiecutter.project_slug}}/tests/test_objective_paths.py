"""Tests of the objective family's recorded paths (trajectory.npz) and theory/ lines: each is
checked against its closed form, on real runs of train.py and on the module trained in Python."""

from collections import defaultdict
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import CONFIGS, QUIET, fails_with, run
from lightning.pytorch.loggers import Logger

from {{ cookiecutter.package_name }}.config_errors import ConfigError
from {{ cookiecutter.package_name }}.optim import PreconditionedGD, make_schedule
from {{ cookiecutter.package_name }}.problems.objective import ObjectiveModule
from {{ cookiecutter.package_name }}.report.runs import read_scalars

FILE_KEYS = ["basis", "minimizer", "origin", "plane", "step", "xy"]


def fit(config: str, *args: str):
    """train.py fit with an experiment config; returns the CLI."""
    return run("fit", "--config", str(CONFIGS / config), *QUIET, *args)


def trajectory(cli) -> dict[str, np.ndarray]:
    with np.load(Path(cli.trainer.log_dir) / "trajectory.npz") as saved:
        return {key: saved[key] for key in saved.files}


def logged(cli) -> dict[str, np.ndarray]:
    """Every scalar the run wrote to TensorBoard: tag -> (steps, values)."""
    return {tag: (series.steps, series.values) for tag, series in read_scalars(Path(cli.trainer.log_dir)).items()}


def test_gradient_descent_path_and_theory_lines_follow_the_closed_form(in_tmp):
    lr, steps = 1.9, 50  # objective_zigzag.yaml: a 2-D quadratic with H = diag(h), GD from its `start`
    cli = fit("objective_zigzag.yaml", "--trainer.max_steps", str(steps))
    saved, problem = trajectory(cli), cli.model.problem.float64_values
    assert sorted(saved) == FILE_KEYS and str(saved["plane"]) == "coordinates"
    assert saved["step"].dtype == np.int64 and np.array_equal(saved["step"], np.arange(steps + 1))
    for key, shape in (("xy", (steps + 1, 2)), ("origin", (2,)), ("basis", (2, 2)), ("minimizer", (2,))):
        assert saved[key].dtype == np.float64 and saved[key].shape == shape
    x_star, h = problem["x_star"].numpy(), np.diag(problem["hessian"].numpy())
    assert np.array_equal(saved["origin"], [0, 0]) and np.array_equal(saved["basis"], np.eye(2))
    assert np.array_equal(saved["minimizer"], x_star)
    t = np.arange(steps + 1)[:, None]
    error = np.array(cli.model.hparams.start) - x_star
    np.testing.assert_allclose(saved["xy"], x_star + (1 - lr * h) ** t * error, atol=2e-6)  # x* + (I - lr H)^t (x0 - x*)

    scalars = logged(cli)
    step, expected = scalars["theory/suboptimality"]
    assert np.array_equal(step, np.arange(steps))  # every step (log_every_n_steps 1), from the start
    f = 0.5 * (h * (1 - lr * h) ** (2 * step[:, None]) * error**2).sum(axis=1)
    np.testing.assert_allclose(expected, f, rtol=1e-5)
    np.testing.assert_allclose(scalars["train/suboptimality"][1], f, rtol=1e-4)  # the run follows it
    bound = np.max((1 - lr * h) ** 2) ** step * f[0]
    np.testing.assert_allclose(scalars["theory/rate_bound"][1], bound, rtol=1e-5)
    assert (scalars["train/suboptimality"][1] <= bound * (1 + 1e-5)).all()
    assert (scalars["theory/loss"][1] == 0).all() and "theory/noise_floor" not in scalars


def test_eigenvector_plane_and_a_resumed_run_continue_the_path(in_tmp):
    lr, start = 1.5, np.linspace(-1.0, 1.0, 20)  # objective.yaml: a rotated 20-dim quadratic, 50 steps an epoch
    args = ("--model.init_args.trajectory", "eigenvectors", "--optimizer.lr", str(lr),
            "--model.init_args.start", str(start.tolist()))
    fit("objective.yaml", *args, "--trainer.max_epochs", "1")
    cli = fit("objective.yaml", *args, "--trainer.max_epochs", "2", "--ckpt_path", "last")
    saved, problem = trajectory(cli), cli.model.problem.float64_values
    assert np.array_equal(saved["step"], np.arange(101))  # steps 0-50, then 51-100: none twice
    vectors, h, x_star = problem["basis"].numpy(), problem["eigenvalues"].numpy(), problem["x_star"].numpy()
    assert str(saved["plane"]) == "eigenvectors" and np.array_equal(saved["origin"], x_star)
    np.testing.assert_array_equal(saved["basis"], vectors[:, [0, -1]].T)  # the flattest and the steepest direction
    np.testing.assert_array_equal(saved["minimizer"], [0, 0])
    error = vectors.T @ (start - x_star)  # in the eigenbasis, each coordinate shrinks by 1 - lr h_i per step
    t = np.arange(101)[:, None]
    np.testing.assert_allclose(saved["xy"], (1 - lr * h[[0, -1]]) ** t * error[[0, -1]], atol=2e-6)

    step, expected = logged(cli)["theory/suboptimality"]  # every 10th step; 59-99 after the resume
    assert np.array_equal(step, np.arange(9, 100, 10))
    f = 0.5 * (h * (1 - lr * h) ** (2 * step[:, None]) * error**2).sum(axis=1)
    np.testing.assert_allclose(expected, f, rtol=1e-5)


class Recorder(Logger):
    """A logger that keeps what it is given: recorder.metrics[tag][step] = value."""

    name, version = "recorder", 0

    def __init__(self):
        super().__init__()
        self.metrics = defaultdict(dict)

    def log_metrics(self, metrics, step=None):
        for tag, value in metrics.items():
            self.metrics[tag][step] = float(value)

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def train(module: ObjectiveModule, steps: int, logger: Logger | bool = False) -> L.Trainer:
    trainer = L.Trainer(max_steps=steps, logger=logger, log_every_n_steps=1, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(module)
    return trainer


def test_noisy_quadratic_theory_lines_with_a_schedule():
    start, steps, noise, batch = np.full(20, 0.5), 40, 1.5, 4
    module = ObjectiveModule("noisy_quadratic", {"dim": 20, "noise_std": noise}, batch_size=batch, start=start.tolist(),
                             optimizer=partial(torch.optim.SGD, lr=0.2), scheduler=make_schedule("cosine"))
    recorder = Recorder()
    train(module, steps, recorder)
    logged = {tag: [values[step] for step in sorted(values)] for tag, values in recorder.metrics.items()}
    lrs = logged["opt/lr"]  # the step size of each step, falling along the cosine
    assert len(lrs) == steps and lrs[0] > 2 * lrs[3 * steps // 4] > 0
    problem = module.problem.float64_values
    vectors, h, x_star = problem["basis"].numpy(), problem["eigenvalues"].numpy(), problem["x_star"].numpy()
    mean_square = (vectors.T @ (start - x_star)) ** 2
    expected, floors = [], []
    for lr in lrs:
        expected.append(0.5 * (h * mean_square).sum())
        floors.append((0.5 * h * lr * noise**2 / (batch * (2 - lr * h))).sum())
        mean_square = (1 - lr * h) ** 2 * mean_square + lr**2 * noise**2 * h / batch
    np.testing.assert_allclose(logged["theory/suboptimality"], expected, rtol=1e-6)
    np.testing.assert_allclose(logged["theory/noise_floor"], floors, rtol=1e-6)
    assert "theory/rate_bound" not in logged


@pytest.mark.parametrize("optimizer, rotate, eigenvalues", [
    (partial(torch.optim.SGD, lr=1.5), True, lambda h: torch.ones_like(h)),
    (partial(PreconditionedGD, lr=0.8, preconditioner="identity"), True, lambda h: torch.ones_like(h)),
    (partial(PreconditionedGD, lr=0.8, preconditioner="newton", damping=0.5), True, lambda h: 1 / (h + 0.5)),
    (partial(PreconditionedGD, lr=0.8, preconditioner="diagonal", damping=0.1), False, lambda h: 1 / (h + 0.1)),
    (partial(PreconditionedGD, lr=0.8, preconditioner="diagonal"), True, None),  # diag H is not H's eigenbasis
    (partial(torch.optim.SGD, lr=0.5, momentum=0.5), True, None),
], ids=["sgd", "identity", "newton", "diagonal", "diagonal_rotated", "momentum"])
def test_theory_follows_gradient_descent_and_its_preconditioned_forms(optimizer, rotate, eigenvalues, capsys):
    L.seed_everything(0)
    module = ObjectiveModule("quadratic", {"dim": 5, "condition_number": 10.0, "rotate": rotate}, optimizer=optimizer)
    x0, steps = module.x.detach().double().clone(), 15
    trainer = train(module, steps)
    if eigenvalues is None:
        assert not module.theory.active and "No theory/ lines" in capsys.readouterr().out
        return
    problem = module.problem.float64_values
    vectors, h = problem["basis"], problem["eigenvalues"]
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    predicted = (1 - lr * eigenvalues(h) * h) ** steps * (vectors.T @ (x0 - problem["x_star"]))
    # No noise: the expected squared error is the squared error itself, along each eigenvector.
    assert torch.allclose(module.theory.mean_square, predicted**2, rtol=1e-6, atol=1e-12)
    error = vectors.T @ (module.x.detach().double() - problem["x_star"])
    assert torch.allclose(error, predicted, rtol=1e-4, atol=1e-6)


def test_bad_trajectory_and_start_are_explained(capsys, in_tmp):
    fails_with("trajectory must be coordinates, eigenvectors, random, auto or null, got 'diagonal'", capsys,
               "fit", "--config", str(CONFIGS / "objective.yaml"), "--model.init_args.trajectory", "diagonal")
    with pytest.raises(ConfigError, match="trajectory coordinates needs a variable of exactly 2 numbers, this one has 20"):
        ObjectiveModule("quadratic", {"dim": 20}, trajectory="coordinates")
    with pytest.raises(ConfigError, match="trajectory eigenvectors needs problem quadratic or noisy_quadratic"):
        ObjectiveModule("rosenbrock", trajectory="eigenvectors")
    with pytest.raises(ConfigError, match=r"start has 3 numbers, but the variable has 2 \(shape \[2\]\)"):
        ObjectiveModule("quadratic", {"dim": 2}, start=[1.0, 2.0, 3.0])


@pytest.mark.slow
@pytest.mark.parametrize("lr", [0.1, 0.05])
def test_sgd_settles_at_the_theory_noise_floor(lr, in_tmp):
    """The acceptance criterion: on configs/objective_noise_floor.yaml, the mean suboptimality
    once settled (after ~200 steps at lr 0.1, ~450 at 0.05) agrees with theory/noise_floor."""
    cli = fit("objective_noise_floor.yaml", "--optimizer.lr", str(lr), "--trainer.max_steps", "3000")
    scalars = logged(cli)
    floor = scalars["theory/noise_floor"][1]
    assert np.allclose(floor, floor[0])  # a constant step: one floor
    step, measured = scalars["train/suboptimality"]
    assert measured[step >= 800].mean() == pytest.approx(floor[0], rel=0.2)


@pytest.mark.slow
def test_the_lectures_zigzag_figure_from_three_runs(in_tmp):
    """docs/lectures.md's picture, end to end: GD, heavy ball and Adam on the condition number 50
    valley (objective_zigzag.yaml), then the figures command; GD alternates sides of the valley."""
    from {{ cookiecutter.package_name }}.report import figures
    from {{ cookiecutter.package_name }}.report import objective_trajectories as trajectories

    fit("objective_zigzag.yaml")
    fit("objective_zigzag.yaml", "--optimizer", "momentum", "--optimizer.lr", "1.0", "--optimizer.momentum", "0.7")
    fit("objective_zigzag.yaml", "--optimizer", "adam", "--optimizer.lr", "0.3")
    result = figures.main(["objective_zigzag", "--out", "figures", "--embed"])
    assert Path("figures/trajectories.png") in result["written"]
    runs = figures.select_runs(["objective_zigzag"])
    notes: list[str] = []
    (picture,) = trajectories.pictures_of([trajectories.read_trajectory(run, notes) for run in runs])
    drawing = trajectories.draw_picture(trajectories.prepare(picture, notes, points=20), figures.group_runs(runs))
    paths = {line.get_label(): np.asarray(line.get_ydata()) for line, _ in drawing.paths}
    assert len(paths) == 3  # one labelled path per run
    across = {label: y - picture.trajectories[0].minimizer[1] for label, y in paths.items()}  # x2 - x2*: across the valley
    flips = {label: int((np.sign(y[1:21]) != np.sign(y[:20])).sum()) for label, y in across.items()}
    gd = next(label for label in flips if "1.9" in label)
    assert flips[gd] == 20  # GD jumps to the other side at every one of its first 20 steps
    assert all(count <= 10 for label, count in flips.items() if label != gd)  # heavy ball and Adam do not
