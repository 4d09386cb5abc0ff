"""Settings shared by the template's tests."""

import pytest


@pytest.fixture(autouse=True)
def isolated_cookiecutter(tmp_path, monkeypatch):
    """Keep cookiecutter's clones and replay files out of the home folder, and make no uv.lock
    (seconds of resolving each time; test_template.py's lock test asks for one)."""
    config = tmp_path / "cookiecutter-config.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\nreplay_dir: {tmp_path / 'replay'}\n"
                      "default_context:\n  _uv_lock: 'no'\n")
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(config))


# The tests that take minutes, longest first (about 300, 150, 130, 50 and 30-40 s on 2 cores).
LONGEST = [
    "test_template.py::test_the_oldest_versions_the_project_allows_pass_its_fast_tier",
    "test_template.py::test_the_all_project_passes_its_slow_tests",
    "test_template.py::test_each_family_bakes_a_project_that_passes_its_own_tests[all]",
    "test_projects.py::test_example_results_still_hold",
    "test_template.py::test_each_family_bakes_a_project_that_passes_its_own_tests",
    "test_template.py::test_readme_commands_generate_train_and_report_where_the_logs_are",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: bakes and runs what takes minutes: slow tiers, notebooks, a fresh "
                                       "install (leave out: -m 'not slow')")
    # pytest -n (xdist) gives a worker that finishes a test up to half of those left, in collection
    # order, and it waits behind the long ones: with one at a time, the next test goes to the
    # first worker free, and the long tests spread over the workers (.ci/run: 1.5 minutes less).
    if getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = f"{item.path.name}::{item.name}"
        return next((i for i, long in enumerate(LONGEST) if name == long or name.startswith(long + "[")), len(LONGEST))

    items.sort(key=rank)  # stable: the rest keep their order
    # Each worker starts with the next two tests: the first worker gets the longest and the third,
    # the second the second and the fourth, so the two longest do not run one after the other.
    if len(items) > 2:
        items[1], items[2] = items[2], items[1]
