"""Learning-rate schedules: what `--scheduler NAME` chooses from (SCHEDULES below).

    uv run python train.py fit --scheduler cosine
    uv run python train.py fit --scheduler wsd --scheduler.warmup_steps 100

In a config: `scheduler: {class_path: {{ cookiecutter.package_name }}.optim.Cosine, init_args: {warmup_steps: 20}}`.
A schedule of your own subclasses `Schedule` below (see docs/extending.md).
"""

import math

import torch

from ..config_errors import ConfigError

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

    kept_planned_length = False  # a resume with a larger budget kept the length the run was planned with

    def end_note(self, steps: int) -> str | None:
        """What the end-of-run table says when a resume ran past the planned length (else None)."""
        planned = self.warmup_steps + self.total_steps
        if not self.kept_planned_length or steps <= planned:
            return None
        return (f"Note: {type(self).__name__} was planned over {planned:g} steps: the last {steps - planned:g} of the "
                f"{steps} ran at its final learning rate, {self.get_last_lr()[0]:.3g}. For a schedule over the whole "
                "run, start a new run.")

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
            self.kept_planned_length = True
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
