"""The study, Optuna's record of a sweep's trials: where it is kept (a journal file or a database),
how a new one is planned, and what its trials reached.
"""

import contextlib
import importlib.util
import json
import os
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .sweep_file import DEFINING_KEYS, LATER_DEFINING_KEYS, PLANNING_TIMEOUT, Phase, Sweep, SweepError, params_of, point_key
from .trials import best_trial, is_dead


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A database URL (postgresql://..., sqlite:///...), or the path of a journal file."""
    if "://" in url:
        for attempt in range(5):  # workers that start together race to create Optuna's tables: try again
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    # The heartbeat lets workers see that another one died: its trial fails after grace_period s.
                    return optuna.storages.RDBStorage(database_url(url), heartbeat_interval=60, grace_period=180)
            except ImportError as error:
                raise SweepError(f"--storage {shown(url)} needs its database driver: {error}") from None
            except Exception as error:  # SQLAlchemy's: the server cannot be reached, a wrong password, ...
                if attempt == 4:
                    raise SweepError(f"cannot open the study storage {shown(url)}: {str(error).splitlines()[0]}") from None
                time.sleep(1 + attempt + os.getpid() % 3)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    Path(url).parent.mkdir(parents=True, exist_ok=True)
    lock = JournalFileOpenLock(url) if os.name == "nt" else None  # symbolic links need rights on Windows
    return JournalStorage(JournalFileBackend(url, lock_obj=lock))


def database_url(url: str) -> str:
    """SQLAlchemy 2.1 reads postgresql:// with the psycopg driver; use psycopg2 when only it is installed."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and not importlib.util.find_spec("psycopg") and importlib.util.find_spec("psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    return url


def shown(url: str) -> str:
    """A storage URL without its password, to print."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    user, host = rest.rsplit("@", 1)
    return f"{scheme}://{user.split(':', 1)[0]}:***@{host}" if ":" in user else url


def open_study(sweep: Sweep, phase: Phase, storage, plan: list | None) -> optuna.Study:
    """Create the phase's study and queue its points, or load the study and check that it is this sweep's."""
    definition = {key: sweep.raw.get(key) for key in DEFINING_KEYS} | {
        key: sweep.raw[key] for key in LATER_DEFINING_KEYS if key in sweep.raw}
    definition = json.loads(json.dumps(definition))
    try:
        study = optuna.create_study(study_name=phase.study_name, storage=storage, direction=sweep.direction)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=phase.study_name, storage=storage)
        if study.user_attrs.get("sweep", definition) != definition:
            raise SweepError(f"the study {phase.study_name} was made from another version of {sweep.path}: "
                             f"delete {sweep.runs / sweep.name}/ (and {sweep.name}_final/) to start afresh, "
                             "or give the sweep a new `name:`") from None
        deadline = time.monotonic() + PLANNING_TIMEOUT
        while not study.user_attrs.get("planned") and time.monotonic() < deadline:
            time.sleep(1)  # another process has just made the study and is queueing its points
        return study
    study.set_user_attr("sweep", definition)
    prepare(study, phase, plan)
    study.set_user_attr("planned", True)
    return study


def prepare(study: optuna.Study, phase: Phase, plan: list | None) -> None:
    """Fail the trials whose worker died, and queue every point that still has to run: the
    planned ones (grid, final) or those of trials that were cut off (random, tpe)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_dead(trial.user_attrs.get("worker")):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, ValueError):
                study.tell(trial.number, state=TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # PostgreSQL and SQLite: workers whose heartbeat stopped
    trials = [trial for trial in study.get_trials(deepcopy=False) if "skipped" not in trial.user_attrs]
    taken = {point_key(params_of(trial)) for trial in trials if trial.state != TrialState.FAIL}
    if plan is None:  # random, tpe: the points of failed trials, up to the number of trials
        plan = [(trial.params, trial.user_attrs.get("point")) for trial in trials
                if trial.state == TrialState.FAIL and trial.params]
    for params, name in plan:
        if point_key(params) not in taken and (phase.queued_only or len(taken) < phase.total):
            study.enqueue_trial(params, user_attrs={"point": name})
            taken.add(point_key(params))


def counts(study: optuna.Study) -> dict:
    """How many trials of a study are in each state (skipped ones left out)."""
    trials = [trial for trial in study.get_trials(deepcopy=False) if "skipped" not in trial.user_attrs]
    return {state: sum(trial.state == state for trial in trials) for state in TrialState}


def something_to_start(study: optuna.Study, phase: Phase) -> bool:
    count = counts(study)
    if count[TrialState.WAITING]:
        return True
    started = count[TrialState.COMPLETE] + count[TrialState.PRUNED] + count[TrialState.RUNNING]
    return not phase.queued_only and started < phase.total


def final_plan(sweep: Sweep, study: optuna.Study) -> list[tuple[dict, str]]:
    """The best point of each value of `compare`, to re-run with the final seeds."""
    best = best_per_value(sweep, study)
    return [(trial.params, trial.user_attrs["point"]) for trial in best.values()]


def best_per_value(sweep: Sweep, study: optuna.Study) -> dict:
    """{value of `compare`: its best trial} (one entry, None, when the space has no such key)."""
    groups = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        groups.setdefault(trial.params.get(sweep.compare), []).append(trial)
    best = {value: best_trial(sweep, trials) for value, trials in groups.items()}
    return {value: trial for value, trial in best.items() if trial is not None}


def seed_values(trial: optuna.trial.FrozenTrial) -> list[float]:
    return [record["value"] for key, record in trial.user_attrs.items()
            if key.startswith("run s") and isinstance(record, dict) and record.get("value") is not None]
