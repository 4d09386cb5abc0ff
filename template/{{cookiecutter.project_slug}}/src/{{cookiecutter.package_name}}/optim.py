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
        scheduler:
          name: cosine         # a key of SCHEDULES below
          warmup_steps: 100    # linear warmup before any schedule (optional)

or on the command line: `python train.py fit --model.init_args.optimizer.name adam`.

The schedule multiplies the optimizer's learning rate by factor(step), where step counts
optimizer steps from 0 and total_steps is the run's length as the Trainer computes it.
To add an optimizer, add it to OPTIMIZERS; to add a schedule, add a function to SCHEDULES.
"""

import math
from functools import partial

import torch
from torch import nn

from .registry import ConfigError, check_arguments, lookup

OPTIMIZERS = {
    "sgd": torch.optim.SGD,  # momentum: 0.9 for Polyak (heavy ball); add nesterov: true for Nesterov
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
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


SCHEDULES = {
    "constant": constant,
    "step": step_decay,
    "cosine": cosine,
    "warmup_cosine": cosine,  # cosine with warmup_steps defaulting to 5% of the run
    "inverse_time": inverse_time,
}
DEFAULT_WARMUP_FRACTION = {"warmup_cosine": 0.05}


def needs_length(total_steps: float, name: str) -> float:
    """total_steps, or a clear error when the run has no set length."""
    if not math.isfinite(total_steps):
        raise ConfigError(
            f"schedule {name!r} needs the run's length: set trainer.max_epochs or trainer.max_steps"
        )
    return total_steps


def check_optimizer(config: dict) -> None:
    """Raise a ConfigError for an unknown optimizer, argument or out-of-range value."""
    config = dict(config)
    optimizer = lookup(OPTIMIZERS, config.pop("name", None), "optimizer")
    check_arguments(optimizer, config, f"optimizer {optimizer.__name__}", skip=("params",))
    for key in ("lr", "weight_decay", "momentum", "eps"):
        value = config.get(key, 0.0)
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"optimizer {key} must be a number >= 0, got {value!r}")
    if config.get("lr", 1.0) == 0:
        raise ConfigError("optimizer lr must be > 0")
    for beta in config.get("betas", ()):
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"optimizer betas must lie in [0, 1), got {config['betas']}")


def check_scheduler(config: dict) -> None:
    """Raise a ConfigError for an unknown schedule or argument."""
    config = dict(config)
    schedule = lookup(SCHEDULES, config.pop("name", None), "scheduler")
    warmup = config.pop("warmup_steps", 0)
    if not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"scheduler warmup_steps must be an integer >= 0, got {warmup!r}")
    check_arguments(schedule, config, f"scheduler {schedule.__name__}", skip=("step", "total_steps"))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split the trainable parameters into a group with weight decay (weight matrices and
    filters) and one without (biases, norm gains, embeddings)."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue  # frozen, or shared with a layer already seen (weight tying)
            seen.add(id(param))
            if param.ndim <= 1 or isinstance(module, NO_DECAY_LAYERS):
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, config: dict) -> torch.optim.Optimizer:
    """The optimizer named in `config`, over the model's parameters split by param_groups."""
    check_optimizer(config)
    config = dict(config)
    optimizer = OPTIMIZERS[config.pop("name")]
    groups = param_groups(model, config.pop("weight_decay", 0.0))
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
