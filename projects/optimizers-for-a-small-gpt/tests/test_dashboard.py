"""The live view of a sweep: optuna-dashboard on the study's storage, opened in a real headless
browser (Debian's chromium; the template's CI installs it), shows the study and its trials."""

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DASHBOARD = Path(sys.executable).parent / "optuna-dashboard"
# Flags for a headless browser on a machine without a network (and as root, in CI).
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.skipif(BROWSER is None, reason="needs a headless browser: apt-get install chromium")
@pytest.mark.skipif(not DASHBOARD.exists(), reason="needs optuna-dashboard in this environment")
@pytest.mark.slow
def test_dashboard_shows_the_trials_of_a_study(tmp_path):
    journal = tmp_path / "study.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="vision_optimizers", storage=storage, direction="maximize")
    lr = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    for value, rate in [(0.912, 0.01), (0.957, 0.1), (0.333, 1.0)]:  # what a sweep's trials leave behind
        study.add_trial(optuna.trial.create_trial(params={"optimizer.lr": rate}, distributions={"optimizer.lr": lr},
                                                  value=value))

    port = free_port()
    server = subprocess.Popen([str(DASHBOARD), str(journal), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/api/studies")
        page = subprocess.run(
            [BROWSER, *HEADLESS, f"--user-data-dir={tmp_path / 'browser'}", "--virtual-time-budget=15000",
             "--dump-dom", f"http://127.0.0.1:{port}/dashboard/studies/{study._study_id}/trials"],
            capture_output=True, text=True, timeout=120,
        ).stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = " ".join(re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", page, flags=re.S).split())
    assert "vision_optimizers" in text
    assert all(f"Trial {number}" in text for number in range(3)), text[:2000]
    assert "0.912" in text and "optimizer.lr" in text  # the first trial's value and parameter, shown in full
