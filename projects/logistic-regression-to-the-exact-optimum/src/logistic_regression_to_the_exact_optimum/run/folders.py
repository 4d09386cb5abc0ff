"""Where a run writes: its folder runs/<experiment>/<name>/, claimed so that no two runs share one.

    uv run python train.py fit --optimizer adam        # -> runs/vision_digits/adam/ (adam_2/ if taken)
    uv run python train.py fit                         # -> runs/vision_digits/version_N/ (the next free N)

A new run claims its folder by creating it: creating a folder either succeeds or finds it
there, in one step of the file system, so two runs started at the same moment (two terminals,
a sweep's workers) never get the same folder; the second one moves on to the next free name.
A run that ends before writing anything (an error in its settings, `--trainer.max_epochs 0`)
gives its empty folder back (release_unused, at the end of cli.main).
"""

import itertools
import os
import re
from pathlib import Path

from ..config_errors import ConfigError
from .families import declared, family_of

CLAIMED: list[Path] = []  # the run folders (and experiment folders) this process created, as absolute paths


def first_process() -> bool:
    """Whether this is the first process of a run (the others of a DDP or SLURM run take its folder)."""
    return all(os.environ.get(variable, "0") == "0" for variable in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def claim(experiment: Path, names) -> str:
    """Create the first folder of `names` (an iterable of folder names) that does not exist under
    `experiment`, and return its name."""
    if not experiment.is_dir():
        experiment.mkdir(parents=True, exist_ok=True)
        CLAIMED.append(experiment.resolve())  # given back too if it stays empty
    for name in names:
        try:
            (experiment / name).mkdir()
        except FileExistsError:
            continue
        CLAIMED.append((experiment / name).resolve())
        return name
    raise AssertionError("unreachable: names is endless")


def next_version(experiment: Path) -> int:
    """One more than the largest N of the version_N folders under `experiment` (0 if none)."""
    matches = [re.fullmatch(r"version_(\d+)", path.name) for path in experiment.glob("version_*")]
    return max((int(match.group(1)) for match in matches if match), default=-1) + 1


def name_the_run(config, name: str | None) -> None:
    """Claim runs/<experiment>/<name>/ for a new run, or name_2, name_3, ... if it is taken (no
    name: version_N, the next free N), and point the trainer's logger at it (its `version`).

    config.name keeps the name; the saved config.yaml leaves the logger's version out (see
    claimed_here), so a run repeated from it claims a folder of its own.
    """
    logger = config.trainer.logger
    if not (hasattr(logger, "init_args") and "save_dir" in logger.init_args and "version" in logger.init_args):
        config.name = None  # no logger, or one that does not place runs in folders of their own
        return
    if logger.init_args.get("version") is not None:
        config.name = None  # a version set in the config or on the command line wins
        return
    config.name = name or None
    # A DDP run starts its other processes later with the same command (and LOCAL_RANK set):
    # they take the first process's folder (Lightning also hands them its log and checkpoint folders).
    if not first_process():
        logger.init_args.version = os.environ.get("COURSE_RUN_NAME") or name
        return
    experiment = Path(logger.init_args.save_dir) / (logger.init_args.name or "")
    names = (itertools.chain([name], (f"{name}_{number}" for number in itertools.count(2))) if name
             else (f"version_{number}" for number in itertools.count(next_version(experiment))))
    folder = claim(experiment, names)
    if name and folder != name:
        config.name = folder
    logger.init_args.version = os.environ["COURSE_RUN_NAME"] = folder


def claimed_here(log_dir: str | Path) -> bool:
    """Whether this process claimed the run folder `log_dir` (a new run, not a resumed one)."""
    return Path(log_dir).resolve() in CLAIMED


def release_unused() -> None:
    """Remove the folders this process claimed and left empty (a run that ended before writing),
    the newest first, so that an experiment folder made for the run goes too."""
    while CLAIMED:
        try:
            CLAIMED.pop().rmdir()  # only an empty folder is removed
        except OSError:
            pass


def log_into_named_run(config) -> None:
    """test, validate and predict with a run's config.yaml, and a resume, log into that run's
    folder, runs/<experiment>/<config.name>/, unless the config sets the logger's version."""
    logger = config.trainer.logger
    if config.get("name") and hasattr(logger, "init_args") and "version" in logger.init_args:
        if logger.init_args.version is None:
            logger.init_args.version = config.name


def name_after_data_file(config) -> None:
    """Log a run that reads a data file of the student's (a CSV, a text) under
    runs/<family>_<file name>/, so that runs of different files never share a folder, and
    --ckpt_path last finds the run of the same file. Named datasets keep the config's name.
    Which setting names the file, the family's data declares (its `data_file`, see families.py)."""
    data, logger = config.get("data"), config.trainer.logger
    if not (hasattr(data, "init_args") and hasattr(logger, "init_args") and hasattr(logger.init_args, "save_dir")):
        return
    data_file = declared(data.class_path, "data_file", None)
    file = data_file(data.init_args.as_dict()) if data_file else None
    if not file or not (Path(str(file)).suffix or "://" in str(file)):
        return  # a named dataset or corpus (breast_cancer, python_docs, ...), not a file
    logger.init_args.name = f"{family_of(data.class_path)}_{Path(str(file).split('?')[0]).stem}"


def check_writable(logger) -> None:
    """Stop before training when the runs folder cannot be written (read-only, or a file in the way)."""
    if not (hasattr(logger, "init_args") and hasattr(logger.init_args, "save_dir")):
        return
    folder = Path(logger.init_args.save_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if not writable:
        raise ConfigError(f"cannot write runs into {folder}/: run from a folder you can write to, or choose "
                          "another one with --trainer.logger.init_args.save_dir PATH")
