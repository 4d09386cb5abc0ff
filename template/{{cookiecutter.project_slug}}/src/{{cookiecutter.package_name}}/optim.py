"""Optimizer and learning-rate schedule factories, chosen by name in the config.

In an experiment config (see configs/):

    model:
      init_args:
        optimizer:
          name: sgd            # a key of OPTIMIZERS below
          lr: 0.1              # every other key goes to the optimizer's constructor
          momentum: 0.9
          nesterov: true
          weight_decay: 5.0e-4 # applied to weights only, never to biases, norms or embeddings
          groups:              # optional per-group overrides, by parameter name (glob)
            - {match: "net.layers.0.*", lr: 0.01}
        scheduler:
          name: cosine         # a key of SCHEDULES below
          warmup_steps: 100    # linear warmup before any schedule (optional)

or on the command line: `python train.py fit --model.init_args.optimizer.name adam`.

The schedule multiplies the optimizer's learning rate by factor(step), where step counts
optimizer steps from 0 and total_steps is the run's length as the Trainer computes it.
Muon only takes weight matrices. With `name: muon` the hidden layers' 2-D weights go to Muon
and everything else (embeddings, the output layer, biases, norms, and convolution filters,
which Muon would need reshaped) to AdamW, with its own `adamw_lr` and `adamw_betas`.
Schedule-Free optimizers keep two sets of weights; module.py switches them between training
and evaluation, so validation and checkpoints use the averaged (evaluation) weights.

To add an optimizer, add it to OPTIMIZERS; to add a schedule, add a function to SCHEDULES.
"""

import fnmatch
import inspect
import math
from functools import partial

import schedulefree
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from .optimizers import MuonWithAdamW, SignSGD
from .registry import ConfigError, check_arguments, lookup

OPTIMIZERS = {
    "sgd": torch.optim.SGD,  # momentum: 0.9 for Polyak (heavy ball); add nesterov: true for Nesterov
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adafactor": torch.optim.Adafactor,
    "signsgd": SignSGD,  # momentum > 0 gives Signum
    "muon": MuonWithAdamW,
    "schedulefree_sgd": schedulefree.SGDScheduleFree,
    "schedulefree_adamw": schedulefree.AdamWScheduleFree,
}
SCHEDULE_FREE = (schedulefree.SGDScheduleFree, schedulefree.AdamWScheduleFree)

# Starting learning rates, used when a config leaves `lr` out (so `optimizer: {name: muon}`
# is a sensible run; every other argument keeps the optimizer's own default, e.g. SGD has no
# momentum unless asked for). Each trains the default vision experiment (digits, MLP) to over
# 90% validation accuracy; tune them for your own problem.
RECOMMENDED = {
    "sgd": {"lr": 0.05},
    "adam": {"lr": 1e-3},
    "adamw": {"lr": 1e-3},
    "nadam": {"lr": 1e-3},
    "radam": {"lr": 1e-3},
    "adagrad": {"lr": 0.05},
    "rmsprop": {"lr": 1e-3},
    "adafactor": {"lr": 1e-2},
    "signsgd": {"lr": 1e-3},
    "muon": {"lr": 0.02, "adamw_lr": 3e-3},
    "schedulefree_sgd": {"lr": 0.5},  # Schedule-Free: use scheduler constant
    "schedulefree_adamw": {"lr": 2.5e-3},
}

DEFAULT_OPTIMIZER = {"name": "adam", "lr": 1.0e-3}
DEFAULT_SCHEDULER = {"name": "constant"}

# Parameters of these layers never get weight decay: shrinking a norm's gain or an embedding
# towards zero is not the regularisation weight decay is meant to be.
NO_DECAY_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.Embedding)


def constant(step: int, total_steps: float) -> float:
    """factor = 1."""
    return 1.0


def step_decay(step: int, total_steps: float, step_size: int | None = None, gamma: float = 0.1) -> float:
    """factor = gamma ** (step // step_size); step_size defaults to a third of the run."""
    step_size = step_size or max(1, int(needs_length(total_steps, "step")) // 3)
    return gamma ** (step // step_size)


def cosine(step: int, total_steps: float, min_factor: float = 0.0) -> float:
    """factor goes from 1 to min_factor along half a cosine wave over the run."""
    progress = min(step / max(1.0, needs_length(total_steps, "cosine")), 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def inverse_time(step: int, total_steps: float, tau: float | None = None) -> float:
    """factor = 1 / (1 + step / tau): the classic 1/t decay; tau defaults to a tenth of the run."""
    tau = tau or max(1.0, needs_length(total_steps, "inverse_time") / 10)
    return 1.0 / (1.0 + step / tau)


def exponential(step: int, total_steps: float, gamma: float | None = None) -> float:
    """factor = gamma ** step; gamma defaults to the value that reaches 0.01 at the end of the run."""
    gamma = gamma or 0.01 ** (1 / max(1.0, needs_length(total_steps, "exponential")))
    return gamma**step


def linear(step: int, total_steps: float, min_factor: float = 0.0) -> float:
    """factor falls in a straight line from 1 to min_factor (0: linear decay to zero)."""
    progress = min(step / max(1.0, needs_length(total_steps, "linear")), 1.0)
    return 1.0 - (1.0 - min_factor) * progress


def wsd(step: int, total_steps: float, decay_fraction: float = 0.2, min_factor: float = 0.0) -> float:
    """Warmup-stable-decay: factor 1 (after any warmup_steps), then a linear decay to min_factor
    over the last decay_fraction of the run."""
    decay_start = (1.0 - decay_fraction) * needs_length(total_steps, "wsd")
    if step < decay_start:
        return 1.0
    return linear(step - decay_start, total_steps - decay_start, min_factor)


def one_cycle(step: int, total_steps: float, peak_fraction: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4) -> float:
    """One-cycle (as torch's OneCycleLR with cosine annealing): from 1/div_factor up to 1 over
    peak_fraction of the run, then down to 1/(div_factor * final_div_factor)."""
    peak = peak_fraction * needs_length(total_steps, "one_cycle") - 1
    start, end = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)
    if step <= peak:
        low, high, progress = start, 1.0, step / max(peak, 1e-12)
    else:
        low, high, progress = end, 1.0, 1.0 - min((step - peak) / max(total_steps - 1 - peak, 1e-12), 1.0)
    return low + (high - low) * 0.5 * (1.0 - math.cos(math.pi * progress))


SCHEDULES = {
    "constant": constant,
    "step": step_decay,
    "cosine": cosine,
    "warmup_cosine": cosine,  # cosine with warmup_steps defaulting to 5% of the run
    "inverse_time": inverse_time,
    "exponential": exponential,
    "linear": linear,
    "wsd": wsd,
    "one_cycle": one_cycle,
}
DEFAULT_WARMUP_FRACTION = {"warmup_cosine": 0.05}


def needs_length(total_steps: float, name: str) -> float:
    """total_steps, or a clear error when the run has no set length."""
    if not math.isfinite(total_steps):
        raise ConfigError(
            f"schedule {name!r} needs the run's length: set trainer.max_epochs or trainer.max_steps"
        )
    return total_steps


def with_recommended(config: dict) -> dict:
    """`config` with RECOMMENDED values for the arguments it leaves out."""
    lookup(OPTIMIZERS, config.get("name"), "optimizer")
    return {**RECOMMENDED.get(config["name"], {}), **config}


def check_optimizer(config: dict) -> None:
    """Raise a ConfigError for an unknown optimizer, argument or out-of-range value."""
    config = with_recommended(config)
    optimizer = OPTIMIZERS[config.pop("name")]
    groups = config.pop("groups", [])
    check_arguments(optimizer, config, f"optimizer {optimizer.__name__}",
                    skip=("params", "muon_groups", "adamw_groups"))
    for key in ("lr", "adamw_lr", "weight_decay", "adamw_weight_decay", "momentum", "eps"):
        value = config.get(key, 0.0)
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"optimizer {key} must be a number >= 0, got {value!r}")
    if config.get("lr", 1.0) == 0:
        raise ConfigError("optimizer lr must be > 0")
    if config.get("momentum", 0.0) >= 1.0:
        raise ConfigError(f"optimizer momentum must lie in [0, 1), got {config['momentum']}")
    for key in ("betas", "adamw_betas"):
        if not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in config.get(key, ())):
            raise ConfigError(f"optimizer {key} must lie in [0, 1), got {config[key]}")
    for group in groups:
        if not isinstance(group, dict) or "match" not in group:
            raise ConfigError(f"each entry of optimizer groups needs a `match` pattern, got {group!r}")


def check_scheduler(config: dict) -> None:
    """Raise a ConfigError for an unknown schedule or argument."""
    config = dict(config)
    schedule = lookup(SCHEDULES, config.pop("name", None), "scheduler")
    warmup = config.pop("warmup_steps", 0)
    if not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"scheduler warmup_steps must be an integer >= 0, got {warmup!r}")
    check_arguments(schedule, config, f"scheduler {schedule.__name__}", skip=("step", "total_steps"))


def named_trainable(model: nn.Module):
    """(name, parameter, owning module) for each trainable parameter, shared ones once."""
    seen = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad and id(param) not in seen:  # tied weights count once
                seen.add(id(param))
                yield f"{module_name}.{name}" if module_name else name, param, module


def param_groups(model: nn.Module, weight_decay: float, overrides: list[dict] = ()) -> list[dict]:
    """Split the trainable parameters into a group with weight decay (weight matrices and
    filters) and one without (biases, norm gains, embeddings). Each override
    {match: <glob on parameter names>, <optimizer arguments>} takes the parameters it
    matches into a group of its own (weight decay as above unless it sets weight_decay)."""
    groups = {"decay": [], "no_decay": []} | {i: [] for i in range(len(overrides))}
    for name, param, module in named_trainable(model):
        kind = "no_decay" if param.ndim <= 1 or isinstance(module, NO_DECAY_LAYERS) else "decay"
        matched = [i for i, override in enumerate(overrides) if fnmatch.fnmatchcase(name, override["match"])]
        groups[matched[0] if matched else kind].append(param)
    result = [
        {"name": "decay", "params": groups["decay"], "weight_decay": weight_decay},
        {"name": "no_decay", "params": groups["no_decay"], "weight_decay": 0.0},
    ]
    for i, override in enumerate(overrides):
        extra = {key: value for key, value in override.items() if key != "match"}
        result.append({"name": override["match"], "params": groups[i], "weight_decay": weight_decay, **extra})
    return [group for group in result if group["params"]]


def muon_split(model: nn.Module) -> tuple[list, list]:
    """(hidden weight matrices for Muon, every other parameter for AdamW).

    A hidden weight matrix is the weight of an nn.Linear layer other than the last one (taken to
    be the output layer, even when its weight is tied to an embedding). Embeddings, biases, norms
    and convolution filters go to AdamW.
    """
    named = list(named_trainable(model))
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    embeddings = {id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)}
    hidden = {id(module.weight) for module in linears[:-1] if module.weight.requires_grad} - embeddings
    if not hidden:  # no hidden layers (e.g. the objective family): any matrix the model optimizes
        hidden = {id(param) for _, param, _ in named if param.ndim == 2} - embeddings
    return [p for _, p, _ in named if id(p) in hidden], [p for _, p, _ in named if id(p) not in hidden]


def build_optimizer(model: nn.Module, config: dict) -> torch.optim.Optimizer:
    """The optimizer named in `config`, over the model's parameters split by param_groups."""
    check_optimizer(config)
    config = with_recommended(config)
    optimizer = OPTIMIZERS[config.pop("name")]
    own_default = inspect.signature(optimizer).parameters.get("weight_decay")
    weight_decay = config.pop("weight_decay", own_default.default if own_default else 0.0)  # AdamW: 0.01
    groups = param_groups(model, weight_decay, config.pop("groups", []))
    if optimizer is MuonWithAdamW:
        muon_params, _ = muon_split(model)
        if not muon_params:
            rank_zero_warn("muon: this model has no weight matrix, so every parameter is trained by AdamW")
        hidden = {id(p) for p in muon_params}
        adamw_groups = [{**g, "params": [p for p in g["params"] if id(p) not in hidden]} for g in groups]
        muon_groups = [{"name": "muon", "params": muon_params}] if muon_params else []
        adamw_groups = [g for g in adamw_groups if g["params"]]
        return MuonWithAdamW(muon_groups, adamw_groups, weight_decay=weight_decay, **config)
    return optimizer(groups, **config)


def schedule_factor(config: dict, total_steps: float):
    """factor(step) for the schedule in `config`, warmup included."""
    check_scheduler(config)
    config = dict(config)
    name = config.pop("name")
    default_warmup = DEFAULT_WARMUP_FRACTION.get(name, 0.0)
    if default_warmup:
        default_warmup = int(default_warmup * needs_length(total_steps, name))
    warmup = config.pop("warmup_steps", default_warmup)
    schedule = partial(SCHEDULES[name], total_steps=total_steps - warmup, **config)
    schedule(0)  # fail now, not at the first step, if the schedule cannot work for this run

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup  # linear warmup, never exactly 0
        return schedule(step - warmup)

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: dict, total_steps: float):
    """A LambdaLR that multiplies each group's learning rate by the schedule's factor."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_factor(config, total_steps))
