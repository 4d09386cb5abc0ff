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


# The tests that take minutes, longest first: pytest -n hands tests out in collection order, so
# these start at once on separate workers instead of last on one (about 2 minutes of .ci/run).
LONGEST = [
    "test_template.py::test_the_all_project_passes_its_slow_tests",
    "test_template.py::test_each_family_bakes_a_project_that_passes_its_own_tests[all]",
    "test_template.py::test_readme_commands_generate_train_and_report_where_the_logs_are",
    "test_projects.py::test_example_results_still_hold",
    "test_template.py::test_each_family_bakes_a_project_that_passes_its_own_tests",
]


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = f"{item.path.name}::{item.name}"
        return next((i for i, long in enumerate(LONGEST) if name == long or name.startswith(long + "[")), len(LONGEST))

    items.sort(key=rank)  # stable: the rest keep their order
