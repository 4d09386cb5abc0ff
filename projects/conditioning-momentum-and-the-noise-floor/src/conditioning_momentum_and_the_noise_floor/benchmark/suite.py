"""The benchmark's files, read and checked: the rules (benchmark/suite.yaml), the workloads
(benchmark/workloads/*.yaml), their targets (benchmark/targets.yaml) and search spaces
(benchmark/spaces/*.yaml). Each mistake is one line that says what to fix.

    from conditioning_momentum_and_the_noise_floor.benchmark.suite import load_suite
    suite = load_suite("benchmark", tier="cpu")   # suite.workloads, suite.studies, suite.baselines, ...
"""

import datetime
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config_errors import ConfigError, read_yaml

SUITE_KEYS = ("studies", "trials", "tau_max", "bootstrap", "target_fraction", "cost_reference", "baselines")
WORKLOAD_KEYS = ("experiment", "steps", "flags", "metric", "mode", "tier")
TIERS = ("cpu", "gpu")


class BenchmarkError(Exception):
    """A mistake in the benchmark's files or command line: the command stops with this one line."""


@dataclass
class Workload:
    """One problem of the suite: an experiment, a step budget, and the metric's target."""

    name: str  # the file's name: benchmark/workloads/<name>.yaml
    experiment: list  # config files of train.py, first to last
    steps: int  # the step budget: every trial runs this many optimizer steps
    flags: dict  # more flags of train.py, the same for every trial
    metric: str
    mode: str  # max or min: whether the target is reached at or above it, or at or below
    tier: str  # cpu or gpu
    target: float | None = None  # from benchmark/targets.yaml; None until set


@dataclass
class Suite:
    """benchmark/suite.yaml and the workloads of one tier."""

    folder: Path
    studies: int
    trials: int
    tau_max: float
    bootstrap: int
    target_fraction: float
    cost_reference: str
    baselines: dict  # name: search-space file
    workloads: list = field(default_factory=list)

    def workloads_in_words(self) -> str:
        """'6 CPU workloads', '1 GPU workload'."""
        count = len(self.workloads)
        return f"{count} {self.workloads[0].tier.upper()} workload{'' if count == 1 else 's'}"

    @property
    def baselines_file(self) -> Path:
        return self.folder / "baselines.csv"

    @property
    def targets_file(self) -> Path:
        return self.folder / "targets.yaml"


def read(path: Path) -> dict:
    if not path.is_file():
        raise BenchmarkError(f"no file {path} (the benchmark's files are in benchmark/: run from the project's folder)")
    try:
        content = read_yaml(path)
    except ConfigError as error:  # a YAML mistake: its file and line
        raise BenchmarkError(str(error)) from None
    if content is not None and not isinstance(content, dict):
        raise BenchmarkError(f"{path}: give keys and values (see docs/benchmark.md)")
    return content or {}


def check_keys(path: Path, raw: dict, keys: tuple) -> None:
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise BenchmarkError(f"{path}: unknown key(s) {', '.join(unknown)}; it takes {', '.join(keys)}")


def load_suite(folder: str | Path = "benchmark", tier: str = "cpu") -> Suite:
    """The suite's rules and the workloads of `tier`, with the targets set so far."""
    folder = Path(folder)
    raw = read(folder / "suite.yaml")
    check_keys(folder / "suite.yaml", raw, SUITE_KEYS)
    suite = Suite(folder=folder, studies=int(raw.get("studies", 5)), trials=int(raw.get("trials", 5)),
                  tau_max=float(raw.get("tau_max", 4)), bootstrap=int(raw.get("bootstrap", 1000)),
                  target_fraction=float(raw.get("target_fraction", 0.75)),
                  cost_reference=str(raw.get("cost_reference", "adamw")), baselines=dict(raw.get("baselines") or {}))
    if suite.studies < 1 or suite.trials < 1 or suite.tau_max <= 1 or not 0 < suite.target_fraction <= 1:
        raise BenchmarkError(f"{folder / 'suite.yaml'}: studies and trials >= 1, tau_max > 1, 0 < target_fraction <= 1")
    if tier not in TIERS:
        raise BenchmarkError(f"unknown tier {tier!r}: cpu or gpu")
    targets = read(suite.targets_file) if suite.targets_file.is_file() else {}
    for path in sorted((folder / "workloads").glob("*.yaml")):
        workload = load_workload(path)
        if workload.tier == tier:
            workload.target = target_of(workload, targets.get(workload.name))
            suite.workloads.append(workload)
    if not suite.workloads:
        raise BenchmarkError(f"no {tier} workload in {folder / 'workloads'}/ (docs/benchmark.md says how to add one)")
    return suite


def load_workload(path: Path) -> Workload:
    raw = read(path)
    check_keys(path, raw, WORKLOAD_KEYS)
    missing = [key for key in ("experiment", "steps", "metric", "mode") if raw.get(key) in (None, "", [])]
    if missing:
        raise BenchmarkError(f"{path}: {', '.join(missing)} missing")
    if raw["mode"] not in ("max", "min") or raw.get("tier", "cpu") not in TIERS:
        raise BenchmarkError(f"{path}: mode is max or min, tier cpu or gpu")
    experiment = raw["experiment"] if isinstance(raw["experiment"], list) else [raw["experiment"]]
    for config in experiment:
        if not Path(config).is_file():
            raise BenchmarkError(f"{path}: experiment {config} not found (give its path from the project's folder)")
    return Workload(name=path.stem, experiment=[str(config) for config in experiment], steps=int(raw["steps"]),
                    flags=dict(raw.get("flags") or {}), metric=str(raw["metric"]), mode=raw["mode"],
                    tier=raw.get("tier", "cpu"))


def target_of(workload: Workload, entry: dict | None) -> float | None:
    """A workload's target from targets.yaml, if it was set for the workload's current budget and
    metric; None otherwise (a target set for another budget is no target: the baselines set it again)."""
    if entry is None or entry.get("steps") != workload.steps or entry.get("metric") != workload.metric:
        return None
    return float(entry["target"])


def write_targets(suite: Suite, targets: dict[str, dict]) -> None:
    """benchmark/targets.yaml with `targets` ({workload: {target, metric, steps, from}}) in place of those of
    the same workloads (the other tier's stay)."""
    kept = read(suite.targets_file) if suite.targets_file.is_file() else {}
    kept.update(targets)
    header = ("# The targets of the benchmark's workloads, fixed in advance from the baselines' runs\n"
              f"# (docs/benchmark.md): for each workload, what the best baseline reached within {suite.target_fraction:g}\n"
              "# of the step budget, the median over its studies. Written on "
              f"{datetime.date.today().isoformat()} by\n"
              "# `uv run python -m conditioning_momentum_and_the_noise_floor.benchmark targets`; do not edit by hand.\n")
    suite.targets_file.write_text(header + yaml.safe_dump(kept, sort_keys=True))


def load_space(path: str | Path) -> dict:
    """A submission's search space (benchmark/spaces/*.yaml): optimizer arguments mapped to a range
    {low, high, log}, a list of values to choose from, or one fixed value."""
    path = Path(path)
    raw = read(path)
    if not raw:
        raise BenchmarkError(f"{path}: give the optimizer's arguments and their ranges, e.g. "
                             + "lr: {low: 1.0e-4, high: 0.1, log: true}")
    space = {}
    for argument, values in raw.items():
        if isinstance(values, dict):
            if set(values) - {"low", "high", "log"} or not {"low", "high"} <= set(values):
                raise BenchmarkError(f"{path}: {argument}: a range is " + "{low: ..., high: ..., log: true or false}")
            if not values["low"] < values["high"] or (values.get("log") and values["low"] <= 0):
                raise BenchmarkError(f"{path}: {argument}: a range needs low < high (and low > 0 with log: true)")
        elif isinstance(values, list) and not values:
            raise BenchmarkError(f"{path}: {argument}: the list of values is empty")
        space[f"optimizer.{argument}"] = values if isinstance(values, (dict, list)) else [values]
    return space
