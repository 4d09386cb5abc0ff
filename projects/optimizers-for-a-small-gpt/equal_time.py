"""Equal time: what a step of each optimizer costs, and the bits per byte each reaches in the same seconds.

    uv run python equal_time.py                                    # the CPU sweep's runs, as reproduce.sh calls it
    uv run python equal_time.py --sweep configs/sweeps/language_gpt_optimizers_full.yaml --out figures/full --embed
    uv run python equal_time.py --budget 8                         # cut every best run at 8 s instead

The sweep (configs/sweeps/language_gpt_optimizers.yaml) gives every run the same number of optimizer
steps; the compare command then reports the equal-steps result, and the seconds each optimizer's best
setting needs to reach the target. This adds the other half of "equal time", from the same runs:

- **milliseconds per step**: (time of the last logged training loss - time of the first) / (steps
  between them), for each run. The 49 validations in between are included, and they are the same
  in every run. Three columns: over the 3 seeds of the optimizer's best setting, over all its runs
  (every learning rate of the sweep), and the fastest of those runs, the one that other jobs on a
  shared machine slowed least (the usual estimate of a cost under noise, as timeit takes the minimum).
- **a common wall-clock budget**: T = the earliest time at which any optimizer's best run logged its
  last val/bpb (by default; --budget sets T in seconds). For every best run, the last val/bpb logged
  at or before T seconds after the run's first event, and the optimizer step it was logged at.
  The slower optimizers are cut before the end of their cosine schedule, where the learning rate
  is still high and the loss still falls fast, so the cut favours the fastest optimizer: a slower
  optimizer that is ahead at T would be further ahead with a schedule planned for T seconds.

The best setting of each optimizer is the compare command's (the lowest mean final val/bpb over
seeds, runs that diverged excluded). Every cell is mean ± standard deviation over the runs behind
it (format_cell, as the figures and compare commands write them). The table goes to
figures/<sweep>_equal_time.md and, with --embed (default: report.md), between the markers
<!-- gpt:equal_time:start --> and <!-- gpt:equal_time:end -->. Seconds were measured on whatever
machine made the runs; on a shared CPU they vary by tens of percent between identical runs.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optimizers_for_a_small_gpt.report.compare import (
    best_settings,
    has_diverged,
    label_settings,
    load_options,
    make_settings,
    read_folder,
)
from optimizers_for_a_small_gpt.report.figures import Run, embed_table, format_cell, x_values
from optimizers_for_a_small_gpt.report.tables import markdown

SWEEP = Path("configs/sweeps/language_gpt_optimizers.yaml")
START, END = "<!-- gpt:equal_time:start -->", "<!-- gpt:equal_time:end -->"
METRIC = "val/bpb"


def ms_per_step(run: Run) -> float:
    """Wall-clock milliseconds per optimizer step between the first and the last logged training loss."""
    series = run.scalars["train/loss"]
    return 1000 * float(series.times[-1] - series.times[0]) / float(series.steps[-1] - series.steps[0])


def end_time(run: Run, metric: str = METRIC) -> float:
    """Seconds from the run's first event to its last logged `metric` (the end of its training)."""
    return float(x_values(run, run.scalars[metric], "time")[-1])


def at_time(run: Run, seconds: float, metric: str = METRIC) -> tuple[float, float] | None:
    """(optimizer step, value) of the last `metric` logged at or before `seconds`; None if none was."""
    series = run.scalars[metric]
    logged = np.flatnonzero(x_values(run, series, "time") <= seconds)
    return None if not len(logged) else (float(series.steps[logged[-1]]), float(series.values[logged[-1]]))


@dataclass
class Row:
    optimizer: str
    setting: str
    best: list[Run]  # the best setting's runs (one per seed)
    every: list[Run]  # all of the optimizer's runs that did not diverge


def best_rows(sweep: Path = SWEEP) -> tuple[list[Row], object]:
    """One Row per optimizer of the sweep, in the sweep file's order, and the compare options."""
    arguments = argparse.Namespace(sweep=sweep, runs=None, root=None, metric=None, mode=None, summary=None,
                                   target=None, by=None, x=None)
    options = load_options(arguments, [])
    runs = read_folder(options.folder, [])
    if not runs:
        raise SystemExit(f"error: no runs in {options.folder}: run the sweep first")
    settings = make_settings(runs, options, [])
    label_settings(settings, options)
    best = best_settings(settings, options.mode)
    rows = []
    for choice, setting in best.items():
        every = [run for s in settings if s.choice == choice for run in s.runs if not has_diverged(run, options.metric)]
        rows.append(Row(choice, setting.label, setting.runs, every))
    return rows, options


def equal_time_table(rows: list[Row], budget: float | None = None) -> tuple[list[str], list[list[str]], float]:
    """(header, rows, T): the cost of a step and what each best setting reached within T seconds."""
    if budget is None:
        budget = min(end_time(run) for row in rows for run in row.best)
    header = ["optimizer", "setting", "seeds", "ms per step (setting)", "ms per step (all runs)", "fastest run",
              "final val/bpb (equal steps)", f"steps done in {budget:.3g} s", f"val/bpb at {budget:.3g} s"]
    lines = []
    for row in rows:
        cut = [at_time(run, budget) for run in row.best]
        reached = [c for c in cut if c is not None]
        complete = len(reached) == len(cut)  # every run had logged val/bpb by T
        lines.append([
            row.optimizer, row.setting, str(len(row.best)),
            format_cell([ms_per_step(run) for run in row.best]),
            f"{format_cell([ms_per_step(run) for run in row.every])} ({len(row.every)} runs)",
            f"{min(ms_per_step(run) for run in row.every):.3g}",
            format_cell([float(run.scalars[METRIC].values[-1]) for run in row.best]),
            format_cell([step for step, _ in reached]) if complete else f"none logged ({len(cut) - len(reached)}/{len(cut)})",
            format_cell([value for _, value in reached]) if complete else "-",
        ])
    return header, lines, budget


def explanation(budget: float, chosen: bool) -> str:
    where = (f"T = {budget:.3g} s, the earliest end among these runs (the time of the last val/bpb of the "
             "quickest best run)" if not chosen else f"T = {budget:.3g} s (--budget)")
    return (f"Each row: the optimizer's best setting (lowest mean final val/bpb, as in the comparison table), "
            f"mean ± standard deviation over its seeds. Milliseconds per step: wall-clock time between the "
            f"first and the last logged training loss over the steps between them, validations included; "
            f"\"all runs\" pools every learning rate of the optimizer, and \"fastest run\" is the least of those "
            f"(the run the other jobs on the machine slowed least). Equal time: {where}; for each run, "
            f"the last val/bpb logged by then and the step it was logged at (validation every 10 steps). "
            f"Made by `uv run python equal_time.py` from the runs' TensorBoard event files.\n")


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="uv run python equal_time.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", type=Path, default=SWEEP, help=f"the sweep file (default: {SWEEP})")
    parser.add_argument("--budget", type=float, default=None,
                        help="the common wall-clock budget T in seconds (default: the earliest end of a best run)")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: figures)")
    parser.add_argument("--embed", nargs="*", type=Path, default=[Path("report.md")],
                        help="markdown files whose gpt:equal_time markers receive the table (default: report.md)")
    args = parser.parse_args(argv)
    if args.budget is not None and not (math.isfinite(args.budget) and args.budget > 0):
        parser.error("--budget must be a positive number of seconds")
    rows, options = best_rows(args.sweep)
    header, lines, budget = equal_time_table(rows, args.budget)
    table = markdown(header, lines) + "\n" + explanation(budget, args.budget is not None)
    args.out.mkdir(parents=True, exist_ok=True)
    sources = "\n".join(f"- {row.optimizer} ({row.setting}): `" + ", ".join(str(run.path) for run in row.best) + "`"
                        for row in rows)
    (args.out / f"{options.name}_equal_time.md").write_text(table + "\nRuns behind each row:\n\n" + sources + "\n")
    embedded = [doc for doc in args.embed if embed_table(doc, table, START, END)]
    print(markdown(header, lines), end="")
    print(f"wrote {args.out / f'{options.name}_equal_time.md'}"
          + (f"; updated the equal-time table in {', '.join(map(str, embedded))}" if embedded else ""))
    return {"header": header, "rows": lines, "budget": budget, "best": rows}


if __name__ == "__main__":
    main()
