"""Sweeps (sweep.py): every point runs with every seed, a killed sweep resumes without repeating a
trial, workers share a study, a diverging point is a result, and the sweep files load.

    pytest tests/test_sweep.py

The sweeps here are tiny grids over the learning rate of the default experiment, a second or two
a run. Some tests start sweep.py as new processes, as a student does (each pays the imports,
about 10 s); one starts a PostgreSQL server in a temporary folder, and is skipped, saying why,
where PostgreSQL's server programs or its Python driver are missing. The slowest are marked
slow: `pytest -m "not slow"` leaves them out.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import CONFIGS, DEFAULT, ROOT, run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from optimizers_for_a_small_gpt.run.summary import RunSummary
from optimizers_for_a_small_gpt.sweep import main, studies, workers
from optimizers_for_a_small_gpt.sweep.studies import open_storage
from optimizers_for_a_small_gpt.sweep.sweep_file import load_sweep, qmc_points

SWEEPS = sorted((CONFIGS / "sweeps").glob("*.yaml"))
EXPERIMENT = yaml.safe_load(DEFAULT.read_text())
METRIC, MODE = EXPERIMENT["checkpoint"]["monitor"], EXPERIMENT["checkpoint"]["mode"]
LR = EXPERIMENT["model"]["init_args"]["optimizer"]["init_args"]["lr"]  # the default experiment's
# A few batches a run: results that repeat exactly, in about a second.
SHORT = {"trainer.max_epochs": 2, "trainer.limit_train_batches": 3, "trainer.limit_val_batches": 1}


def timed(seconds: int) -> dict:
    """A budget of `seconds` of training a run, whatever the family: runs long enough to be cut off."""
    return {"trainer.max_epochs": 100000, "trainer.max_time": f"00:00:00:{seconds:02d}", "trainer.limit_val_batches": 1}


def write_sweep(folder: Path, name: str, lrs: list, seeds=(0,), budget=None, **more) -> Path:
    """A sweep file over the default experiment's learning rate."""
    spec = {"experiment": str(DEFAULT), "budget": budget or SHORT, "seeds": list(seeds), "metric": METRIC,
            "mode": MODE, "method": "grid", "space": {"optimizer.lr": lrs}, **more}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def trials(folder: Path, name: str, storage: str | None = None) -> list:
    storage = open_storage(storage or str(folder / "runs" / name / "study.journal"))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def complete(trials_: list) -> list:
    return [trial for trial in trials_ if trial.state == optuna.trial.TrialState.COMPLETE]


def run_folders(folder: Path, name: str) -> list[str]:
    return sorted(path.name for path in (folder / "runs" / name).iterdir() if path.is_dir())


def sweep_process(*args: str, cwd: Path, **popen) -> subprocess.Popen:
    """`python sweep.py ...` as a new process, importing this checkout's package."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), *args, "--no-compare"], cwd=cwd, env=env, **popen)


class NoWaiting:
    """sweep.py's clock, but waiting fails: a sweep that no other process shares never waits."""

    monotonic, perf_counter = staticmethod(time.monotonic), staticmethod(time.perf_counter)

    @staticmethod
    def sleep(seconds):
        raise AssertionError("the sweep waits for a trial that no process runs")


def scalars(run_dir: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [event.value for event in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def test_a_grid_runs_every_point_with_every_seed_and_its_best_run_repeats(in_tmp, capsys):
    path = write_sweep(in_tmp, "tiny", [LR / 2, LR], seeds=(0, 1))
    assert main(["--config", str(path), "--no-compare"]) == 0
    names = [f"lr{LR / 2}", f"lr{LR}"]
    assert run_folders(in_tmp, "tiny") == sorted(f"{name}_s{seed}" for name in names for seed in (0, 1))
    for folder in (in_tmp / "runs" / "tiny").iterdir():
        if folder.is_dir():  # an ordinary run folder
            assert (folder / "config.yaml").is_file() and list(folder.glob("checkpoints/*.ckpt"))
            assert list(folder.glob("events.out.tfevents.*"))
    done = complete(trials(in_tmp, "tiny"))
    assert sorted(trial.user_attrs["point"] for trial in done) == sorted(names)
    for trial in done:  # the trial's value: the mean over its seeds
        assert trial.value == pytest.approx((trial.user_attrs["run s0"]["value"] + trial.user_attrs["run s1"]["value"]) / 2)
    best = (max if MODE == "max" else min)(done, key=lambda trial: trial.value)
    assert f"best {best.value:.4g} {best.user_attrs['point']}" in capsys.readouterr().out
    record = best.user_attrs["run s1"]
    again = run("fit", "--config", str(Path(record["folder"]) / "config.yaml"))
    summary = next(callback for callback in again.trainer.callbacks if isinstance(callback, RunSummary))
    assert summary.final[METRIC] == pytest.approx(record["value"], rel=1e-5, abs=1e-7)
    assert main(["--config", str(path), "--no-compare"]) == 0  # all done: runs nothing more
    assert len(trials(in_tmp, "tiny")) == 2
    assert "nothing left to run" in capsys.readouterr().out


def test_a_diverging_point_is_a_result_and_the_sweep_goes_on(in_tmp, capsys):
    path = write_sweep(in_tmp, "wild", [1.0e6, LR])
    assert main(["--config", str(path), "--no-compare"]) == 0
    wild, tame = sorted(complete(trials(in_tmp, "wild")), key=lambda trial: trial.number)
    assert wild.user_attrs["diverged"] and wild.value == (-float("inf") if MODE == "max" else float("inf"))
    assert "diverged" not in tame.user_attrs and abs(tame.value) < float("inf")  # the next point still ran
    assert scalars(Path(wild.user_attrs["run s0"]["folder"]), "diverged") == [1.0]
    assert re.search(r"lr1000000\.0 +DIVERGED", capsys.readouterr().out)


def test_qmc_points_are_spread_over_the_space_and_fixed_by_their_seed():
    space = {"optimizer": ["adam"], "optimizer.lr": {"low": 1.0e-3, "high": 1.0, "log": True},
             "optimizer.weight_decay": [0.0, 0.1]}
    points = qmc_points(space, 8, seed=0)
    assert points == qmc_points(space, 8, seed=0) and points != qmc_points(space, 8, seed=1)
    assert all(params["optimizer"] == "adam" and list(params) == list(space) for params, _ in points)
    lrs = sorted(params["optimizer.lr"] for params, _ in points)
    assert 1.0e-3 <= lrs[0] and lrs[-1] <= 1.0 and len(set(lrs)) == 8
    assert all(lr == float(f"{lr:.3g}") for lr in lrs)  # as suggest_range rounds them
    # Evenly spread on the log scale: each decade holds 2 or 3 of the 8 (random points may leave one empty).
    assert [sum(low <= lr < low * 10 for lr in lrs) for low in (1.0e-3, 1.0e-2, 1.0e-1)] in (
        [3, 3, 2], [3, 2, 3], [2, 3, 3])
    assert 3 <= sum(params["optimizer.weight_decay"] == 0.1 for params, _ in points) <= 5


def test_a_qmc_sweep_runs_its_points_once(in_tmp, capsys):
    path = write_sweep(in_tmp, "spread", [LR], method="qmc", trials=2, sampler_seed=3,
                       space={"optimizer.lr": {"low": LR / 4, "high": LR, "log": True}})
    assert main(["--config", str(path), "--no-compare"]) == 0
    assert "quasi-random search (scrambled Halton, seed 3) over 2 points" in capsys.readouterr().out
    expected = sorted(f"lr{params['optimizer.lr']}" for params, _ in qmc_points(load_sweep(path).space, 2, 3))
    assert sorted(trial.user_attrs["point"] for trial in complete(trials(in_tmp, "spread"))) == expected
    assert main(["--config", str(path), "--no-compare"]) == 0
    assert len(trials(in_tmp, "spread")) == 2 and "nothing left to run" in capsys.readouterr().out


@pytest.mark.skipif(os.name == "nt", reason="stops the sweep with POSIX signals (SIGKILL, SIGINT to its process group)")
@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGKILL", "SIGINT"], ids=["kill", "ctrl-c"])
def test_a_stopped_sweep_finishes_without_repeating_a_run(stop, in_tmp, monkeypatch):
    stop = getattr(signal, stop)
    lrs = [LR / 3, LR / 2, LR]
    path = write_sweep(in_tmp, "cut", lrs, seeds=(0, 1), budget=timed(1))
    process = sweep_process("--config", str(path), cwd=in_tmp, start_new_session=True, stdout=subprocess.DEVNULL)
    journal = in_tmp / "runs" / "cut" / "study.journal"
    deadline = time.monotonic() + 180
    while not cut_off(journal):  # a trial done, and the next one's second seed under way
        assert process.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be stopped"
        time.sleep(0.2)
    time.sleep(0.3)
    os.killpg(process.pid, stop)  # the whole group, as Ctrl-C in a terminal does
    assert process.wait(timeout=120) == (130 if stop == signal.SIGINT else -signal.SIGKILL)  # 130: stopped by Ctrl-C
    before = trials(journal.parent, "cut", str(journal))
    stopped = next(trial for trial in before if trial not in complete(before))
    # Ctrl-C marks the cut-off trial failed; a kill leaves it running, for the next sweep to find.
    assert stopped.state == (optuna.trial.TrialState.FAIL if stop == signal.SIGINT else optuna.trial.TrialState.RUNNING)
    finished = {record["folder"] for trial in complete(before) for record in runs_of(trial)}
    finished.add(stopped.user_attrs["run s0"]["folder"])  # its first seed had finished: it is kept
    events = {folder: sorted(Path(folder).glob("events.*")) for folder in finished}

    for module in (studies, workers):
        monkeypatch.setattr(module, "time", NoWaiting)  # the dead process's trial is seen to be dead
    assert main(["--config", str(path), "--no-compare"]) == 0
    after = complete(trials(in_tmp, "cut"))
    assert sorted(trial.params["optimizer.lr"] for trial in after) == lrs  # each point once: the grid
    assert finished <= {record["folder"] for trial in after for record in runs_of(trial)}
    assert all(sorted(Path(folder).glob("events.*")) == files for folder, files in events.items())  # not run again
    assert run_folders(in_tmp, "cut") == sorted(f"lr{lr}_s{seed}" for lr in lrs for seed in (0, 1))  # nothing twice


def runs_of(trial) -> list[dict]:
    return [trial.user_attrs[f"run s{seed}"] for seed in (0, 1) if f"run s{seed}" in trial.user_attrs]


def cut_off(journal: Path) -> bool:
    if not journal.is_file():
        return False
    try:
        study = trials(journal.parent, "cut", str(journal))
    except KeyError:  # the journal file is there, the study's first record not yet
        return False
    running = [trial for trial in study if trial.state == optuna.trial.TrialState.RUNNING]
    cut = [trial.user_attrs["run s1"]["folder"] for trial in running if "run s1" in trial.user_attrs]
    return len(complete(study)) >= 1 and any(Path(folder).is_dir() for folder in cut)  # the run has begun writing


def check_split(folder: Path, name: str, lrs: list, storage: str | None = None) -> None:
    """Every point ran exactly once, and both workers ran some of them."""
    done = complete(trials(folder, name, storage))
    assert sorted(trial.params["optimizer.lr"] for trial in done) == sorted(lrs)
    assert run_folders(folder, name) == sorted(f"lr{lr}_s0" for lr in lrs)  # no point run twice
    assert len({trial.user_attrs["worker"]["pid"] for trial in done}) == 2


@pytest.mark.slow
def test_two_workers_split_a_grid(in_tmp):
    lrs = [LR / factor for factor in (1, 2, 3, 4)]
    path = write_sweep(in_tmp, "pair", lrs, budget=timed(2), prune=True)
    assert main(["--config", str(path), "--workers", "2", "--no-compare"]) == 0
    check_split(in_tmp, "pair", lrs)
    # With prune: true the workers' runs report to Optuna's pruner (none is pruned: 4 trials are too few).
    assert all(trial.intermediate_values for trial in complete(trials(in_tmp, "pair")))


@pytest.fixture
def postgres():
    """A PostgreSQL server of its own in a temporary folder, on a free port of 127.0.0.1."""
    missing = [program for program in ("initdb", "pg_ctl", "postgres") if not shutil.which(program)]
    if missing:
        pytest.skip(f"PostgreSQL's server programs are not on PATH ({', '.join(missing)}): "
                    "install postgresql to test sweeps that share a database")
    pytest.importorskip("psycopg2", reason="no psycopg2 (pip install psycopg2-binary): cannot reach PostgreSQL")
    folder = Path(tempfile.mkdtemp(prefix="sweep-postgres-"))
    as_user = []
    if os.name != "nt" and os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and there is no postgres user to run PostgreSQL's server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    subprocess.run([*as_user, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-N"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, "pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, "pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_sweeps_share_one_postgresql_study(in_tmp, postgres):
    lrs = [LR / factor for factor in (1, 2, 3, 4)]
    path = write_sweep(in_tmp, "shared", lrs, budget=timed(2))
    processes = [sweep_process("--config", str(path), "--storage", postgres, cwd=in_tmp, stdout=subprocess.DEVNULL)
                 for _ in range(2)]
    assert [process.wait(timeout=300) for process in processes] == [0, 0]
    check_split(in_tmp, "shared", lrs, postgres)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda path: path.stem)
def test_sweep_files_load_and_explain_every_value(path):
    sweep = load_sweep(path)  # checks every key; the experiment must exist in this project
    assert sweep.search().total > 0
    bare = [line for line in path.read_text().splitlines() if re.match(r"^\s*[\w./-]+:\s*[^\s#]", line) and "#" not in line]
    assert bare == [], (f"{path.name}: every line that sets a value ends with a comment saying what it sets, e.g. "
                        "`seeds: [0, 1, 2]  # each setting runs once with each seed` (docs/comparing.md, the rules "
                        "of a sweep file); these lines have none:\n" + "\n".join(bare))
    if not path.stem.endswith("_full"):
        assert path.with_name(f"{path.stem}_full.yaml").is_file(), (
            f"{path.name} has no twin {path.stem}_full.yaml: every sweep file comes with a _full one, the same question "
            f"at full size for a GPU (a larger budget, more seeds): copy it to configs/sweeps/{path.stem}_full.yaml and "
            "scale it up (docs/comparing.md, the rules of a sweep file)")


def test_a_worker_that_stopped_is_named_with_how_it_ended():
    assert workers.how_it_ended(-signal.SIGKILL).startswith("was killed by SIGKILL, which leaves no message")
    assert workers.how_it_ended(1) == "ended with exit status 1: its error is printed above"


def test_a_yaml_mistake_in_a_sweep_file_names_its_line(in_tmp, capsys):
    from optimizers_for_a_small_gpt.report import compare

    (in_tmp / "bad.yaml").write_text("experiment: configs/x.yaml\nspace:\n  lr: [0.1, 0.2\n")
    assert main(["--config", "bad.yaml", "--no-compare"]) == 2
    assert "error: bad.yaml, line 4, column 1: expected ',' or ']'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"^error: bad\.yaml, line 4, column 1: expected ',' or '\]'"):
        compare.main(["--sweep", "bad.yaml"])
