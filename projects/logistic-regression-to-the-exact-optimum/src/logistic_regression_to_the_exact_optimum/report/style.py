"""The look every report figure shares (figures.py, compare.py, objective_trajectories.py): sizes for a paper
and a slide, fonts, the legend below the panels, metric names in words, PNG and PDF files.

    from matplotlib import rc_context
    with rc_context(STYLE):
        ...  # draw, then save(figure, Path("figures"), "my_plot"): my_plot.png and my_plot.pdf
"""

import math
import re
from pathlib import Path

from .groups import LABEL_LIMIT

# Scalar tags in words, for axis labels and panel titles: the part before the slash, then the
# part after it (`val/acc` -> "validation accuracy"). Other parts keep their name, without `_`.
TAG_PREFIXES = {"train": "training", "val": "validation", "test": "test", "opt": "", "perf": ""}
TAG_NAMES = {
    "loss": "loss",
    "acc": "accuracy",
    "bpb": "bits per byte",
    "lr": "learning rate",
    "dist_to_opt": "distance to the optimum",
    "grad_norm": "gradient norm",
    "param_norm": "parameter norm",
    "update_ratio": "update-to-weight ratio",
    "noise_scale": "gradient noise scale",
    "step_time": "step time (s)",
    "samples_per_sec": "throughput (samples/s)",
}
ONE_COLUMN = 3.4  # inches: one column of a two-column paper, for a figure of one metric
PAGE_WIDTH = 7.0  # inches: the width of the page, for figures of several panels (loss.png)
PANEL_HEIGHT = 2.4  # inches, without the legend (it goes below)
LINE_STYLES = ["-", "--", ":", "-."]  # after ten colours, the lines change style
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.5,
    "savefig.bbox": "tight",  # the saved image grows to hold the legend below the panels
    "savefig.pad_inches": 0.02,  # and stays as wide as the figure: 3.4 in is one column
    "pdf.fonttype": 42,  # TrueType fonts in PDFs: editable, and accepted by conference checkers
}


def words(tag: str) -> str:
    """A scalar tag in words, for axis labels and titles: `val/acc` -> `validation accuracy`."""
    prefix, _, name = tag.rpartition("/")
    prefix = TAG_PREFIXES.get(prefix, prefix.replace("/", " ").replace("_", " "))
    return f"{prefix} {TAG_NAMES.get(name, name.replace('_', ' '))}".strip()


def figure_size(panels: int) -> tuple[float, float]:
    """One column of a paper for one panel, the page width for several (the legend comes on top)."""
    return (ONE_COLUMN if panels == 1 else PAGE_WIDTH), PANEL_HEIGHT


def legend_label(label: str, runs: int) -> str:
    """The group's label, with its number of seeds when there are several and it fits."""
    with_seeds = f"{label} ({runs} seeds)"
    return with_seeds if runs > 1 and len(with_seeds) <= LABEL_LIMIT else label


def add_legend(figure, handles: list, labels: list[str], inside: bool = False):
    """The legend centred below the panels, in as many columns as fit the figure's width.

    It lies outside the figure's box, so the panels keep their full size; saving with a tight
    bounding box (savefig.bbox in STYLE) makes the image taller to show it. `inside`: in the
    figure's box instead, the panels made smaller (for animations, whose frames keep their size).
    """
    renderer = figure.canvas.get_renderer()

    def legend(columns: int):
        if inside:
            return figure.legend(handles, labels, loc="outside lower center", ncols=columns, frameon=False)
        return figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=columns,
                             frameon=False)

    columns = len(labels)
    while columns > 1:
        attempt = legend(columns)
        fits = attempt.get_window_extent(renderer).width <= figure.bbox.width
        attempt.remove()
        if fits:
            break
        columns -= 1
    rows = math.ceil(len(labels) / columns)
    return legend(math.ceil(len(labels) / rows))  # as many entries in each row as possible


def save(figure, out: Path, stem: str) -> list[Path]:
    """Write `figure` as stem.png (200 dpi) and stem.pdf (vector) into `out`."""
    from matplotlib import rc_context

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with rc_context(STYLE):
        for suffix, options in ((".png", {"dpi": 200}), (".pdf", {})):
            path = out / f"{stem}{suffix}"
            figure.savefig(path, **options)
            written.append(path)
    return written


def metric_stem(metric: str) -> str:
    return re.sub(r"[^\w.-]+", "_", metric).strip("_")
