"""The benchmark's two figures: the performance profiles, and the steps to the target per workload.

    benchmark_profiles.png/.pdf  rho(tau) of each optimizer: the share of workloads on which it
                                 reached the target within tau times the fastest one's steps
    benchmark_steps.png/.pdf     one panel per workload: each study's best trial (a dot; an x
                                 above the budget line where it missed) and the median (a bar)
"""

import math
from pathlib import Path

import numpy as np

from ..report.style import LINE_STYLES, PAGE_WIDTH, PANEL_HEIGHT, STYLE, add_legend, figure_size, save
from .scores import profile
from .suite import Suite


def plot_profiles(scored, suite: Suite, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    from matplotlib import rc_context

    taus = np.linspace(1, suite.tau_max, 601)
    rho = profile(scored.ratios, taus)
    order = scored.ranking
    with rc_context(STYLE):
        figure, axes = plt.subplots(figsize=figure_size(1), layout="constrained")
        # one line style each, too: profiles that coincide stay visible
        lines = [axes.step(taus, rho[name], where="post", linestyle=LINE_STYLES[place % len(LINE_STYLES)])[0]
                 for place, name in enumerate(order)]
        axes.set(xlim=(1, suite.tau_max), ylim=(-0.02, 1.02), xlabel=f"tau: within this factor of the fastest ({scored.unit})",
                 ylabel="share of workloads")
        add_legend(figure, lines, [f"{name} ({scored.score[name]:.2f})" for name in order])
        written = save(figure, out, "benchmark_profiles" if scored.unit == "steps" else "benchmark_profiles_seconds")
        plt.close(figure)
    return written


def plot_steps(scored, suite: Suite, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    from matplotlib import rc_context

    order = scored.ranking
    columns = min(3, len(suite.workloads))
    rows = math.ceil(len(suite.workloads) / columns)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    with rc_context(STYLE):
        figure, panels = plt.subplots(rows, columns, figsize=(PAGE_WIDTH, PANEL_HEIGHT * rows), squeeze=False,
                                      layout="constrained")
        for panel in panels.flat[len(suite.workloads):]:
            panel.set_visible(False)
        for panel, workload in zip(panels.flat, suite.workloads, strict=False):
            missed_at = workload.steps * 1.08
            for place, name in enumerate(order):
                studies = scored.bests[(scored.bests["workload"] == workload.name) & (scored.bests["submission"] == name)]
                times = studies["steps"].to_numpy(dtype=float)
                spread = place + np.linspace(-0.15, 0.15, len(times))
                colour = colours[place % len(colours)]
                panel.scatter(spread[np.isfinite(times)], times[np.isfinite(times)], s=12, color=colour)
                panel.scatter(spread[~np.isfinite(times)], np.full((~np.isfinite(times)).sum(), missed_at), s=16,
                              marker="x", color=colour)
                median = scored.medians.loc[workload.name, name]
                if math.isfinite(median):
                    panel.hlines(median, place - 0.3, place + 0.3, color=colour, linewidth=2)
            panel.axhline(workload.steps, color="0.4", linestyle="--", linewidth=0.8)
            sign = ">=" if workload.mode == "max" else "<="
            panel.set_title(f"{workload.name}\n{workload.metric} {sign} {workload.target:g}", fontsize=8)
            panel.set(ylim=(0, workload.steps * 1.15), xticks=range(len(order)))
            panel.set_xticklabels(order, rotation=30, ha="right")
        for panel in panels[:, 0]:
            panel.set_ylabel("steps to target")
        figure.suptitle("Steps to the target: each study's best trial (x above the dashed budget line: missed), "
                        "median as a bar", fontsize=8)
        written = save(figure, out, "benchmark_steps")
        plt.close(figure)
    return written
