"""Optimizers and learning-rate schedules: what `--optimizer` and `--scheduler` choose from.

On the command line (any experiment; each flag replaces the whole entry of the config, so no
argument of the previous optimizer carries over, and arguments left out take the starting
values below, else the optimizer's own defaults):

    uv run python train.py fit --optimizer adam                      # a name from OPTIMIZERS below
    uv run python train.py fit --optimizer adam --optimizer.lr 3e-4  # then change any of its arguments
    uv run python train.py fit --optimizer my_package.my_optimizers.MyOpt   # your own, by import path
    uv run python train.py fit --scheduler wsd --scheduler.warmup_steps 100 # a name from SCHEDULES below
    uv run python train.py fit --optimizer.help adam                 # every argument of one, with defaults

In an experiment config (configs/*.yaml) the same choice is a class and its arguments:

    model:
      init_args:
        optimizer:
          class_path: torch.optim.SGD     # or Adam, AdamW, conditioning_momentum_and_the_noise_floor.optimizers.SignSGD, ...
          init_args: {lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}
        scheduler:
          class_path: conditioning_momentum_and_the_noise_floor.optim.Cosine
          init_args: {warmup_steps: 20}
        param_groups:                     # optional: other settings for some parameters (glob on names)
          - {match: "net.layers.0.*", lr: 0.01}

Parameters are split into groups before the optimizer sees them (see `param_groups`): weight
decay applies to weight matrices and filters, never to biases, norms or embeddings; the hidden
layers' weight matrices form a group named "matrices" (Muon trains that group, AdamW the rest).

An optimizer of your own is any torch.optim.Optimizer subclass whose constructor takes the
parameter groups first and keyword arguments after (see optimizers.py: SGDMomentum, a worked
example). If it evaluates other weights than it trains on (as Schedule-Free does), give it
`train()` and `eval()` methods: callbacks.OptimizerModes calls them around every validation and
checkpoint. A schedule of your own subclasses `Schedule` below. See docs/extending.md.
"""

import fnmatch
import inspect
import math
from functools import partial

import torch
from torch import nn

from .registry import ConfigError

# name: (class, starting values used when the command line names the optimizer). The starting
# learning rates each train the default vision experiment (digits, MLP) to over 90% validation
# accuracy; tune them for your own problem. Except the last two: Newton's method needs the
# Hessian, which only the objective family computes (elsewhere the model refuses it when it is
# made), while --optimizer preconditioned --optimizer.preconditioner adagrad --optimizer.lr 0.05
# (or rmsprop, lr 1e-3) runs in every family.
OPTIMIZERS = {
    "sgd": ("torch.optim.SGD", {"lr": 0.05}),  # plain (stochastic) gradient descent
    "momentum": ("torch.optim.SGD", {"lr": 0.05, "momentum": 0.9}),  # Polyak's heavy ball
    "nesterov": ("torch.optim.SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "adagrad": ("torch.optim.Adagrad", {"lr": 0.05}),
    "rmsprop": ("torch.optim.RMSprop", {"lr": 1e-3}),
    "adam": ("torch.optim.Adam", {"lr": 1e-3}),
    "adamw": ("torch.optim.AdamW", {"lr": 1e-3}),  # decoupled weight decay, 0.01 by default
    "nadam": ("torch.optim.NAdam", {"lr": 1e-3}),
    "radam": ("torch.optim.RAdam", {"lr": 1e-3}),
    "adafactor": ("torch.optim.Adafactor", {"lr": 1e-2}),
    "signsgd": ("conditioning_momentum_and_the_noise_floor.optimizers.SignSGD", {"lr": 1e-3}),  # momentum > 0: Signum
    "muon": ("conditioning_momentum_and_the_noise_floor.optimizers.MuonWithAdamW", {"lr": 0.02, "adamw_lr": 3e-3}),
    "schedulefree_sgd": ("schedulefree.SGDScheduleFree", {"lr": 0.5}),  # use --scheduler constant
    "schedulefree_adamw": ("schedulefree.AdamWScheduleFree", {"lr": 2.5e-3}),
    "sgd_momentum": ("conditioning_momentum_and_the_noise_floor.optimizers.SGDMomentum", {"lr": 0.05}),  # written out by hand
    # x <- x - lr * P g (see optimizers.py), P chosen by --optimizer.preconditioner: diagonal
    # (Jacobi, diag(H)^-1), newton ((H + damping I)^-1, lr 1: the full step), identity, adagrad or rmsprop
    "preconditioned": ("conditioning_momentum_and_the_noise_floor.optimizers.PreconditionedGD",
                       {"lr": 1.0, "preconditioner": "diagonal"}),
    "newton": ("conditioning_momentum_and_the_noise_floor.optimizers.PreconditionedGD",
               {"lr": 1.0, "preconditioner": "newton"}),
}

# Parameters of these layers never get weight decay: shrinking a norm's gain or an embedding
# towards zero is not the regularisation weight decay is meant to be.
NORMS = ("BatchNorm", "SyncBatchNorm", "InstanceNorm")  # torch.nn's batch and instance norms, lazy ones too
NO_DECAY_LAYERS = tuple(getattr(nn, name) for name in dir(nn) if name.removeprefix("Lazy").rstrip("123d") in NORMS)
NO_DECAY_LAYERS += (nn.LayerNorm, nn.GroupNorm, nn.Embedding)


def import_class(path: str) -> type:
    """The class at an import path such as torch.optim.Adam."""
    module, _, name = path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def optimizer_spec(name: str) -> dict:
    """{class_path, init_args} for a name of OPTIMIZERS, with its starting values."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}, "
                          "or give the import path of an Optimizer class (my_package.my_optimizers.MyOpt)")
    class_path, starting_values = OPTIMIZERS[name]
    return {"class_path": class_path, "init_args": dict(starting_values)}


def make_optimizer(name: str, **arguments):
    """For Python code and notebooks: the factory that `--optimizer name` gives the module.

    make_optimizer("adam", lr=3e-4)(params) builds Adam over params, starting values included.
    """
    spec = optimizer_spec(name)
    return partial(import_class(spec["class_path"]), **{**spec["init_args"], **arguments})


def factory_class(factory) -> type:
    """The class behind an optimizer or schedule factory (a partial, as LightningCLI makes)."""
    while isinstance(factory, partial):
        classes = [arg for arg in (factory.func, *factory.args) if inspect.isclass(arg)]
        if classes:
            return classes[0]
        factory = factory.func
    return factory


def factory_spec(factory) -> dict:
    """{class_path, init_args} of a factory: the form a config (and a checkpoint) holds."""
    cls = factory_class(factory)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(getattr(factory, "keywords", {}))}


def as_factory(value):
    """A factory from a {class_path, init_args} dict (as a checkpoint holds it); others unchanged."""
    if isinstance(value, dict) and "class_path" in value:
        return partial(import_class(value["class_path"]), **value.get("init_args", {}))
    return value


def named_trainable(model: nn.Module):
    """(name, parameter, owning module) for each trainable parameter, shared ones once."""
    seen = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad and id(param) not in seen:  # tied weights count once
                seen.add(id(param))
                yield f"{module_name}.{name}" if module_name else name, param, module


def hidden_matrices(model: nn.Module) -> set[int]:
    """ids of the hidden layers' weight matrices: those of every nn.Linear but the last one (the
    output layer, even when tied to an embedding). A model without hidden layers (the objective
    family's variables, say) gives any 2-D parameter that is not an embedding."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    embeddings = {id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)}
    hidden = {id(module.weight) for module in linears[:-1] if module.weight.requires_grad} - embeddings
    if not hidden:
        hidden = {id(param) for _, param, _ in named_trainable(model) if param.ndim == 2} - embeddings
    return hidden


def param_groups(model: nn.Module, overrides: list[dict] | None = None) -> list[dict]:
    """The model's trainable parameters in named groups, for any optimizer:

    - "matrices": the hidden layers' weight matrices (weight decay as the optimizer sets it);
    - "decay": every other weight matrix or filter (the same);
    - "no_decay": biases, norm gains and embeddings (weight_decay 0);
    - one group per override {match: <glob on parameter names>, <optimizer arguments>}, which
      takes the parameters it matches and sets its own arguments (e.g. lr).
    Groups leave out the arguments they do not set, so the optimizer fills in its own values.
    """
    overrides = list(overrides or [])
    for override in overrides:
        if not isinstance(override, dict) or "match" not in override:
            raise ConfigError(f"each entry of param_groups needs a `match` pattern, got {override!r}")
    hidden = hidden_matrices(model)
    members = {"matrices": [], "decay": [], "no_decay": []} | {i: [] for i in range(len(overrides))}
    for name, param, module in named_trainable(model):
        matched = [i for i, override in enumerate(overrides) if fnmatch.fnmatchcase(name, override["match"])]
        if matched:
            members[matched[0]].append(param)
        elif param.ndim <= 1 or isinstance(module, NO_DECAY_LAYERS):
            members["no_decay"].append(param)
        else:
            members["matrices" if id(param) in hidden else "decay"].append(param)
    groups = [
        {"name": "matrices", "params": members["matrices"]},
        {"name": "decay", "params": members["decay"]},
        {"name": "no_decay", "params": members["no_decay"], "weight_decay": 0.0},
    ]
    for i, override in enumerate(overrides):
        settings = {key: value for key, value in override.items() if key != "match"}
        groups.append({"name": override["match"], "params": members[i], **settings})
    return [group for group in groups if group["params"]]


def check_optimizer(factory) -> torch.optim.Optimizer:
    """Build the optimizer once over stand-in parameters, so a bad value (a negative lr, momentum
    1.5, nesterov without momentum, ...) fails when the model is made, before any data loads.
    Returns that stand-in optimizer."""
    stand_ins = [{"name": "matrices", "params": [nn.Parameter(torch.zeros(2, 2))]},
                 {"name": "no_decay", "params": [nn.Parameter(torch.zeros(2))], "weight_decay": 0.0}]
    name = factory_class(factory).__name__
    try:
        optimizer = factory(stand_ins)
    except (ValueError, TypeError, RuntimeError) as error:
        raise ConfigError(f"optimizer {name}: {error}") from error
    settings = optimizer.defaults
    # Values that torch.optim accepts but that cannot train.
    if isinstance(settings.get("lr"), (int, float)) and settings["lr"] <= 0:
        raise ConfigError(f"optimizer {name}: lr must be > 0, got {settings['lr']}")
    if isinstance(settings.get("momentum"), (int, float)) and not 0 <= settings["momentum"] < 1:
        raise ConfigError(f"optimizer {name}: momentum must lie in [0, 1), got {settings['momentum']}")
    return optimizer


# Schedules. Each multiplies the optimizer's learning rate by factor(step), where step counts
# optimizer steps from 0 and total_steps is the run's length as the Trainer computes it.


def needs_length(total_steps: float, name: str) -> float:
    """total_steps, or a clear error when the run has no set length."""
    if not math.isfinite(total_steps):
        raise ConfigError(f"schedule {name} needs the run's length: set trainer.max_epochs or trainer.max_steps")
    return total_steps


class Schedule(torch.optim.lr_scheduler.LambdaLR):
    """Base of every schedule: linear warmup over `warmup_steps`, then factor(step).

    A subclass defines `factor(self, step, total_steps)` (total_steps excludes the warmup) and
    takes (optimizer, total_steps, warmup_steps, its own arguments...) in its constructor.
    """

    default_warmup_fraction = 0.0  # warmup_steps=None: this fraction of the run

    def __init__(self, optimizer, total_steps: float, warmup_steps: int | None = 0):
        if warmup_steps is None:
            warmup_steps = int(self.default_warmup_fraction * needs_length(total_steps, type(self).__name__))
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ConfigError(f"scheduler warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        self.warmup_steps, self.total_steps = warmup_steps, total_steps - warmup_steps
        self.factor(0, self.total_steps)  # fail now, not at the first step, if the schedule cannot work
        super().__init__(optimizer, lambda step: self.with_warmup(step))

    def with_warmup(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps  # linear warmup, never exactly 0
        return self.factor(step - self.warmup_steps, self.total_steps)

    def factor(self, step: int, total_steps: float) -> float:
        return 1.0

    def state_dict(self):
        # The position in the schedule and the length it was planned for: its other settings
        # come from the config of the run.
        state = {key: value for key, value in super().state_dict().items() if key not in SCHEDULE_SETTINGS}
        return state | {"planned_steps": (self.warmup_steps, self.total_steps)}

    def load_state_dict(self, state_dict):
        """Continue where the checkpoint was, over the length the run was planned with.

        A resume with a larger budget (trainer.max_epochs) does not stretch the schedule: that
        would make the learning rate jump (a cosine at its end would restart from its middle).
        The steps beyond the planned length keep the schedule's final factor.
        """
        state = dict(state_dict)
        planned = state.pop("planned_steps", None)
        super().load_state_dict(state)
        if planned is not None and tuple(planned) != (self.warmup_steps, self.total_steps):
            self.warmup_steps, self.total_steps = planned
            print(f"Resuming: {type(self).__name__} keeps the length it was planned with "
                  f"({self.warmup_steps + self.total_steps:g} steps), so the learning rate does not jump; steps "
                  "beyond it keep its final value. For a schedule over the longer run, start a new run.")


class Constant(Schedule):
    """factor = 1 (after any warmup)."""


class StepDecay(Schedule):
    """factor = gamma ** (step // step_size); step_size defaults to a third of the run."""

    def __init__(self, optimizer, total_steps: float, warmup_steps: int | None = 0, step_size: int | None = None,
                 gamma: float = 0.1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, total_steps, warmup_steps)

    def factor(self, step, total_steps):
        step_size = self.step_size or max(1, int(needs_length(total_steps, "StepDecay")) // 3)
        return self.gamma ** (step // step_size)


class Cosine(Schedule):
    """factor goes from 1 to min_factor along half a cosine wave over the run."""

    def __init__(self, optimizer, total_steps: float, warmup_steps: int | None = 0, min_factor: float = 0.0):
        self.min_factor = min_factor
        super().__init__(optimizer, total_steps, warmup_steps)

    def factor(self, step, total_steps):
        progress = min(step / max(1.0, needs_length(total_steps, "Cosine")), 1.0)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine(Cosine):
    """Cosine with warmup_steps defaulting to 5% of the run."""

    default_warmup_fraction = 0.05

    def __init__(self, optimizer, total_steps: float, warmup_steps: int | None = None, min_factor: float = 0.0):
        super().__init__(optimizer, total_steps, warmup_steps, min_factor)


class InverseTime(Schedule):
    """factor = 1 / (1 + step / tau): the classic 1/t decay; tau defaults to a tenth of the run."""

    def __init__(self, optimizer, total_steps: float, warmup_steps: int | None = 0, tau: float | None = None):
        self.tau = tau
        super().__init__(optimizer, total_steps, warmup_steps)

    def factor(self, step, total_steps):
        tau = self.tau or max(1.0, needs_length(total_steps, "InverseTime") / 10)
        return 1.0 / (1.0 + step / tau)


class Exponential(Schedule):
    """factor = gamma ** step; gamma defaults to the value that reaches 0.01 at the end of the run."""

    def __init__(self, optimizer, total_steps: float, warmup_steps: int | None = 0, gamma: float | None = None):
        self.gamma = gamma
        super().__init__(optimizer, total_steps, warmup_steps)

    def factor(self, step, total_steps):
        gamma = self.gamma or 0.01 ** (1 / max(1.0, needs_length(total_steps, "Exponential")))
        return gamma**step


def linear_decay(step: float, total_steps: float, min_factor: float) -> float:
    """From 1 at step 0 down to min_factor at total_steps, in a straight line."""
    return 1.0 - (1.0 - min_factor) * min(step / max(1.0, total_steps), 1.0)


class Linear(Schedule):
    """factor falls in a straight line from 1 to min_factor (0: linear decay to zero)."""

    def __init__(self, optimizer, total_steps: float, warmup_steps: int | None = 0, min_factor: float = 0.0):
        self.min_factor = min_factor
        super().__init__(optimizer, total_steps, warmup_steps)

    def factor(self, step, total_steps):
        return linear_decay(step, needs_length(total_steps, "Linear"), self.min_factor)


class WSD(Schedule):
    """Warmup-stable-decay: factor 1 (after any warmup_steps), then a linear decay to min_factor
    over the last decay_fraction of the run."""

    def __init__(self, optimizer, total_steps: float, warmup_steps: int | None = 0, decay_fraction: float = 0.2,
                 min_factor: float = 0.0):
        self.decay_fraction, self.min_factor = decay_fraction, min_factor
        super().__init__(optimizer, total_steps, warmup_steps)

    def factor(self, step, total_steps):
        decay_start = (1.0 - self.decay_fraction) * needs_length(total_steps, "WSD")
        if step < decay_start:
            return 1.0
        return linear_decay(step - decay_start, total_steps - decay_start, self.min_factor)


class OneCycle(Schedule):
    """One-cycle (as torch's OneCycleLR with cosine annealing): from 1/div_factor up to 1 over
    peak_fraction of the run, then down to 1/(div_factor * final_div_factor)."""

    def __init__(self, optimizer, total_steps: float, warmup_steps: int | None = 0, peak_fraction: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4):
        self.peak_fraction, self.div_factor, self.final_div_factor = peak_fraction, div_factor, final_div_factor
        super().__init__(optimizer, total_steps, warmup_steps)

    def factor(self, step, total_steps):
        peak = self.peak_fraction * needs_length(total_steps, "OneCycle") - 1
        start, end = 1.0 / self.div_factor, 1.0 / (self.div_factor * self.final_div_factor)
        if step <= peak:
            low, high, progress = start, 1.0, step / max(peak, 1e-12)
        else:
            low, high, progress = end, 1.0, 1.0 - min((step - peak) / max(total_steps - 1 - peak, 1e-12), 1.0)
        return low + (high - low) * 0.5 * (1.0 - math.cos(math.pi * progress))


# The attributes a schedule sets itself; its state_dict leaves them out.
SCHEDULE_SETTINGS = {"warmup_steps", "total_steps", "step_size", "gamma", "min_factor", "tau", "decay_fraction",
                     "peak_fraction", "div_factor", "final_div_factor"}

SCHEDULES = {
    "constant": Constant,
    "step": StepDecay,
    "cosine": Cosine,
    "warmup_cosine": WarmupCosine,
    "inverse_time": InverseTime,  # 1/t
    "exponential": Exponential,
    "linear": Linear,
    "wsd": WSD,
    "one_cycle": OneCycle,
}


def schedule_spec(name: str) -> dict:
    """{class_path} for a name of SCHEDULES (its arguments keep their defaults)."""
    if name not in SCHEDULES:
        raise ConfigError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULES)}, "
                          "or give the import path of a Schedule subclass")
    return {"class_path": f"{__name__}.{SCHEDULES[name].__name__}"}


def make_schedule(name: str, **arguments):
    """For Python code: the factory that `--scheduler name` gives the module;
    make_schedule("cosine", warmup_steps=10)(optimizer, total_steps)."""
    schedule_spec(name)
    return partial(SCHEDULES[name], **arguments)


def check_schedule(factory) -> None:
    """A schedule must take (optimizer, total_steps, ...) and the arguments given: say so now,
    not when training starts."""
    schedule = factory_class(factory)
    signature = inspect.signature(schedule)
    if list(signature.parameters)[:2] != ["optimizer", "total_steps"]:
        raise ConfigError(f"scheduler {schedule.__name__} must take (optimizer, total_steps, ...): "
                          f"subclass {__name__}.Schedule (see docs/extending.md)")
    try:
        signature.bind(None, 1, **getattr(factory, "keywords", {}))
    except TypeError as error:
        raise ConfigError(f"scheduler {schedule.__name__}: {error}; it takes {arguments_of(schedule)}") from error


def describe_choices() -> str:
    """The built-in optimizers and schedules with their arguments, for `train.py fit --help`."""
    lines = ["Optimizers: --optimizer NAME [--optimizer.ARGUMENT VALUE ...], or an import path:"]
    for name, (class_path, starting_values) in OPTIMIZERS.items():
        lines.append(f"  {name:<19} {class_path.rsplit('.', 1)[-1]}({arguments_of(class_path, starting_values)})")
    lines.append("Schedules: --scheduler NAME [--scheduler.ARGUMENT VALUE ...]:")
    for name, schedule in SCHEDULES.items():
        lines.append(f"  {name:<19} {schedule.__name__}({arguments_of(schedule)})")
    return "\n".join(lines)


# Arguments of torch.optim classes that choose an implementation, not an optimization setting.
IMPLEMENTATION_SWITCHES = ("foreach", "maximize", "capturable", "differentiable", "fused")


def arguments_of(target, values: dict | None = None) -> str:
    """'lr=0.05, momentum=0, ...': a class's arguments that have defaults (the others, such as
    params or optimizer, are filled in by the code), with `values` in place of some defaults."""
    values = values or {}
    try:
        cls = import_class(target) if isinstance(target, str) else target
        parameters = inspect.signature(cls).parameters.values()
    except (ImportError, AttributeError, ValueError):  # an optional package that is not installed
        return "not installed"
    shown = [f"{p.name}={values.get(p.name, p.default)!r}" for p in parameters
             if (p.default is not p.empty or p.name in values) and p.name not in IMPLEMENTATION_SWITCHES]
    return ", ".join(shown)
