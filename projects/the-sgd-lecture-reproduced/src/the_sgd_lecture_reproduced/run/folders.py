"""Where a run writes: its folder runs/<experiment>/<name>/, claimed so that no two runs share one.

    uv run python train.py fit --optimizer adam        # -> runs/vision_digits/adam/ (adam_2/ if taken)
    uv run python train.py fit                         # -> runs/vision_digits/version_N/ (the next free N)

A new run claims its folder by creating it: creating a folder either succeeds or finds it
there, in one step of the file system, so two runs started at the same moment (two terminals,
a sweep's workers) never get the same folder; the second one moves on to the next free name.
A run that ends before writing anything (an error in its settings, a fast_dev_run) gives its
empty folder back (release_unused, at the end of cli.main).

On a SLURM cluster, Lightning answers the time-limit warning (`#SBATCH --signal=SIGUSR1@90`) by
saving hpc_ckpt_N.ckpt and requeueing the job. The run's folder is then also its default_root_dir,
so that checkpoint lands in it, and the folder is marked with the job's id (slurm-job-<id>): the
requeued job finds its run again and Lightning continues it from that checkpoint, in one folder.
"""

import itertools
import os
import re
from pathlib import Path

from ..config_errors import ConfigError
from .families import declared, family_of

CLAIMED: list[Path] = []  # the run folders (and experiment folders) this process created, as absolute paths
CONTINUED: list[Path] = []  # run folders a requeued SLURM job continues
JOB_MARK = "slurm-job-"  # the file that marks a run folder with the SLURM job that trains in it


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


def slurm_job() -> str | None:
    """This SLURM job's id (<job>_<task> in a job array); None outside SLURM."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    return os.environ.get("SLURM_JOB_ID")


def requeued_run(experiment: Path) -> Path | None:
    """The run folder this SLURM job trained in before SLURM requeued it; None if it was not requeued."""
    job = slurm_job()
    if not job or os.environ.get("SLURM_RESTART_COUNT", "0") == "0":
        return None
    marked = sorted(experiment.glob(f"*/{JOB_MARK}{job}"))
    return marked[-1].parent if marked else None


def keep_newest_hpc_checkpoint(folder: Path) -> None:
    """Delete all but the newest of Lightning's requeue checkpoints (hpc_ckpt_N.ckpt, each a whole
    checkpoint) in a run folder: Lightning resumes from the newest, the others are never read."""
    numbered = sorted((int(match.group(1)), path) for path in folder.glob("hpc_ckpt_*.ckpt")
                      if (match := re.fullmatch(r"hpc_ckpt_(\d+)\.ckpt", path.name)))
    for _, path in numbered[:-1]:
        path.unlink(missing_ok=True)


def mark_slurm_job(log_dir: str | Path) -> None:
    """Mark the run folder with this SLURM job's id, once training has started (see requeued_run)."""
    if (job := slurm_job()) is not None:
        (Path(log_dir) / f"{JOB_MARK}{job}").touch()


def name_the_run(config, name: str | None) -> None:
    """Claim runs/<experiment>/<name>/ for a new run, or name_2, name_3, ... if it is taken (no
    name: version_N, the next free N), and point the trainer's logger at it (its `version`).

    config.name keeps the name; the saved config.yaml leaves the logger's version out (see
    placed_here), so a run repeated from it claims a folder of its own. A requeued SLURM job
    continues the folder it trained in (requeued_run).
    """
    logger = config.trainer.logger
    if not (hasattr(logger, "init_args") and "save_dir" in logger.init_args and "version" in logger.init_args):
        config.name = None  # no logger, or one that does not place runs in folders of their own
        return
    if logger.init_args.get("version") is not None:
        config.name = None  # a version set in the config or on the command line wins
        return
    config.name = name or None
    experiment = Path(logger.init_args.save_dir) / (logger.init_args.name or "")
    if (earlier := requeued_run(experiment)) is not None:  # every process of the job finds the same folder
        logger.init_args.version, config.trainer.default_root_dir = earlier.name, str(earlier)
        config.name = earlier.name if name else None
        CONTINUED.append(earlier.resolve())
        if first_process():
            print(f"SLURM requeued this job: it continues its run in {earlier}")
            keep_newest_hpc_checkpoint(earlier)
        return
    # A DDP run starts its other processes later with the same command (and LOCAL_RANK set):
    # they take the first process's folder (Lightning also hands them its log and checkpoint folders).
    if not first_process():
        logger.init_args.version = os.environ.get("COURSE_RUN_NAME") or name
        return
    names = (itertools.chain([name], (f"{name}_{number}" for number in itertools.count(2))) if name
             else (f"version_{number}" for number in itertools.count(next_version(experiment))))
    folder = claim(experiment, names)
    if name and folder != name:
        config.name = folder
    logger.init_args.version = os.environ["COURSE_RUN_NAME"] = folder
    if slurm_job() is not None:  # Lightning's checkpoint for a requeue goes into the run folder
        config.trainer.default_root_dir = str(experiment / folder)


def placed_here(log_dir: str | Path) -> bool:
    """Whether name_the_run chose the run folder `log_dir`: claimed it for a new run, or found it
    for a requeued SLURM job (not a resume the command line asked for)."""
    return Path(log_dir).resolve() in CLAIMED + CONTINUED


def release_unused() -> None:
    """Remove the folders this process claimed and left empty (a run that ended before writing),
    the newest first, so that an experiment folder made for the run goes too."""
    CONTINUED.clear()
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
