"""The command line's shorthands, turned into what LightningCLI reads (run/cli.py uses them).

- `--optimizer adam` / `--scheduler wsd` (and the long `--model.init_args.optimizer adam`)
  become the whole class spec of that name, with its starting values (see optim/choices.py);
- a run's default name is made from what the command line changes (`adam_lr3e-4`);
- jsonargparse's many-line account of a config mistake is cut to one line.
"""

import json
import re
import sys
from pathlib import Path

from ..config_errors import ConfigError, read_yaml
from ..optim import OPTIMIZERS, SCHEDULES, arguments_of, optimizer_spec, schedule_spec

# Command-line keys that say nothing about the experiment itself: never part of a run's name.
NOT_IN_NAMES = re.compile(
    r"^(config|ckpt_path|name|threads|print_config|help|last_checkpoint|trainer\.(logger|enable_|callbacks|default_root_dir|num_nodes))"
)


def name_from_arguments(args: list[str]) -> str | None:
    """A run name from what the command line changes: `--optimizer adam --optimizer.lr 3e-4
    --seed_everything 1` -> `adam_lr3e-4_seed1`. None when it changes nothing."""
    parts = []
    for key, value in flag_values(args):
        key = key.replace("init_args.", "").removeprefix("model.").removeprefix("data.")
        if NOT_IN_NAMES.match(key) or value is None:
            continue
        short_key = "seed" if key == "seed_everything" else key.rsplit(".", 1)[-1]
        if value.startswith(("{", "[")):  # a whole entry or a list: its key says enough
            parts.append(short_key)
        elif re.fullmatch(r"[\w.]+\.[A-Z]\w*", value):  # a class path: its class name
            parts.append(value.rsplit(".", 1)[-1].lower())
        elif key in ("optimizer", "scheduler"):
            parts.append(value)
        else:
            parts.append(f"{short_key}{value}")
    name = re.sub(r"[^A-Za-z0-9._=+-]+", "-", "_".join(parts)).strip("-_")
    return name[:80] or None


def flag_values(args: list[str]) -> list[tuple[str, str | None]]:
    """(key, value) for each --key value or --key=value in `args`."""
    pairs = []
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        key, equals, value = arg[2:].partition("=")
        if not equals:
            following = args[i + 1] if i + 1 < len(args) else None
            value = following if following is not None and not following.startswith("--") else None
        pairs.append((key, value))
    return pairs


# --optimizer and --scheduler are short for the model's entries of the same name.
ENTRIES = {"optimizer": optimizer_spec, "scheduler": schedule_spec}
FLAG = re.compile(r"^--(?:model\.(?:init_args\.)?)?(optimizer|scheduler)(\.[\w.]+)?$")


def expand_choices(args: list[str]) -> list[str]:
    """Rewrite the optimizer and scheduler flags for LightningCLI:

    `--optimizer adam` -> `--model.optimizer=null --model.optimizer={"class_path": "torch.optim.Adam",
    "init_args": {"lr": 0.001}}`: the null first drops every argument of the config's optimizer,
    so none carries over into the new one (jsonargparse keeps the ones both classes accept);
    `--optimizer.lr 3e-4` -> `--model.optimizer.lr 3e-4`; `--optimizer.help adam` shows Adam's
    arguments. The long forms (`--model.init_args.optimizer ...`) work the same way.
    """
    expanded, i = [], 0
    while i < len(args):
        arg = args[i]
        flag, equals, value = arg.partition("=")
        match = FLAG.match(flag)
        if not match:
            expanded.append(arg)
            i += 1
            continue
        entry, suffix = match.group(1), match.group(2) or ""
        if not equals:
            value = args[i + 1] if i + 1 < len(args) else None
            i += 1
        i += 1
        target = f"--model.{entry}{suffix}"
        if value is None:
            expanded.append(target)
        elif suffix == ".help":
            expanded += [target, class_path_of(entry, value)]
        elif suffix:
            expanded.append(f"{target}={value}")
        elif value.strip().startswith("{") or value in ("null", "None"):
            expanded += [f"{target}=null", f"{target}={value}"]  # a whole {class_path, init_args} entry
        else:
            spec = ENTRIES[entry](value) if re.fullmatch(r"[a-z0-9_]+", value) else {"class_path": value}
            expanded += [f"{target}=null", f"{target}={json.dumps(spec)}"]
    return expanded


def expand_or_exit(args: list[str]) -> list[str]:
    """`args` with the optimizer and scheduler flags expanded (expand_choices), or the end of the
    command with a one-line error if they name one that does not exist, or a --config file has a
    YAML mistake (its file and line). train.py calls it before it imports Lightning (which takes
    most of a command's start-up), so a misspelt name is reported in about 2 seconds instead of 6,
    and hands the result to cli.main, which does not expand it again."""
    try:
        for path in config_files(args):  # a YAML mistake: its file and line, before Lightning loads
            if Path(path).is_file():
                read_yaml(path)
        return expand_choices(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def config_files(args: list[str]) -> list[str]:
    """The files that `--config FILE` (or -c, --config=FILE) names among `args`."""
    files = [value for flag, value in zip(args, args[1:], strict=False) if flag in ("-c", "--config")]
    return files + [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]


def class_path_of(entry: str, value: str) -> str:
    """The class path of a built-in optimizer or schedule name; any other value unchanged."""
    names = OPTIMIZERS if entry == "optimizer" else SCHEDULES
    return ENTRIES[entry](value)["class_path"] if value in names else value


# Modules that moved when the template's code was put in folders (run/, report/, sweep/, optim/):
# a config, or a run's config.yaml, written before names them by their old path.
MOVED = {"logger": "run.logger", "callbacks": "run.callbacks", "checkpoints": "run.checkpoints", "cli": "run.cli",
         "resume": "run.resume", "summary": "run.summary", "families": "run.families", "shorthands": "run.flags",
         "registry": "config_errors", "optimizers": "optim"}


def moved_module(message: str) -> str:
    """What to write instead, when `message` names a module of this package by its path before the move."""
    package = __name__.split(".")[0]
    for old, new in MOVED.items():
        if re.search(rf"\b{package}\.{old}\.", message) or f"'{package}' has no attribute '{old}'" in message:
            return (f" ({package}.{old} is now {package}.{new}: the template's code moved into folders; "
                    f"write {package}.{new} in the config)")
    return ""


def one_line(message: str) -> str:
    """jsonargparse's many-line account of a config mistake, cut to one line that says what is wrong."""
    return first_line(message) + moved_module(message)


def first_line(message: str) -> str:
    """The line of `message` that says what is wrong (see one_line)."""
    # An argument the optimizer (or schedule) does not take, else one the model does not take.
    unknown = re.search(r"Option '(\w+)' is not accepted\. Got value: Namespace\(class_path='([\w.]+)'", message)
    unknown = unknown or re.search(r"class_path '([\w.]+)':\s*Option '(\w+)' is not accepted", message)
    if unknown:
        class_path, option = sorted(unknown.groups(), key=lambda part: "." not in part)
        accepted, name = arguments_of(class_path), class_path.rsplit(".", 1)[-1]
        hint = (f" (this experiment has no data module: its model makes its own batches, "
                f"so try --model.init_args.{option})") if name == "LightningDataModule" else ""
        return f"{name} does not take {option!r}; " + (f"it takes: {accepted}" if accepted else "it takes no arguments") + hint
    key = ".".join(re.findall(r'Parser key "([\w.]+)"', message))
    reasons = [line for line in message.splitlines() if line.strip().startswith("- ") and "NoneType" not in line]
    reason = max(reasons, key=lambda line: len(line) - len(line.lstrip()), default="").strip(" -")
    reason = re.sub(r"^Type .*? expects .*?: |\. Got value: .*$", "", reason)
    given = re.search(r"Given value: (.*?)(\. Got value:.*)?$", message, re.M)
    if key and reason:
        return f"{key}: {reason}" + (f" (given: {given.group(1)})" if given and "Expected" in reason else "")
    return message.strip().splitlines()[0] + "  (uv run python train.py fit --help lists every option)"
