"""Settings shared by the template's tests."""

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: bakes and runs what takes minutes: slow tiers, notebooks, a fresh "
                                       "install (leave out: -m 'not slow')")


@pytest.fixture(autouse=True)
def isolated_cookiecutter(tmp_path, monkeypatch):
    """Keep cookiecutter's clones and replay files out of the home folder."""
    config = tmp_path / "cookiecutter-config.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\nreplay_dir: {tmp_path / 'replay'}\n")
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(config))
