"""Settings shared by the template's tests."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: bakes and runs what takes minutes: slow tiers, notebooks, a fresh "
                                       "install (leave out: -m 'not slow')")
