"""Look up things chosen by name in a config (optimizers, schedules, nets, datasets), with
errors that name the valid choices, raised before any training starts."""

import inspect
from pathlib import Path


class ConfigError(ValueError):
    """A config value that cannot work; the message says what to write instead."""


def read_yaml(path: str | Path) -> object:
    """What a YAML file holds, or a ConfigError naming the file, line and column of a syntax mistake."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: {error.problem or error.context} (a YAML syntax mistake: look for a missing "
                          "bracket, quote or colon, or an indentation that differs from the lines around it)") from None


def lookup(registry: dict, name: str, kind: str):
    """Return `registry[name]`, or raise a ConfigError listing the names there are."""
    if name not in registry:
        choices = ", ".join(sorted(registry))
        raise ConfigError(f"unknown {kind} {name!r}: choose one of {choices}")
    return registry[name]


def check_arguments(function, arguments: dict, kind: str, skip: tuple = ()) -> None:
    """Raise a ConfigError if `function` does not take every key of `arguments`.

    `skip` names the parameters the code fills in itself (such as `params`), which the
    config must not set.
    """
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [name for name in parameters if name not in skip]
    unknown = sorted(set(arguments) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{kind} does not take {', '.join(map(repr, unknown))}; "
            + (f"it takes: {', '.join(accepted)}" if accepted else "it takes no arguments")
        )
