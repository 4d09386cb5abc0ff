"""Resuming a run: find its checkpoint, check that it can be read, and that the command asks for
the same run. cli.py calls these before anything is trained or written.

    uv run python train.py fit --config configs/<experiment>.yaml --ckpt_path last   # its latest run
    uv run python train.py fit --config configs/<experiment>.yaml --ckpt_path last --trainer.max_epochs 60

A resume continues a run as it was trained. It may change the budget (trainer.max_epochs,
trainer.max_steps), the logging, the hardware and the callbacks: every trainer setting applies
to the rest of the run. The model, optimizer, schedule and data are the run's own, read from the
checkpoint (whatever the config file says); an option on the command line that would change them
stops the command with a message saying what differs, instead of being silently ignored.
"""

import zlib
from functools import cache
from pathlib import Path
from zipfile import BadZipFile, ZipFile, is_zipfile

import torch

from ..config_errors import ConfigError
from .families import declared

# --ckpt_path values that Lightning resolves itself (besides "last", which cli.py resolves).
LIGHTNING_NAMES = ("best", "hpc", "registry")


def may_change(data_class_path: str | None) -> set[str]:
    """The data settings a resume may change, as the family's data declares them (its
    `resume_may_change`, see families.py): where the files are, how evaluation is batched, what it
    covers; training is the same with or without."""
    return set(declared(data_class_path, "resume_may_change", ()))


def linked(data_class_path: str | None) -> set[str]:
    """The model's settings that come from the data (its `model_links`, which cli.py links): a
    resume compares them through the data's own settings."""
    return set(declared(data_class_path, "model_links", ()))


def check_checkpoint(path: str) -> None:
    """Fail early, and clearly, on a checkpoint that is missing or cannot be read."""
    if path in LIGHTNING_NAMES:
        return
    if not Path(path).is_file():
        raise ConfigError(f"checkpoint {path} does not exist: give the path of a .ckpt file, e.g. "
                          "runs/<experiment>/<name>/checkpoints/last.ckpt, or --ckpt_path last")
    if not is_zipfile(path):
        raise ConfigError(
            f"checkpoint {path} is not a PyTorch checkpoint (cut short while saving, or not a .ckpt?): "
            "use another checkpoint of the run, e.g. last.ckpt or best-*.ckpt in the same folder"
        )
    try:  # every part's checksum: a damaged file is found here, not by a traceback halfway through loading
        with ZipFile(path) as archive:
            damaged = archive.testzip()
    except (OSError, EOFError, BadZipFile, zlib.error) as error:
        damaged = str(error)
    if damaged:
        raise ConfigError(f"checkpoint {path} is damaged ({damaged} does not read back as it was written): "
                          "use another checkpoint of the run, e.g. last.ckpt or best-*.ckpt in the same folder")


def saved_settings(path: str | Path) -> dict:
    """The model's and the data's settings a checkpoint was trained with: {"model": {...}, "data": {...}}.
    A command asks for them several times (to choose, check and resume): the file is read once."""
    stat = Path(path).stat()
    return read_settings(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@cache
def read_settings(path: str, modified: int, size: int) -> dict:
    """saved_settings of the file at `path` as it was when `modified` (ns) with `size` bytes."""
    # mmap: only the few bytes of the settings are read, not the weights.
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return {"model": checkpoint.get("hyper_parameters") or {}, "data": checkpoint.get("datamodule_hyper_parameters") or {}}


def plain(value):
    """A config value as plain data (jsonargparse Namespaces as dicts, tuples as lists)."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def differences(saved, given, where: str) -> list[tuple[str, object, object]]:
    """(where.key, saved value, given value) for each setting of `saved` that `given` sets otherwise."""
    if isinstance(saved, dict) and isinstance(given, dict):
        if saved.get("class_path", given.get("class_path")) != given.get("class_path"):
            return [(f"{where}.class_path", saved["class_path"], given.get("class_path"))]
        found = []
        for key, value in saved.items():
            if key in given and not key.startswith("_"):
                found += differences(value, given[key], f"{where}.{key}")
        return found
    return [] if plain(saved) == plain(given) else [(where, plain(saved), plain(given))]


def changed_settings(config, path: str | Path) -> tuple[list, list]:
    """How the command's `config` differs from the run of the checkpoint at `path`: (the model
    or data classes that differ, the model and data settings that differ), as differences()."""
    classes, settings = [], []
    data = plain(config.get("data"))
    data_class_path = data.get("class_path") if isinstance(data, dict) else None
    for part, saved in saved_settings(path).items():
        given = plain(config.get(part)) or {}
        if not saved or not isinstance(given, dict):
            continue  # a checkpoint saved without settings, or a model given as an object: nothing to compare
        if saved.get("_class_path", given.get("class_path")) != given.get("class_path"):
            classes.append((f"{part}.class_path", saved["_class_path"], given.get("class_path")))
        else:
            ignored = may_change(data_class_path) if part == "data" else linked(data_class_path)
            args = {key: value for key, value in (given.get("init_args") or {}).items() if key not in ignored}
            settings += differences(saved, args, f"{part}.init_args")
    return classes, settings


def without_init_args(key: str) -> str:
    """model.init_args.optimizer.init_args.lr -> model.optimizer.lr (the two spell the same key)."""
    return ".".join(part for part in key.split(".") if part != "init_args")


def given_keys(args: list[str]) -> set[str]:
    """The model and data keys a command line sets itself (--model.optimizer.lr 0.1, --optimizer
    adam once expanded, --data.init_args.batch_size=32), without init_args. Config files do not
    count: a resume takes the run's own settings from its checkpoint instead of theirs."""
    flags = (arg[2:].split("=")[0] for arg in args if arg.startswith(("--model", "--data")))
    return {without_init_args(flag) for flag in flags}


def is_given(key: str, given: set[str]) -> bool:
    """Whether the command line sets `key`, or, for a class (an optimizer's class_path), sets any
    argument of it: --optimizer.lr 0.5 is meant for the config's optimizer, not another the run had."""
    key = without_init_args(key)
    if key.endswith(".class_path"):
        key = key.removesuffix(".class_path")
        return any(key == flag or key.startswith(flag + ".") or flag.startswith(key + ".") for flag in given)
    return any(key == flag or key.startswith(flag + ".") for flag in given)


def listed(changes: list) -> str:
    """The first three differences, as 'key: saved -> given; ...'."""
    text = "; ".join(f"{key}: {saved} -> {given}" for key, saved, given in changes[:3])
    return text + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")


def conflicts(config, path: str | Path, args: list[str] | None) -> list:
    """What stops a command from using the checkpoint at `path`: other model or data classes
    always; with `args` (a resume: fit), also the settings the command line gives otherwise."""
    classes, settings = changed_settings(config, path)
    if args is None:
        return classes
    return classes + [change for change in settings if is_given(change[0], given_keys(args))]


def check_same_run(config, path: str, args: list[str] | None) -> None:
    """Stop, saying what differs, when the command asks for another run than the checkpoint's.

    args: the command line of a resume (fit), whose options must agree with the run; None for
    validate, test and predict, where the checkpoint's settings rightly win over the config's.
    """
    if path in LIGHTNING_NAMES or not (changes := conflicts(config, path, args)):
        return
    if args is None:
        raise ConfigError(f"checkpoint {path} is of another model or data than this config ({listed(changes)}): "
                          "give the config the run was trained with, runs/<experiment>/<name>/config.yaml")
    raise ConfigError(
        f"--ckpt_path {path}: this command changes the run it would resume ({listed(changes)}). A resume "
        "continues a run as it was trained: it may change trainer settings (e.g. trainer.max_epochs), logging "
        "and callbacks only. To train with other settings, start a new run (leave out --ckpt_path)."
    )


def take_data_settings(parser, config, subcommand: str, path: str):
    """The whole config with the data settings the resumed run was trained with (LightningCLI does
    the same for the model), except where its files are and how evaluation is batched."""
    data = config[subcommand].get("data")
    if not hasattr(data, "init_args"):
        return config
    allowed = may_change(data.class_path)
    saved = {key: value for key, value in saved_settings(path)["data"].items()
             if not key.startswith("_") and key not in allowed}
    if not saved:
        return config
    return parser.parse_object({subcommand: {"data": {"class_path": data.class_path, "init_args": saved}}}, config)


def resume_latest_run(config, args: list[str]) -> None:
    """Point ckpt_path at the newest last.ckpt of this experiment whose run agrees with the
    command line's options (--optimizer adam: the latest Adam run), and log into its run folder."""
    logger = config.trainer.logger
    if not (hasattr(logger, "init_args") and hasattr(logger.init_args, "save_dir")):
        return  # a custom logger: leave "last" to Lightning
    experiment = Path(logger.init_args.save_dir) / (logger.init_args.name or "")
    checkpoints = sorted(experiment.glob("*/checkpoints/last.ckpt"), key=lambda path: path.stat().st_mtime)
    if not checkpoints:
        raise ConfigError(
            f"--ckpt_path last: no run of this experiment has a checkpoints/last.ckpt under {experiment}/. "
            "Train it first, or give the path of a .ckpt file."
        )
    for checkpoint in reversed(checkpoints):
        check_checkpoint(str(checkpoint))
        if not conflicts(config, checkpoint, args):
            break
    else:  # no run agrees: say what differs from the newest
        check_same_run(config, str(checkpoints[-1]), args)
    config.ckpt_path = str(checkpoint)
    logger.init_args.version = checkpoint.parent.parent.name  # keep logging into that run
    print(f"Resuming from {config.ckpt_path}")
    if config.trainer.max_steps not in (None, -1):
        print("Note: with trainer.max_steps set, Lightning 2.6 resumes an end-of-epoch checkpoint one epoch "
              "short. Limit runs by trainer.max_epochs to resume exactly.")
