"""This example's own measurements, read from its runs: steps to a tolerance and noise floors.

    uv run python analyze.py                 # reads runs/, writes figures/ and updates report.md, slides/slides.md
    uv run python analyze.py --embed         # writes figures/ only (no document is changed)

The figures command (`python -m conditioning_momentum_and_the_noise_floor.figures`) draws each run's
curves; this script measures two numbers in them that the lectures' theory predicts, and puts the
measurement beside the prediction:

1. Steps to a tolerance (runs/conditioning_gd_kappa/, runs/conditioning_momentum/): the first
   logged step t at which f(x_t) - f* <= EPS (f(x_0) - f*), for gradient descent, heavy ball and
   Nesterov at each condition number kappa, against the prediction ln(1/EPS) / (-2 ln rho) of the
   method's rate rho per step (the error along the flattest direction shrinks by rho each step):
       gradient descent, lr 1/L:            rho = 1 - 1/kappa            ~ kappa ln(1/EPS) / 2 steps
       heavy ball, its tuned lr, momentum:  rho = (sqrt(k) - 1)/(sqrt(k) + 1)   ~ sqrt(kappa) ln(1/EPS) / 4
       Nesterov, lr 1/L, its momentum b:    rho = sqrt(b (1 - 1/kappa))       ~ sqrt(kappa) ln(1/EPS) / 2
   and the slope of log(steps) against log(kappa) (1 for GD, 1/2 with momentum).
2. The noise floor (runs/conditioning_noise_floor/): the mean of train/suboptimality over the
   settled half of each run (steps >= SETTLED), against theory/noise_floor, which the runs log.

Outputs (in figures/): steps_to_tolerance.md and momentum.md and noise_floor.md (tables: mean ±
standard deviation over the seeds, and each seed's value), steps_to_tolerance.png/.pdf and
noise_floor.png/.pdf, and headline.json (the numbers the report and README quote). The tables are
also copied into report.md and slides/slides.md between `<!-- analysis:NAME:start -->` and
`<!-- analysis:NAME:end -->` markers, where those exist. tests/test_results.py checks that the
report's numbers are what this script computes from the committed runs.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conditioning_momentum_and_the_noise_floor.report.figures import STYLE, embed_table, find_runs, save

EPS = 1e-6  # the tolerance, relative to the starting suboptimality f(x_0) - f*
SETTLED = 1000  # the noise floor is averaged over the logged steps from here to the end
METHODS = {"gd": "gradient descent", "heavy_ball": "heavy ball", "nesterov": "Nesterov"}
ROOT = Path(__file__).resolve().parent
DOCUMENTS = [ROOT / "report.md", ROOT / "slides" / "slides.md"]


# ----------------------------------------------------------------------------- reading runs


def setting(run, key: str, default=None):
    """A value of the run's config.yaml, by its dotted key (`model.init_args.batch_size`)."""
    return run.config.get(key, default)


def method_of(run) -> str:
    """gd, heavy_ball or nesterov, from the run's torch.optim.SGD arguments."""
    args = "model.init_args.optimizer.init_args."
    if setting(run, args + "nesterov"):
        return "nesterov"
    return "heavy_ball" if setting(run, args + "momentum", 0.0) else "gd"


def kappa_of(run) -> float:
    return float(setting(run, "model.init_args.problem_args.condition_number"))


def start_value(run) -> float:
    """f(x_0) - f*: train/suboptimality at step 0 where it was logged. A run that logs every n-th
    step logs steps n-1, 2n-1, ... (Lightning's rule), so its start is read off theory/rate_bound,
    which gradient descent at lr 1 logs as (1 - 1/kappa)^(2t) (f(x_0) - f*)."""
    values = run.scalars["train/suboptimality"]
    if values.steps[0] == 0:
        return float(values.values[0])
    bound, kappa = run.scalars["theory/rate_bound"], kappa_of(run)
    return float(bound.values[0]) / (1 - 1 / kappa) ** (2 * bound.steps[0])


def steps_to_tolerance(run, eps: float = EPS) -> int | None:
    """The first logged step at which f - f* <= eps (f(x_0) - f*); None if the run never got there."""
    values = run.scalars["train/suboptimality"]
    reached = np.flatnonzero(values.values <= eps * start_value(run))
    return int(values.steps[reached[0]]) if len(reached) else None


def rate(method: str, kappa: float) -> float:
    """The method's contraction per step of the error along the flattest direction (see the docstring)."""
    root = math.sqrt(kappa)
    if method == "gd":
        return 1 - 1 / kappa
    if method == "heavy_ball":
        return (root - 1) / (root + 1)
    return math.sqrt((root - 1) / (root + 1) * (1 - 1 / kappa))


def predicted_steps(method: str, kappa: float, eps: float = EPS) -> float:
    """ln(1/eps) / (-2 ln rho): the steps after which rho^(2t) <= eps (1 when rho = 0)."""
    rho = rate(method, kappa)
    return 1.0 if rho == 0 else math.log(1 / eps) / (-2 * math.log(rho))


def slope(kappas: list[float], steps: list[float]) -> float:
    """The least-squares slope of log(steps) against log(kappa): 1 linear, 1/2 square root."""
    return float(np.polyfit(np.log(kappas), np.log(steps), 1)[0])


@dataclass
class Cell:
    """One setting's measurements over its seeds."""

    values: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def show(self, digits: int = 0, significant: bool = False) -> str:
        if significant:
            return f"{self.mean:.3g} ± {self.std:.2g}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def steps_cells(runs) -> dict[tuple[str, float], Cell]:
    """(method, kappa) -> steps to the tolerance of each seed (seeds in the order of the runs)."""
    cells: dict[tuple[str, float], list] = {}
    for run in runs:
        reached = steps_to_tolerance(run)
        if reached is None:
            raise SystemExit(f"{run.path} never reached f - f* <= {EPS:g} (f(x_0) - f*): give it more steps")
        cells.setdefault((method_of(run), kappa_of(run)), []).append(reached)
    return {key: Cell(values) for key, values in sorted(cells.items(), key=lambda item: (item[0][0] != "gd", item[0]))}


# ----------------------------------------------------------------------------- tables


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def gd_table(cells) -> str:
    rows = []
    for (method, kappa), cell in cells.items():
        if method != "gd":
            continue
        approx = kappa * math.log(1 / EPS) / 2
        rows.append([f"{kappa:g}", cell.show(), ", ".join(map(str, cell.values)), f"{approx:.1f}",
                     f"{math.ceil(predicted_steps('gd', kappa)):d}", f"{cell.mean / approx:.2f}"])
    header = ["κ", "steps measured (mean ± sd, 3 seeds)", "each seed", "κ ln(1/ε)/2", "bound ln(1/ε)/(−2 ln(1−1/κ))",
              "measured / (κ ln(1/ε)/2)"]
    note = (f"\nε = {EPS:g}: steps until f − f* ≤ ε (f(x₀) − f*), gradient descent at lr 1/L on the 20-variable "
            "quadratic; κ = 100 logs every 2nd step and κ = 1000 every 20th (steps 19, 39, ...), the others every step. From "
            "`runs/conditioning_gd_kappa/` by `analyze.py`.\n")
    return table(header, rows) + note


def momentum_table(cells) -> str:
    rows = []
    kappas = sorted({kappa for method, kappa in cells if method != "gd"})
    for kappa in kappas:
        gd = cells.get(("gd", kappa))
        for method in ("gd", "heavy_ball", "nesterov"):
            cell = cells.get((method, kappa))
            if cell is None:
                continue
            speedup = f"{gd.mean / cell.mean:.1f}×" if gd else "-"
            rows.append([f"{kappa:g}", METHODS[method], cell.show(), ", ".join(map(str, cell.values)),
                         f"{predicted_steps(method, kappa):.0f}", speedup])
    header = ["κ", "method", "steps measured (mean ± sd, 3 seeds)", "each seed", "predicted ln(1/ε)/(−2 ln ρ)",
              "fewer steps than GD"]
    note = (f"\nε = {EPS:g}. Heavy ball: lr 4/(√L + √μ)², momentum ((√κ − 1)/(√κ + 1))², ρ = (√κ − 1)/(√κ + 1); "
            "Nesterov: lr 1/L, momentum b = (√κ − 1)/(√κ + 1), ρ = √(b (1 − 1/κ)); GD: lr 1/L, ρ = 1 − 1/κ "
            "(its steps from `runs/conditioning_gd_kappa/`). From `runs/conditioning_momentum/` by `analyze.py`.\n")
    return table(header, rows) + note


@dataclass
class Floor:
    lr: float
    batch: int
    measured: Cell  # the settled mean of each seed
    predicted: float  # theory/noise_floor
    window_bias: float  # how far the expected curve's mean over the window is from the floor (relative)


def floors(runs) -> list[Floor]:
    found: dict[tuple[float, int], list] = {}
    for run in runs:
        values = run.scalars["train/suboptimality"]
        settled = values.values[values.steps >= SETTLED]
        key = (float(setting(run, "model.init_args.optimizer.init_args.lr")), int(setting(run, "model.init_args.batch_size")))
        floor = float(run.scalars["theory/noise_floor"].values[-1])
        expected = run.scalars["theory/suboptimality"]  # E[f - f*] at each step: still above the floor early on
        bias = float(np.mean(expected.values[expected.steps >= SETTLED])) / floor - 1
        found.setdefault(key, []).append((float(np.mean(settled)), floor, bias))
    return [Floor(lr, batch, Cell([m for m, _, _ in rows]), rows[0][1], max(abs(b) for _, _, b in rows))
            for (lr, batch), rows in sorted(found.items())]


def floor_of(results: list[Floor], lr: float, batch: int) -> Floor:
    return next(f for f in results if math.isclose(f.lr, lr) and f.batch == batch)


def noise_table(results: list[Floor]) -> str:
    rows = []
    for f in sorted(results, key=lambda f: (f.batch, f.lr)):
        rows.append([f"{f.lr:g}", f"{f.batch}", f.measured.show(significant=True),
                     ", ".join(f"{v:.3g}" for v in f.measured.values), f"{f.predicted:.3g}",
                     f"{f.measured.mean / f.predicted:.2f}"])
    header = ["lr", "batch", "floor measured (mean ± sd, 3 seeds)", "each seed", "predicted", "measured / predicted"]
    note = (f"\nMeasured: the mean of f − f* (train/suboptimality, logged every 40th step) over steps {SETTLED}–2000 "
            "of each run; predicted: theory/noise_floor = Σᵢ lr hᵢ / (2 B (2 − lr hᵢ)) (noise_std 1). "
            "From `runs/conditioning_noise_floor/` by `analyze.py`.\n")
    return table(header, rows) + note


def ratio_table(results: list[Floor]) -> str:
    """How the floor moves when the step halves (at each batch size) and when the batch grows 4x."""
    rows = []
    lrs = sorted({f.lr for f in results})
    batches = sorted({f.batch for f in results})
    for batch in batches:
        for small, large in zip(lrs, lrs[1:]):
            a, b = floor_of(results, small, batch), floor_of(results, large, batch)
            rows.append([f"lr {large:g} → {small:g}, batch {batch}", f"{a.measured.mean / b.measured.mean:.2f}",
                         f"{a.predicted / b.predicted:.3f}"])
    for lr in lrs:
        for small, large in zip(batches, batches[1:]):
            a, b = floor_of(results, lr, large), floor_of(results, lr, small)
            rows.append([f"batch {small} → {large}, lr {lr:g}", f"{a.measured.mean / b.measured.mean:.3f}",
                         f"{a.predicted / b.predicted:.3f}"])
    return table(["change", "floor ratio measured", "predicted"], rows)


# ----------------------------------------------------------------------------- figures


def steps_figure(cells):
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with rc_context(STYLE):
        figure = Figure(figsize=(3.4, 2.6), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.subplots()
        for number, method in enumerate(("gd", "heavy_ball", "nesterov")):
            keys = [key for key in cells if key[0] == method]
            kappas = np.array([kappa for _, kappa in keys])
            means = np.array([cells[key].mean for key in keys])
            low = means - np.array([min(cells[key].values) for key in keys])
            high = np.array([max(cells[key].values) for key in keys]) - means
            color = f"C{number}"
            ax.errorbar(kappas, means, yerr=[low, high], color=color, marker="o", markersize=4, linestyle="-",
                        capsize=2, label=f"{METHODS[method]} (measured)")
            grid = np.geomspace(max(kappas.min(), 2), kappas.max(), 50)
            ax.plot(grid, [predicted_steps(method, kappa) for kappa in grid], color=color, linestyle="--",
                    linewidth=1.0)
        ax.plot([], [], color="0.45", linestyle="--", linewidth=1.0, label="predicted ln(1/ε)/(−2 ln ρ)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("condition number κ")
        ax.set_ylabel("steps to f − f* ≤ ε (f₀ − f*)")
        ax.set_title(f"steps to the tolerance ε = {EPS:g}")
        figure.legend(loc="outside lower center", ncols=2, frameon=False)
    return figure


def noise_figure(results: list[Floor]):
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with rc_context(STYLE):
        figure = Figure(figsize=(7.0, 2.6), layout="constrained")
        FigureCanvasAgg(figure)
        by_lr, by_batch = figure.subplots(1, 2)
        for axis, (key, other, name) in ((by_lr, ("lr", "batch", "batch")), (by_batch, ("batch", "lr", "lr"))):
            for number, value in enumerate(sorted({getattr(f, other) for f in results})):
                line = sorted((f for f in results if getattr(f, other) == value), key=lambda f: getattr(f, key))
                xs = np.array([getattr(f, key) for f in line], dtype=float)
                means = np.array([f.measured.mean for f in line])
                low = means - np.array([min(f.measured.values) for f in line])
                high = np.array([max(f.measured.values) for f in line]) - means
                color = f"C{number}"
                axis.errorbar(xs, means, yerr=[low, high], color=color, marker="o", markersize=4, capsize=2,
                              label=f"{name} {value:g}")
                axis.plot(xs, [f.predicted for f in line], color=color, linestyle=":", linewidth=1.2)
            axis.plot([], [], color="0.45", linestyle=":", linewidth=1.2, label="predicted")
            axis.set_xscale("log")
            axis.set_yscale("log")
            ticks = sorted({getattr(f, key) for f in results})
            axis.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
            axis.minorticks_off()
            axis.set_xlabel("step size (lr)" if key == "lr" else "batch size")
            axis.set_ylabel("noise floor of f − f*")
            axis.set_title(f"floor against {'the step size' if key == 'lr' else 'the batch size'}")
            axis.legend(frameon=False, fontsize=7)
    return figure


# ----------------------------------------------------------------------------- the command


def analyze(root: Path = ROOT / "runs") -> dict:
    """Everything this script measures, from the runs under `root`: tables, headline numbers, figures."""
    gd_runs = find_runs([root / "conditioning_gd_kappa"])
    momentum_runs = find_runs([root / "conditioning_momentum"])
    noise_runs = find_runs([root / "conditioning_noise_floor"])
    if not (gd_runs and momentum_runs and noise_runs):
        raise SystemExit(f"no runs under {root}/conditioning_*: run reproduce.sh first")
    # GD at kappa 1000 also runs in the momentum sweep, for its figure: 400 steps, short of the
    # tolerance. Its steps to the tolerance come from the gd_kappa sweep, which runs long enough.
    cells = steps_cells(gd_runs + [run for run in momentum_runs if method_of(run) != "gd"])
    gd = {kappa: cell for (method, kappa), cell in cells.items() if method == "gd"}
    results = floors(noise_runs)
    big = [kappa for kappa in gd if kappa >= 10]
    lrs, batches = sorted({f.lr for f in results}), sorted({f.batch for f in results})
    halving = [floor_of(results, small, batch).measured.mean / floor_of(results, large, batch).measured.mean
               for batch in batches for small, large in zip(lrs, lrs[1:])]
    halving_theory = [floor_of(results, small, batch).predicted / floor_of(results, large, batch).predicted
                      for batch in batches for small, large in zip(lrs, lrs[1:])]
    quarter = [floor_of(results, lr, large).measured.mean / floor_of(results, lr, small).measured.mean
               for lr in lrs for small, large in zip(batches, batches[1:])]
    # Heavy ball at kappa 1000 first climbs: its largest f - f* over f(x_0), and the step of it, per seed
    climbs = [(float(run.scalars["train/suboptimality"].values.max()) / start_value(run),
               int(run.scalars["train/suboptimality"].steps[run.scalars["train/suboptimality"].values.argmax()]))
              for run in momentum_runs if method_of(run) == "heavy_ball" and kappa_of(run) == 1000]
    # The numbers the report, README and slides quote, as they quote them (tests/test_results.py checks).
    headline = {
        "eps": EPS,
        "steps": {f"{method} {kappa:g}": cell.show() for (method, kappa), cell in cells.items()},
        "steps_per_seed": {f"{method} {kappa:g}": cell.values for (method, kappa), cell in cells.items()},
        "slope": {method: f"{slope(big, [cells[(method, kappa)].mean for kappa in big]):.2f}"
                  for method in ("gd", "heavy_ball", "nesterov")},
        "fewer_steps_than_gd": {method: f"{gd[1000.0].mean / cells[(method, 1000.0)].mean:.0f}"
                                for method in ("heavy_ball", "nesterov")},
        "gd_share_of_bound": {f"{kappa:g}": f"{cell.mean / (kappa * math.log(1 / EPS) / 2):.2f}"
                              for kappa, cell in gd.items() if kappa > 1},
        "predicted_steps": {f"{method} {kappa:g}": f"{predicted_steps(method, kappa):.0f}"
                            for (method, kappa) in cells if kappa > 1},
        "heavy_ball_climb_1000": {"times_start": f"{min(c for c, _ in climbs):.0f}–{max(c for c, _ in climbs):.0f}",
                                  "step": f"{min(t for _, t in climbs)}–{max(t for _, t in climbs)}"},
        "floor": {f"lr {f.lr:g} batch {f.batch}": {"measured": f.measured.show(significant=True),
                                                    "predicted": f"{f.predicted:.3g}"} for f in results},
        "floor_largest_error_percent": f"{100 * max(abs(f.measured.mean / f.predicted - 1) for f in results):.0f}",
        "floor_window_bias_percent": f"{100 * max(f.window_bias for f in results):.2g}",
        "halving": f"{min(halving):.2f}–{max(halving):.2f}",
        "halving_predicted": f"{min(halving_theory):.3f}–{max(halving_theory):.3f}",
        "batch_x4": f"{min(quarter):.2f}–{max(quarter):.2f}",
    }
    tables = {"steps": gd_table(cells), "momentum": momentum_table(cells),
              "noise": noise_table(results) + "\n" + ratio_table(results)}
    return {"cells": cells, "floors": results, "headline": headline, "tables": tables}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT / "runs", help="the folder of experiments (default: runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "figures", help="output folder (default: figures)")
    parser.add_argument("--embed", nargs="*", type=Path, default=DOCUMENTS,
                        help="markdown files whose analysis markers receive the tables (default: report.md "
                             "slides/slides.md; give none to skip)")
    args = parser.parse_args(argv)
    result = analyze(args.root)
    args.out.mkdir(parents=True, exist_ok=True)
    names = {"steps": "steps_to_tolerance", "momentum": "momentum", "noise": "noise_floor"}
    for key, text in result["tables"].items():
        (args.out / f"{names[key]}.md").write_text(text)
        for document in args.embed:
            if embed_table(document, text, f"<!-- analysis:{key}:start -->", f"<!-- analysis:{key}:end -->"):
                print(f"updated the {key} table in {document}")
    (args.out / "headline.json").write_text(json.dumps(result["headline"], indent=2, ensure_ascii=False) + "\n")
    written = save(steps_figure(result["cells"]), args.out, "steps_to_tolerance")
    written += save(noise_figure(result["floors"]), args.out, "noise_floor")
    for text in result["tables"].values():
        print(text)
    print(json.dumps(result["headline"], indent=2, ensure_ascii=False))
    print("wrote " + ", ".join(str(path) for path in written))
    return result


if __name__ == "__main__":
    main()
