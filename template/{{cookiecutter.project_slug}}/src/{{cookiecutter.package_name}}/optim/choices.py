"""The names `--optimizer` and `--scheduler` choose from, and the factories they give the module.

    uv run python train.py fit --optimizer adam --optimizer.lr 3e-4   # a name from OPTIMIZERS below
    uv run python train.py fit --optimizer.help adam                  # every argument of one, with defaults
    uv run python train.py fit --help                                 # every name (describe_choices)
"""

import inspect
from functools import partial

import torch
from torch import nn

from ..config_errors import ConfigError
from .groups import build_optimizer
from .schedules import SCHEDULES

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
    "signsgd": ("{{ cookiecutter.package_name }}.optim.SignSGD", {"lr": 1e-3}),  # momentum > 0: Signum
    "muon": ("{{ cookiecutter.package_name }}.optim.MuonWithAdamW", {"lr": 0.02, "adamw_lr": 3e-3}),
    "schedulefree_sgd": ("schedulefree.SGDScheduleFree", {"lr": 0.5}),  # use --scheduler constant
    "schedulefree_adamw": ("schedulefree.AdamWScheduleFree", {"lr": 2.5e-3}),
    "sgd_momentum": ("{{ cookiecutter.package_name }}.optim.SGDMomentum", {"lr": 0.05}),  # written out by hand
    # x <- x - lr * P g (see handwritten.py), P chosen by --optimizer.preconditioner: diagonal
    # (Jacobi, diag(H)^-1), newton ((H + damping I)^-1, lr 1: the full step), identity, adagrad or rmsprop
    "preconditioned": ("{{ cookiecutter.package_name }}.optim.PreconditionedGD",
                       {"lr": 1.0, "preconditioner": "diagonal"}),
    "newton": ("{{ cookiecutter.package_name }}.optim.PreconditionedGD",
               {"lr": 1.0, "preconditioner": "newton"}),
}


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
    module = __package__ if cls.__module__.rpartition(".")[0] == __package__ else cls.__module__  # optim.Cosine
    return {"class_path": f"{module}.{cls.__qualname__}", "init_args": dict(getattr(factory, "keywords", {}))}


def as_factory(value):
    """A factory from a {class_path, init_args} dict (as a checkpoint holds it); others unchanged."""
    if isinstance(value, dict) and "class_path" in value:
        return partial(import_class(value["class_path"]), **value.get("init_args", {}))
    return value


def check_optimizer(factory) -> torch.optim.Optimizer:
    """Build the optimizer once over stand-in parameters, so a bad value (a negative lr, momentum
    1.5, nesterov without momentum, ...) fails when the model is made, before any data loads.
    Returns that stand-in optimizer."""
    stand_ins = [{"name": "matrices", "params": [nn.Parameter(torch.zeros(2, 2))]},
                 {"name": "no_decay", "params": [nn.Parameter(torch.zeros(2))], "weight_decay": 0.0}]
    name = factory_class(factory).__name__
    try:
        optimizer = build_optimizer(factory, stand_ins)
    except (ValueError, TypeError, RuntimeError) as error:
        raise ConfigError(f"optimizer {name}: {error}") from error
    settings = optimizer.defaults
    # Values that torch.optim accepts but that cannot train.
    if isinstance(settings.get("lr"), (int, float)) and settings["lr"] <= 0:
        raise ConfigError(f"optimizer {name}: lr must be > 0, got {settings['lr']}")
    if isinstance(settings.get("momentum"), (int, float)) and not 0 <= settings["momentum"] < 1:
        raise ConfigError(f"optimizer {name}: momentum must lie in [0, 1), got {settings['momentum']}")
    return optimizer


def schedule_spec(name: str) -> dict:
    """{class_path} for a name of SCHEDULES (its arguments keep their defaults)."""
    if name not in SCHEDULES:
        raise ConfigError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULES)}, "
                          "or give the import path of a Schedule subclass")
    return {"class_path": f"{__package__}.{SCHEDULES[name].__name__}"}  # {{ cookiecutter.package_name }}.optim.Cosine, ...


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
                          f"subclass {__package__}.Schedule (see docs/extending.md)")
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
