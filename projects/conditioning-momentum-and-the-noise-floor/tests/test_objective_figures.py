"""Tests of the trajectory figures (src/conditioning_momentum_and_the_noise_floor/report/objective_trajectories.py) on fake
objective runs written here: the paths of GD, heavy ball and Adam on the condition number 50
quadratic, and of GD on the Rosenbrock function, each beside a config.yaml and TensorBoard events.

    pytest tests/test_objective_figures.py
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from conditioning_momentum_and_the_noise_floor.problems.objective import PROBLEMS
from conditioning_momentum_and_the_noise_floor.report import figures
from conditioning_momentum_and_the_noise_floor.report import objective_trajectories as trajectories

VALLEY = {"dim": 2, "condition_number": 50, "rotate": False, "seed": 0}  # f = 1/2 (x1^2 / 50 + x2^2) around x*
OPTIMIZERS = {  # run name: (optimizer class, its arguments)
    "gd": ("SGD", {"lr": 1.8, "momentum": 0.0}),
    "heavy_ball": ("SGD", {"lr": 1.0, "momentum": 0.6}),
    "adam": ("Adam", {"lr": 0.1}),
}
STEPS = 40
MODULE = "conditioning_momentum_and_the_noise_floor.problems.objective.ObjectiveModule"


def descend(problem: str, args: dict, optimizer: str, arguments: dict, start: torch.Tensor, steps: int = STEPS):
    """The iterates of `optimizer` from `start` on the problem, float64: an array (steps + 1, d)."""
    objective = PROBLEMS[problem](**args)
    objective.double()
    objective.use_float64()
    x = torch.nn.Parameter(start.clone().double())
    step = getattr(torch.optim, optimizer)([x], **arguments)
    points = [x.detach().clone()]
    for _ in range(steps):
        step.zero_grad()
        objective.value(x).backward()
        step.step()
        points.append(x.detach().clone())
    return torch.stack(points).numpy()


def write_run(folder: Path, problem: str, args: dict, optimizer: str, arguments: dict, start: torch.Tensor,
              trajectory: bool = True) -> np.ndarray:
    """A fake objective run: config.yaml, events and (if `trajectory`) trajectory.npz in x's own coordinates."""
    folder.mkdir(parents=True)
    model = {"problem": problem, "problem_args": args,
             "optimizer": {"class_path": f"torch.optim.{optimizer}", "init_args": arguments}}
    config = {"seed_everything": 0, "trainer": {"max_steps": STEPS, "fast_dev_run": False},
              "model": {"class_path": MODULE, "init_args": model}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    xy = descend(problem, args, optimizer, arguments, start)
    x_star = PROBLEMS[problem](**args).float64_values["x_star"].numpy()
    if trajectory:
        np.savez(folder / "trajectory.npz", step=np.arange(len(xy), dtype=np.int64), xy=xy, origin=np.zeros(2),
                 basis=np.eye(2), minimizer=x_star, plane=np.str_("coordinates"))
    writer = SummaryWriter(str(folder))
    for step in (0, STEPS // 2, STEPS):
        writer.add_scalar("train/loss", float(((xy[step] - x_star) ** 2).sum()), step)
    writer.close()
    return xy


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """runs/valley: GD, heavy ball and Adam on the quadratic; runs/banana: GD on Rosenbrock; runs/plain: no path."""
    root = tmp_path_factory.mktemp("objective_figures") / "runs"
    x_star = PROBLEMS["quadratic"](**VALLEY).float64_values["x_star"]
    start = x_star + torch.tensor([-1.5, 0.6], dtype=torch.float64)  # along the valley, and off its floor
    for name, (optimizer, arguments) in OPTIMIZERS.items():
        write_run(root / "valley" / name, "quadratic", VALLEY, optimizer, arguments, start)
    write_run(root / "banana" / "gd", "rosenbrock", {"dim": 2}, "SGD", {"lr": 1e-3}, torch.tensor([-1.2, 1.0]))
    write_run(root / "plain" / "gd", "quadratic", VALLEY, "SGD", {"lr": 1.0}, start, trajectory=False)
    return root


@pytest.fixture(autouse=True)
def small_grid(monkeypatch):
    """Coarse contours and short animations: these tests look at values, not at the resolution."""
    monkeypatch.setattr(trajectories, "GRID_POINTS", 25)
    monkeypatch.setattr(trajectories, "MAX_FRAMES", 8)


def picture_of(runs: Path, experiment: str):
    """(groups, the prepared picture) of an experiment's runs, as the figures command makes them."""
    selected = figures.select_runs([experiment], runs)
    groups = figures.group_runs(selected)
    (picture,) = trajectories.pictures_of([trajectories.read_trajectory(run, []) for run in selected])
    return groups, trajectories.prepare(picture, [])


def test_figures_command_draws_one_trajectory_figure_per_problem(runs, tmp_path):
    out = tmp_path / "figures"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no matplotlib warning while drawing and saving
        result = figures.main(["valley", "banana", "plain", "--root", str(runs), "--out", str(out),
                               "--metrics", "val/loss", "--embed"])  # not logged: only the paths, to be fast
    for stem in ("trajectories_valley", "trajectories_banana"):  # two problems: one figure each, named by experiment
        assert (out / f"{stem}.png").stat().st_size > 10_000 and (out / f"{stem}.pdf").is_file()
        assert out / f"{stem}.png" in result["written"]
    assert sorted(path.name for path in out.glob("trajectories*")) == [
        "trajectories_banana.pdf", "trajectories_banana.png", "trajectories_valley.pdf", "trajectories_valley.png"]
    # Runs without a trajectory.npz: no trajectory figure.
    plain = figures.select_runs(["plain"], runs)
    assert trajectories.write_trajectories(plain, figures.group_runs(plain), tmp_path / "plain") == []
    assert not (tmp_path / "plain").exists()


def test_gd_heavy_ball_and_adam_paths_over_the_contours_of_a_condition_number_50_quadratic(runs):
    groups, picture = picture_of(runs, "valley")
    figure = trajectories.draw_picture(picture, groups).figure
    (ax,) = figure.axes
    paths = {line.get_label(): line for line in ax.get_lines() if line.get_gid() == "path"}
    assert sorted(paths) == ["adam lr=0.1", "sgd lr=1 momentum=0.6", "sgd lr=1.8 momentum=0"]  # as in other figures
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == [group.label for group in groups] + ["minimizer x*", "start"]
    for number, group in enumerate(groups):  # each configuration in its colour, its path the run's iterates
        line = paths[group.label]
        assert line.get_color() == f"C{number}"
        xy = np.load(group.runs[0].path / "trajectory.npz")["xy"]
        assert np.allclose(line.get_xydata(), xy)
    # GD with step 1.8 > 1/L zigzags across the valley: x2 - x2* changes sign at every step.
    x2_star = PROBLEMS["quadratic"](**VALLEY).float64_values["x_star"][1].item()
    sides = np.sign(paths["sgd lr=1.8 momentum=0"].get_ydata() - x2_star)
    assert (sides[1:] != sides[:-1]).sum() >= STEPS - 2
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x2")
    (star,) = [line for line in ax.get_lines() if line.get_gid() == "minimizer"]
    assert star.get_marker() == "*" and list(star.get_ydata()) == [x2_star]
    assert len(ax.collections) > 0  # the contours


def test_contours_are_the_objective_in_the_plane(runs):
    groups, picture = picture_of(runs, "valley")
    a, b, values = picture.grid
    assert values.shape == (trajectories.GRID_POINTS, trajectories.GRID_POINTS)
    problem = PROBLEMS["quadratic"](**VALLEY)
    hessian, x_star = (problem.float64_values[name].numpy() for name in ("hessian", "x_star"))
    for i, j in ((0, 0), (3, 17), (24, 11)):
        error = np.array([a[j], b[i]]) - x_star
        assert values[i, j] == pytest.approx(0.5 * error @ hessian @ error, rel=1e-12)
    # Every path and x* are in view; in a plane other than the coordinates the values follow origin and basis.
    (a0, a1), (b0, b1) = picture.limits
    for trajectory in picture.trajectories:
        assert (a0 < trajectory.xy[:, 0]).all() and (trajectory.xy[:, 0] < a1).all()
        assert (b0 < trajectory.xy[:, 1]).all() and (trajectory.xy[:, 1] < b1).all()
    args = {"dim": 5, "condition_number": 10, "seed": 1}
    problem = PROBLEMS["quadratic"](**args)
    origin, basis = np.arange(5.0), np.linalg.qr(np.random.default_rng(0).normal(size=(5, 2)))[0].T
    grid = trajectories.plane_values(problem.double(), origin, basis, np.array([0.0, 0.5]), np.array([-1.0, 2.0]))
    point = origin + 0.5 * basis[0] + 2.0 * basis[1]
    assert grid[1, 1] == pytest.approx(problem.value(torch.from_numpy(point)).item(), rel=1e-12)


def test_a_diverging_path_does_not_wreck_the_view(runs, tmp_path):
    groups, picture = picture_of(runs, "valley")
    good = picture.trajectories[0]
    blowup = trajectories.Trajectory(good.run, good.step, good.xy.copy(), good.origin, good.basis, good.minimizer,
                                     good.plane, good.problem, good.problem_args)
    blowup.xy[10:, 1] = good.xy[0, 1] + 2.0 ** np.arange(STEPS - 9)  # x2 doubles every step...
    blowup.xy[-3:] = np.inf  # ...then overflows
    (low, high), leaving = trajectories.view_limits([good, blowup])
    assert leaving == [blowup] and high[1] < 100  # the view is set by the finite points near the others
    assert len(blowup.finite()) == STEPS - 2


def test_animate_writes_a_gif_of_the_paths_growing(runs, tmp_path):
    out = tmp_path / "figures"
    figures.main(["valley", "--root", str(runs), "--out", str(out), "--metrics", "val/loss", "--animate", "--embed"])
    with Image.open(out / "trajectories.gif") as gif:  # one problem: trajectories.gif beside trajectories.png
        assert gif.n_frames == trajectories.MAX_FRAMES
        first, last = gif.convert("RGB"), (gif.seek(gif.n_frames - 1), gif.convert("RGB"))[1]
        assert first.tobytes() != last.tobytes()
    steps = trajectories.frame_steps(picture_of(runs, "valley")[1].trajectories, 150)
    assert len(steps) == STEPS + 1  # every step when there are few
    many = trajectories.Trajectory(None, np.arange(1001), None, None, None, None, "", None)
    steps = trajectories.frame_steps([many], 150)
    assert len(steps) == 150 and steps[0] == 0 and steps[-1] == 1000 and np.ptp(np.diff(steps)) <= 1


def test_animate_mp4_without_ffmpeg_says_what_to_do(runs, tmp_path, capsys):
    from matplotlib.animation import FFMpegWriter

    if FFMpegWriter.isAvailable():
        pytest.skip("ffmpeg is installed here")
    with pytest.raises(SystemExit, match="needs ffmpeg.*install it.*--animate gif") as stop:
        figures.main(["valley", "--root", str(runs), "--out", str(tmp_path), "--animate", "mp4", "--embed"])
    assert "\n" not in str(stop.value)  # one line
    assert not list(tmp_path.iterdir())  # before anything is written
