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
          class_path: torch.optim.SGD     # or Adam, AdamW, the_sgd_lecture_reproduced.optim.SignSGD, ...
          init_args: {lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}
        scheduler:
          class_path: the_sgd_lecture_reproduced.optim.Cosine
          init_args: {warmup_steps: 20}
        param_groups:                     # optional: other settings for some parameters (glob on names)
          - {match: "net.layers.0.*", lr: 0.01}

Parameters are split into groups before the optimizer sees them (see `param_groups`): weight
decay applies to weight matrices and filters, never to biases, norms or embeddings; the hidden
layers' weight matrices form a group named "matrices" (Muon trains that group, AdamW the rest).

An optimizer of your own is any torch.optim.Optimizer subclass whose constructor takes the
parameter groups first and keyword arguments after (see handwritten.py here: SGDMomentum, a worked
example). If it evaluates other weights than it trains on (as Schedule-Free does), give it
`train()` and `eval()` methods: run/callbacks.py's OptimizerModes calls them around every validation and
checkpoint. A schedule of your own subclasses `Schedule`. See docs/extending.md.

This package holds (each name below is importable from it, as `the_sgd_lecture_reproduced.optim.NAME`):
- choices.py: the names --optimizer and --scheduler take, and the factories they make;
- groups.py: the parameter groups (param_groups), and the optimizer built over them (build_optimizer);
- schedules.py: the schedules (Schedule and its subclasses);
- handwritten.py: the optimizers written out here (SignSGD, MuonWithAdamW, SGDMomentum, PreconditionedGD).
"""

from .choices import (
    IMPLEMENTATION_SWITCHES,
    OPTIMIZERS,
    arguments_of,
    as_factory,
    check_optimizer,
    check_schedule,
    describe_choices,
    factory_class,
    factory_spec,
    import_class,
    make_optimizer,
    make_schedule,
    optimizer_spec,
    schedule_spec,
)
from .groups import NO_DECAY_LAYERS, build_optimizer, hidden_matrices, named_trainable, param_groups
from .handwritten import MuonWithAdamW, PreconditionedGD, SGDMomentum, SignSGD
from .schedules import (
    SCHEDULE_SETTINGS,
    SCHEDULES,
    WSD,
    Constant,
    Cosine,
    Exponential,
    InverseTime,
    Linear,
    OneCycle,
    Schedule,
    StepDecay,
    WarmupCosine,
    linear_decay,
    needs_length,
)

__all__ = [
    "Constant", "Cosine", "Exponential", "IMPLEMENTATION_SWITCHES", "InverseTime", "Linear", "MuonWithAdamW",
    "NO_DECAY_LAYERS", "OPTIMIZERS", "OneCycle", "PreconditionedGD", "SCHEDULES", "SCHEDULE_SETTINGS",
    "SGDMomentum", "Schedule", "SignSGD", "StepDecay", "WSD", "WarmupCosine", "arguments_of", "as_factory",
    "build_optimizer", "check_optimizer", "check_schedule", "describe_choices", "factory_class", "factory_spec",
    "hidden_matrices",
    "import_class", "linear_decay", "make_optimizer", "make_schedule", "named_trainable", "needs_length",
    "optimizer_spec", "param_groups", "schedule_spec",
]
