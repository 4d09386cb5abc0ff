"""Paths of the iterates over the contours of the objective (trajectories.png, trajectories.gif).

    uv run python -m {{ cookiecutter.package_name }}.figures objective_rosenbrock                # trajectories.png
    uv run python -m {{ cookiecutter.package_name }}.figures objective_rosenbrock --animate      # and .gif
    uv run python -m {{ cookiecutter.package_name }}.figures objective_rosenbrock --animate mp4  # or .mp4 (ffmpeg)

The figures command calls this whenever a selected run folder holds a trajectory.npz, which the
objective family writes: the iterate's coordinates (a, b) in a plane origin + a basis[0] + b basis[1]
at each recorded step. The plane is the whole space for a 2-D problem ("coordinates"), the
directions of smallest and largest curvature through x* for a quadratic ("eigenvectors"), or
two random directions ("random"). Its keys: step (n,), xy (n, 2), origin (d,), basis (2, d),
minimizer (2,) (x* in the plane, NaN if unknown) and plane (the kind, a string).

The contours are those of f - min f over the plane, at log-spaced levels (a narrow valley is
invisible on linear levels), computed by rebuilding the run's problem from its config.yaml.
Runs of the same problem seen in the same plane share a figure, one line per run in the colour
and with the label of its configuration, as in the other figures; several problems give one
figure each, trajectories_<experiment>.png. The minimizer is a star, each start a circle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .groups import Group, fit, show
from .runs import Run
from .style import LINE_STYLES, ONE_COLUMN, STYLE, add_legend, legend_label, metric_stem, save

FILE = "trajectory.npz"
KEYS = ("step", "xy", "origin", "basis", "minimizer", "plane")
AXIS_LABELS = {  # what the plane's two coordinates are
    "coordinates": ("x1", "x2"),
    "eigenvectors": ("direction of smallest curvature", "direction of largest curvature"),
    "random": ("random direction 1", "random direction 2"),
}
GRID_POINTS = 200  # the contours are computed on a grid of GRID_POINTS x GRID_POINTS points of the plane
LEVELS = 15  # contour levels, spaced evenly on a log scale
FIRST_MARKERS = 25  # each path has a marker at each of its first points: the first steps' lengths show
FAR = 4.0  # points further from the starts and x* than FAR times their spread are off the view (a blow-up)
FIGURE_SIZE = (ONE_COLUMN, 3.0)  # inches: one column of a paper, a little taller than the curves
PANEL_SHAPE = 1.3  # width / height of the panel in FIGURE_SIZE, about
MAX_FRAMES = 150  # an animation shows at most this many steps (evenly spread, always the last)
SECONDS = 4.0  # ... in about this many seconds
ANIMATION_DPI = 110  # about 370 x 330 pixels: sharp on a slide, a small file
START = dict(marker="o", markersize=5, color="white", markeredgecolor="black", markeredgewidth=0.8, linestyle="none")
MINIMIZER = dict(marker="*", markersize=11, color="gold", markeredgecolor="black", markeredgewidth=0.6, linestyle="none")


@dataclass
class Trajectory:
    """One run's trajectory.npz, with the problem its config.yaml names."""

    run: Run
    step: np.ndarray  # (n,) the global step of each point, 0 = the start
    xy: np.ndarray  # (n, 2) the iterate in the plane
    origin: np.ndarray  # (d,)
    basis: np.ndarray  # (2, d), orthonormal rows
    minimizer: np.ndarray  # (2,) x* in the plane, NaN if unknown
    plane: str  # coordinates, eigenvectors or random
    problem: str | None  # the name in problems.objective.PROBLEMS
    problem_args: dict = field(default_factory=dict)

    def finite(self) -> np.ndarray:
        """The points up to the first one that is inf or NaN (a blow-up)."""
        bad = ~np.isfinite(self.xy).all(axis=1)
        return self.xy[: int(np.argmax(bad))] if bad.any() else self.xy


@dataclass
class Picture:
    """Trajectories that share a problem and a plane, with what the figure of them needs."""

    trajectories: list[Trajectory]
    limits: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 1.0), (0.0, 1.0))
    grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (a, b, f at origin + a basis[0] + b basis[1])
    leaving: list[Trajectory] = field(default_factory=list)  # paths that go off the view
    equal: bool = False  # the same scale on both axes (see fill_panel)


@dataclass
class Drawing:
    """A trajectory figure: the matplotlib Figure and, per path, its line and trajectory (for animations)."""

    figure: object
    paths: list[tuple[object, Trajectory]]


def problem_of(run: Run) -> tuple[str | None, dict]:
    """The problem's name and arguments, from the run's flattened config.yaml."""
    prefix = "model.init_args.problem_args."
    args: dict = {}
    for key, value in run.config.items():
        if key.startswith(prefix):
            node = args
            *parents, last = key[len(prefix):].split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
    name = run.config.get("model.init_args.problem")
    return (str(name) if name else None), args


def read_trajectory(run: Run, notes: list[str]) -> Trajectory | None:
    """The run's trajectory.npz, or None when it has none (or an unreadable one, with a note)."""
    path = run.path / FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in KEYS}
        trajectory = Trajectory(run, arrays["step"].astype(np.int64), arrays["xy"].astype(float),
                                arrays["origin"].astype(float), arrays["basis"].astype(float),
                                arrays["minimizer"].astype(float), str(arrays["plane"]), *problem_of(run))
    except (OSError, KeyError, ValueError) as error:
        notes.append(f"{path}: not a readable trajectory file ({error}); skipped")
        return None
    n, d = len(trajectory.step), len(trajectory.origin)
    if (trajectory.xy.shape != (n, 2) or trajectory.basis.shape != (2, d) or trajectory.minimizer.shape != (2,)
            or n == 0):
        notes.append(f"{path}: expected step (n,), xy (n, 2), origin (d,), basis (2, d), minimizer (2,); skipped")
        return None
    return trajectory


def same_picture(a: Trajectory, b: Trajectory) -> bool:
    """Whether two trajectories belong in one figure: the same problem, seen in the same plane."""
    return ((a.problem, a.problem_args, a.plane) == (b.problem, b.problem_args, b.plane)
            and a.origin.shape == b.origin.shape and np.allclose(a.origin, b.origin, atol=1e-6)
            and np.allclose(a.basis, b.basis, atol=1e-6))


def pictures_of(trajectories: list[Trajectory]) -> list[Picture]:
    """The trajectories sorted into figures: one per problem and plane."""
    pictures: list[Picture] = []
    for trajectory in trajectories:
        picture = next((p for p in pictures if same_picture(p.trajectories[0], trajectory)), None)
        if picture is None:
            pictures.append(Picture([trajectory]))
        else:
            picture.trajectories.append(trajectory)
    return pictures


# The view and the contours


def view_limits(trajectories: list[Trajectory]) -> tuple[tuple[tuple[float, float], tuple[float, float]], list]:
    """((a_min, a_max), (b_min, b_max)) covering every path and x*, with a margin; and the paths that leave it.

    The starts and x* fix the region of interest; points further from it than FAR times its
    size (a diverging run) are off the view, so one blow-up does not shrink every other path to
    a dot. Lines are cut at the edge of the view.
    """
    minimizer = trajectories[0].minimizer
    core = [t.xy[0] for t in trajectories if np.isfinite(t.xy[0]).all()]
    core += [minimizer] if np.isfinite(minimizer).all() else []
    core = np.array(core) if core else np.zeros((1, 2))
    center = (core.min(0) + core.max(0)) / 2
    points = np.concatenate([t.finite() for t in trajectories] + [core])
    size = np.max(core.max(0) - core.min(0)) / 2
    if size <= 1e-9 * max(1.0, np.abs(center).max()):  # the runs start at x* (or x* is unknown): how far they go
        size = float(np.median(np.abs(points - center).max(axis=1))) or 1.0
    near = np.abs(points - center).max(axis=1) <= FAR * size
    low, high = points[near].min(0), points[near].max(0)
    span = high - low
    span = np.where(span > 1e-6 * span.max(), span, max(span.max(), 1e-9) / 5)  # a flat direction still gets room
    center = (low + high) / 2
    low, high = center - 0.58 * span, center + 0.58 * span  # 8% margin on each side
    leaving = [t for t in trajectories
               if len(t.finite()) < len(t.xy) or ((t.finite() < low) | (t.finite() > high)).any()]
    return ((float(low[0]), float(high[0])), (float(low[1]), float(high[1]))), leaving


def fill_panel(limits: tuple[tuple[float, float], tuple[float, float]]) -> tuple[tuple, bool]:
    """(limits, equal): the view widened to the panel's shape, for equal scales on both axes, when
    that at most multiplies its width or height by 2.5; otherwise the same limits, not equal.

    Equal scales show the level sets' true shape. But a narrow valley seen along its length (the
    condition number 50 quadratic: 7 times longer than wide) would then be a thin strip across
    the panel; there each axis keeps a scale of its own, the valley fills the panel and a zigzag
    across it stays visible (the contours look rounder than they are: read the axes).
    """
    (a0, a1), (b0, b1) = limits
    width, height = max(a1 - a0, PANEL_SHAPE * (b1 - b0)), max(b1 - b0, (a1 - a0) / PANEL_SHAPE)  # one of them grows
    if width * height > 2.5 * (a1 - a0) * (b1 - b0):
        return limits, False
    a, b = (a0 + a1) / 2, (b0 + b1) / 2
    return ((a - width / 2, a + width / 2), (b - height / 2, b + height / 2)), True


def build_problem(trajectory: Trajectory, notes: list[str]):
    """The run's problem, rebuilt from its config in float64; None (with a note) if that fails."""
    try:
        from ..problems.objective import PROBLEMS  # only a project with the objective family has it
    except ImportError:
        notes.append("trajectories: this project has no problems/objective.py, so no contours are drawn")
        return None
    name = trajectory.problem
    if name not in PROBLEMS:
        notes.append(f"trajectories: {trajectory.run.path} names no known problem ({name!r}); no contours")
        return None
    try:
        problem = PROBLEMS[name](**trajectory.problem_args)
    except Exception as error:  # a problem that cannot be rebuilt here: draw the paths without contours
        notes.append(f"trajectories: cannot rebuild problem {name!r} ({error}); no contours")
        return None
    problem.double()  # every float buffer in float64, then the exact values where the problem keeps them
    problem.use_float64()
    return problem


def plane_values(problem, origin: np.ndarray, basis: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """f(origin + a_j basis[0] + b_i basis[1]) for every grid point, as an array (len(b), len(a)).

    Evaluated in float64, in batches of points with torch.func.vmap; a problem that vmap cannot
    handle is evaluated point by point.
    """
    import torch

    flat = origin[None, None] + a[None, :, None] * basis[0] + b[:, None, None] * basis[1]
    points = torch.from_numpy(flat.reshape(-1, len(origin)))
    shape = tuple(problem.shape)

    def value(point):
        return problem.value(point.reshape(shape))

    with torch.no_grad():
        try:
            chunk = max(1, 2**22 // len(origin))  # points per batch: a few tens of MB at most
            values = torch.cat([torch.func.vmap(value)(points[i : i + chunk]) for i in range(0, len(points), chunk)])
        except Exception:  # vmap cannot run every function: fall back to a loop
            values = torch.stack([value(point) for point in points])
    return values.double().numpy().reshape(len(b), len(a))


def prepare(picture: Picture, notes: list[str], points: int | None = None) -> Picture:
    """Set the picture's view and compute its contour grid of `points` x `points` (GRID_POINTS) values."""
    points = points or GRID_POINTS
    limits, picture.leaving = view_limits(picture.trajectories)
    picture.limits, picture.equal = fill_panel(limits)
    first = picture.trajectories[0]
    problem = build_problem(first, notes)
    if problem is not None:
        if math.prod(problem.shape) != len(first.origin):
            notes.append(f"trajectories: {first.run.path}: the plane has {len(first.origin)} coordinates, "
                         f"the problem {math.prod(problem.shape)}; no contours")
        else:
            a, b = (np.linspace(*limits, points) for limits in picture.limits)
            picture.grid = (a, b, plane_values(problem, first.origin, first.basis, a, b))
    return picture


# Drawing


def title_of(trajectory: Trajectory) -> str:
    """The problem and its arguments, in short: `rosenbrock dim=2`."""
    parts = [trajectory.problem or "unknown problem"]
    parts += [f"{key}={show(value)}" for key, value in trajectory.problem_args.items() if not isinstance(value, dict)]
    return fit(parts, 45)


def draw_contours(ax, grid: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Filled contours of f - min f over the grid, at log-spaced levels: light in the valley, darker uphill."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, LogNorm

    a, b, values = grid
    gap = np.ma.masked_invalid(values - np.nanmin(values))
    positive = gap.compressed()[gap.compressed() > 0]
    if not len(positive):
        return  # a flat plane: nothing to draw
    levels = np.geomspace(max(positive.min(), positive.max() * 1e-10), positive.max(), LEVELS)
    gap = np.ma.maximum(gap, levels[0] / 2)  # the grid's lowest point (0) in the lowest band, not masked
    greys = ListedColormap(colormaps["Greys"](np.linspace(0.0, 0.4, 256)))  # white to light grey: paths stand out
    norm = LogNorm(levels[0], levels[-1])
    ax.contourf(a, b, gap, levels=levels, norm=norm, cmap=greys, extend="both")
    ax.contour(a, b, gap, levels=levels, colors="0.55", linewidths=0.4)


def draw_picture(picture: Picture, groups: list[Group], legend_inside: bool = False) -> Drawing:
    """The figure of one picture: contours, x*, each run's path in its configuration's colour.

    `legend_inside`: keep the legend within the figure's box (for animations, whose frames
    cannot grow to hold it as saved figures do).
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    first = picture.trajectories[0]
    with rc_context(STYLE):
        figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.subplots()
        ax.grid(False)
        if picture.grid is not None:
            draw_contours(ax, picture.grid)
        paths, handles = [], []
        for number, group in enumerate(groups):
            members = [t for t in picture.trajectories if any(t.run is run for run in group.runs)]
            color, style = f"C{number % 10}", LINE_STYLES[number // 10 % len(LINE_STYLES)]
            label = legend_label(group.label, len(members))
            for trajectory in members:  # several seeds: one thinner line each
                xy = trajectory.finite()
                (line,) = ax.plot(xy[:, 0], xy[:, 1], color=color, linestyle=style,
                                  linewidth=1.4 if len(members) == 1 else 0.9, marker="o", markersize=2.2,
                                  markevery=slice(0, FIRST_MARKERS), label=label, gid="path")
                ax.plot(*trajectory.xy[0], **START, zorder=3, gid="start")
                paths.append((line, trajectory))
                handles += [line] if trajectory is members[0] else []
        if np.isfinite(first.minimizer).all():
            ax.plot(*first.minimizer, **MINIMIZER, zorder=4, gid="minimizer")
            handles.append(Line2D([], [], **(MINIMIZER | dict(markersize=9)), label="minimizer x*"))
        handles.append(Line2D([], [], **START, label="start"))
        ax.set_xlim(*picture.limits[0])
        ax.set_ylim(*picture.limits[1])
        if picture.equal:
            ax.set_aspect("equal", adjustable="box")
        x_label, y_label = AXIS_LABELS.get(first.plane, ("plane direction 1", "plane direction 2"))
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title_of(first))
        add_legend(figure, handles, [handle.get_label() for handle in handles], inside=legend_inside)
    return Drawing(figure, paths)


def frame_steps(trajectories: list[Trajectory], frames: int | None = None) -> np.ndarray:
    """The steps an animation shows: every recorded step, or `frames` (MAX_FRAMES) of them evenly spread,
    the first and the last among them."""
    frames = frames or MAX_FRAMES
    steps = np.unique(np.concatenate([t.step for t in trajectories]))
    if len(steps) <= frames:
        return steps
    return steps[np.unique(np.linspace(0, len(steps) - 1, frames).round().astype(int))]


def animate(picture: Picture, groups: list[Group], path: Path) -> Path:
    """Write the paths growing step by step: a GIF (matplotlib's PillowWriter), or an mp4 when path ends
    in .mp4 (FFMpegWriter, which needs ffmpeg).

    The still parts (contours, axes, legend) are drawn once, into an image; each frame draws only
    the paths over it, about ten times faster than drawing the whole figure every frame.
    """
    from matplotlib import rc_context
    from matplotlib.animation import FFMpegWriter, PillowWriter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    drawing = draw_picture(picture, groups, legend_inside=True)
    still, ax = drawing.figure, drawing.figure.axes[0]
    for line in ax.get_lines():
        line.set_visible(line.get_gid() not in ("path", "start", "minimizer"))  # these go on top, below
    with rc_context(STYLE):
        still.set_dpi(ANIMATION_DPI)
        still.canvas.draw()
    figure = Figure(figsize=still.get_size_inches(), dpi=ANIMATION_DPI)
    FigureCanvasAgg(figure)
    figure.figimage(np.asarray(still.canvas.buffer_rgba()), origin="upper", zorder=-1)  # under the axes
    top = figure.add_axes(ax.get_position(), xlim=ax.get_xlim(), ylim=ax.get_ylim())  # exactly over the still axes
    top.set_axis_off()
    lines = []
    for line, trajectory in drawing.paths:
        (path_line,) = top.plot([], [], color=line.get_color(), linestyle=line.get_linestyle(),
                                linewidth=line.get_linewidth(), marker=line.get_marker(),
                                markersize=line.get_markersize(), markevery=line.get_markevery())
        (head,) = top.plot([], [], marker="o", markersize=4, color=line.get_color(), linestyle="none")
        top.plot(*trajectory.xy[0], **START)
        lines.append((path_line, head, trajectory))
    if np.isfinite(picture.trajectories[0].minimizer).all():
        top.plot(*picture.trajectories[0].minimizer, **MINIMIZER)
    counter = top.text(0.98, 0.97, "", transform=top.transAxes, ha="right", va="top", fontsize=8,
                       bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1.5))
    steps = frame_steps(picture.trajectories)
    fps = min(30.0, max(5.0, len(steps) / SECONDS))
    writer = FFMpegWriter(fps=fps) if path.suffix == ".mp4" else PillowWriter(fps=fps)
    with rc_context({"savefig.bbox": "standard"}), writer.saving(figure, str(path), dpi=ANIMATION_DPI):
        for step in steps:
            for path_line, head, trajectory in lines:
                xy = trajectory.finite()
                xy = xy[trajectory.step[: len(xy)] <= step]
                path_line.set_data(xy[:, 0], xy[:, 1])
                head.set_data(xy[-1:, 0], xy[-1:, 1])
            counter.set_text(f"step {step}")
            writer.grab_frame()
    return path


def stems(pictures: list[Picture], prefix: str) -> list[str]:
    """File names without suffix: `trajectories`, or one per picture by its experiments (and problem)."""
    if len(pictures) == 1:
        return [f"{prefix}trajectories"]
    names = ["_".join(sorted({t.run.experiment for t in p.trajectories})) for p in pictures]
    for i, picture in enumerate(pictures):
        if names.count(names[i]) > 1:
            names[i] += f"_{picture.trajectories[0].problem}"
    names = [name if names.count(name) == 1 else f"{name}_{i}" for i, name in enumerate(names, 1)]
    return [f"{prefix}trajectories_{metric_stem(name)}" for name in names]


def check_animation_format(animate_as: str | None) -> None:
    """Stop with a one-line error when an mp4 is asked for without ffmpeg."""
    if animate_as == "mp4":
        from matplotlib.animation import FFMpegWriter

        if not FFMpegWriter.isAvailable():
            raise SystemExit("error: --animate mp4 needs ffmpeg, which is not installed: install it "
                             "(apt install ffmpeg, brew install ffmpeg or conda install ffmpeg) or use --animate gif")


def write_trajectories(runs: list[Run], groups: list[Group], out: Path, prefix: str = "",
                       animate_as: str | None = None, notes: list[str] | None = None) -> list[Path]:
    """Draw the trajectories of the runs that have one; returns the files written (none if no run has one).

    `animate_as`: None, "gif" or "mp4": also write the animation of each figure.
    """
    notes = [] if notes is None else notes
    trajectories = [t for t in (read_trajectory(run, notes) for run in runs) if t is not None]
    if not trajectories:
        if animate_as:
            notes.append(f"--animate: no selected run has a {FILE}, so there is nothing to animate")
        return []
    pictures = [prepare(picture, notes) for picture in pictures_of(trajectories)]
    written = []
    for picture, stem in zip(pictures, stems(pictures, prefix), strict=True):
        for trajectory in picture.leaving:
            label = next(g.label for g in groups if any(trajectory.run is run for run in g.runs))
            notes.append(f"{stem}: the path of {label} ({trajectory.run.path}) leaves the view or blows up "
                         "(a step size too large?); it is cut at the edge")
        written += save(draw_picture(picture, groups).figure, out, stem)
        if animate_as:
            written.append(animate(picture, groups, out / f"{stem}.{animate_as}"))
    return written
