"""This example's results: the numbers that report.md, README.md and the slides quote are what the
committed runs hold, and (slow) a shrunk re-run still shows the three claims.

    uv run pytest tests/test_results.py -m "not slow"   # a few seconds: committed runs, tables, figures
    uv run pytest tests/test_results.py                 # also the re-runs: about a minute on a 2-core CPU

The measurements come from analyze.py (steps to the tolerance, noise floors) and from the figures
command (the report's results table), read from runs/ as reproduce.sh left it.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS, QUIET, ROOT, run

from conditioning_momentum_and_the_noise_floor.report.figures import make_figures, read_run
from conditioning_momentum_and_the_noise_floor.report.tables import markdown

REPORT = ROOT / "report.md"
README = ROOT / "README.md"
SLIDES = ROOT / "slides" / "slides.md"
# What reproduce.sh draws (PNG for the slides, PDF for a LaTeX report) and what analyze.py writes.
FIGURES = [f"{stem}.{suffix}" for stem in (
    "gd_kappa10_train_suboptimality", "gd_kappa100_train_suboptimality", "gd_kappa1000_train_suboptimality",
    "momentum_kappa1000_train_suboptimality", "trajectories", "loss", "train_suboptimality",
    "noise_lr_train_suboptimality", "noise_batch_train_suboptimality", "steps_to_tolerance", "noise_floor",
) for suffix in ("png", "pdf")] + ["steps_to_tolerance.md", "momentum.md", "noise_floor.md", "headline.json"]
LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def load_analyze():
    """analyze.py, the example's own script at the project's root, as a module."""
    spec = importlib.util.spec_from_file_location("analyze", ROOT / "analyze.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["analyze"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


analyze = load_analyze()


@pytest.fixture(scope="module")
def measured() -> dict:
    return analyze.analyze(ROOT / "runs")


def between(text: str, name: str) -> str:
    """What a document holds between its `<!-- name:start -->` and `<!-- name:end -->` markers."""
    match = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.DOTALL)
    assert match, f"no {name} markers"
    return match.group(1).strip()


def words(text: str) -> str:
    """The text with its line breaks and repeated spaces made single spaces (numbers cross lines)."""
    return " ".join(text.split())


# ----------------------------------------------------------------------------- fast: committed runs


def test_every_figure_exists_and_every_image_link_resolves():
    missing = [name for name in FIGURES if not (ROOT / "figures" / name).is_file()]
    assert not missing, f"run reproduce.sh: figures/ lacks {missing}"
    for document in (REPORT, README, SLIDES):
        links = LINK.findall(document.read_text())
        assert links, f"{document.name} shows no figure"
        broken = [link for link in links if "://" not in link and not (document.parent / link).is_file()]
        assert not broken, f"{document.name} links images that do not exist: {broken}"


def test_the_report_tables_are_what_the_committed_runs_hold(measured):
    text = REPORT.read_text()
    for key, table in measured["tables"].items():
        assert between(text, f"analysis:{key}") == table.strip(), f"report.md's {key} table is stale: run analyze.py"
    stored = json.loads((ROOT / "figures" / "headline.json").read_text())
    assert stored == json.loads(json.dumps(measured["headline"])), "figures/headline.json is stale: run analyze.py"


def test_the_results_table_is_the_zigzag_runs(monkeypatch, tmp_path):
    """The table between the figures:results markers of the report and the slides, as the figures
    command makes it from the three zigzag runs (reproduce.sh's only figure set without a prefix)."""
    monkeypatch.chdir(ROOT)  # the run folders in the table are relative to the project
    result = make_figures(["objective_zigzag"], out=tmp_path, metrics=["train/loss", "val/loss", "train/suboptimality"],
                          embed=[])
    table = markdown(result["header"], result["rows"]).strip()
    for document in (REPORT, SLIDES):
        assert between(document.read_text(), "figures:results") == table, f"{document.name}: run reproduce.sh"


def test_the_headline_numbers_in_the_text_are_the_measured_ones(measured):
    """Every number the prose of the report, README and slides quotes, as analyze.py computes it
    from the committed runs (figures/headline.json holds the same, for a reader)."""
    h = measured["headline"]
    steps, floor = h["steps"], h["floor"]["lr 0.1 batch 4"]
    quoted = {
        "GD steps at kappa 10, 100, 1000": [f"{steps[f'gd {kappa}']} steps" for kappa in (10, 100, 1000)],
        "heavy ball and Nesterov at kappa 1000": [f"{steps['heavy_ball 1000']} steps", f"{steps['nesterov 1000']} steps"],
        "slopes": [f"slope {h['slope']['gd']}", f"slopes {h['slope']['heavy_ball']}", f"and {h['slope']['nesterov']}"],
        "fewer steps than GD": [f"{h['fewer_steps_than_gd']['heavy_ball']} and {h['fewer_steps_than_gd']['nesterov']} "
                                "times fewer"],
        "GD's share of its bound": [", ".join(h["gd_share_of_bound"][k] for k in ("10", "100")) + " and "
                                    + h["gd_share_of_bound"]["1000"]],
        "momentum predictions": [f"({h['predicted_steps']['heavy_ball 1000']} at κ = 1000)",
                                 f"({h['predicted_steps']['nesterov 1000']})"],
        "heavy ball's climb": [f"to {h['heavy_ball_climb_1000']['times_start']} times f(x₀)",
                               f"at steps {h['heavy_ball_climb_1000']['step']}"],
        "a floor": [f"{floor['measured']} (mean", f"predicted {floor['predicted']}"],
        "largest floor error": [f"within {h['floor_largest_error_percent']}% of"],
        "the window's bias": [f"within {h['floor_window_bias_percent']}% of the floor"],
        "halving": [f"by {h['halving']} (predicted {h['halving_predicted']}"],
        "4x the batch": [f"by {h['batch_x4']} (predicted 0.250)"],
    }
    report = words(REPORT.read_text())
    for what, texts in quoted.items():
        for text in texts:
            assert text in report, f"report.md does not quote {what} as {text!r}"
    readme, slides = words(README.read_text()), words(SLIDES.read_text())
    short = [steps["gd 1000"], steps["heavy_ball 1000"], steps["nesterov 1000"], h["slope"]["gd"], h["halving"]]
    for text in short:
        assert text in readme, f"README.md does not quote {text!r}"
        assert text in slides, f"slides/slides.md does not quote {text!r}"


def test_the_claims_hold_in_the_committed_runs(measured):
    """The report's three claims, with the tolerances of the slow re-run below."""
    h = measured["headline"]
    assert 0.8 <= float(h["slope"]["gd"]) <= 1.2  # GD: steps grow about linearly in kappa
    for method in ("heavy_ball", "nesterov"):
        assert 0.35 <= float(h["slope"][method]) <= 0.7  # momentum: about like sqrt(kappa)
        assert float(h["fewer_steps_than_gd"][method]) >= 10  # and at least 10 times fewer steps at kappa 1000
    low, high = map(float, h["halving"].split("–"))
    assert 0.4 <= low <= high <= 0.6  # halving the step halves the floor
    assert float(h["floor_largest_error_percent"]) < 15  # and the floor is where theory puts it


def test_runs_hold_no_checkpoints_and_stay_small():
    assert not list((ROOT / "runs").rglob("checkpoints")), "delete runs/**/checkpoints/ (reproduce.sh does)"
    size = sum(path.stat().st_size for folder in ("runs", "figures") for path in (ROOT / folder).rglob("*")
               if path.is_file())
    assert size < 8e6, f"runs/ and figures/ hold {size / 1e6:.1f} MB: keep the example small"


# ----------------------------------------------------------------------------- slow: shrunk re-runs


def folder_of(cli) -> Path:
    return Path(cli.trainer.log_dir)


def quadratic_run(kappa: float, steps: int, *flags: str) -> Path:
    """One run of the quadratic of the sweeps (20 variables, seed 0), logging every step."""
    cli = run("fit", "--config", str(CONFIGS / "objective_condition_number.yaml"),
              "--model.init_args.problem_args.dim", "20",
              "--model.init_args.problem_args.condition_number", str(kappa),
              "--trainer.max_steps", str(steps), "--model.init_args.steps_per_epoch", str(steps),
              "--trainer.log_every_n_steps", "1", "--diagnostics.every_n_steps", "0",
              *flags, *QUIET)
    return folder_of(cli)


@pytest.mark.slow
def test_steps_grow_like_kappa_for_gd_and_like_its_root_with_momentum(in_tmp):
    """GD at lr 1/L, and heavy ball and Nesterov with the committed sweep's parameters, at kappa
    10, 100, 1000 (seed 0, about 5000 steps in all): the slope of log(steps) against log(kappa) is
    1 +- 0.2 for GD and 0.5 +- 0.2 (0.35 to 0.7) with momentum, and momentum needs at least 10
    times fewer steps than GD at kappa 1000."""
    gd_budget = yaml.safe_load((CONFIGS / "sweeps" / "conditioning_gd_kappa.yaml").read_text())["space"]
    momentum = yaml.safe_load((CONFIGS / "sweeps" / "conditioning_momentum.yaml").read_text())["space"]
    kappas = [10, 100, 1000]
    steps = {"gd": [], "momentum": [], "nesterov": []}
    for kappa in kappas:
        budget = gd_budget["model.init_args.problem_args.condition_number"][kappa]["trainer.max_steps"]
        budget = min(budget, 3500)  # seed 0 reaches the tolerance at kappa 1000 in about 3230 steps
        folder = quadratic_run(kappa, budget, "--optimizer", "sgd", "--optimizer.lr", "1.0")
        steps["gd"].append(analyze.steps_to_tolerance(read_run(folder)))
        point = momentum["model.init_args.problem_args.condition_number"][kappa]
        for name in ("momentum", "nesterov"):
            args = point["optimizer"][name]
            folder = quadratic_run(kappa, point["trainer.max_steps"], "--optimizer", name,
                                   "--optimizer.lr", str(args["optimizer.lr"]),
                                   "--optimizer.momentum", str(args["optimizer.momentum"]))
            steps[name].append(analyze.steps_to_tolerance(read_run(folder)))
    assert all(None not in values for values in steps.values()), f"a run never reached the tolerance: {steps}"
    slopes = {name: analyze.slope(kappas, values) for name, values in steps.items()}
    assert 0.8 <= slopes["gd"] <= 1.2, (steps, slopes)
    assert 0.35 <= slopes["momentum"] <= 0.7 and 0.35 <= slopes["nesterov"] <= 0.7, (steps, slopes)
    assert steps["gd"][-1] >= 10 * max(steps["momentum"][-1], steps["nesterov"][-1]), steps


@pytest.mark.slow
def test_the_noise_floor_halves_when_the_step_halves(in_tmp):
    """SGD on the noisy quadratic at lr 0.1 and 0.05, batch 4, seeds 0 and 1, 3000 steps, the floor
    averaged over steps 1000-3000: the ratio of the floors is 0.5 +- 0.1, and each floor is within
    20% of theory/noise_floor."""
    floors = {}
    for lr in (0.1, 0.05):
        measured, predicted = [], None
        for seed in (0, 1):
            cli = run("fit", "--config", str(CONFIGS / "objective_noise_floor.yaml"), "--optimizer.lr", str(lr),
                      "--model.init_args.batch_size", "4", "--trainer.max_steps", "3000",
                      "--trainer.log_every_n_steps", "10", "--diagnostics.every_n_steps", "0",
                      "--seed_everything", str(seed), *QUIET)
            scalars = read_run(folder_of(cli)).scalars
            values = scalars["train/suboptimality"]
            measured.append(values.values[values.steps >= analyze.SETTLED].mean())
            predicted = scalars["theory/noise_floor"].values[-1]
        floors[lr] = sum(measured) / len(measured)
        assert abs(floors[lr] / predicted - 1) < 0.2, (lr, floors[lr], predicted)
    assert 0.4 <= floors[0.05] / floors[0.1] <= 0.6, floors
