"""The figures command: report figures and results tables from the runs under runs/.

    uv run python -m {{ cookiecutter.package_name }}.figures                # every run, into figures/
    uv run python -m {{ cookiecutter.package_name }}.figures vision_digits  # one experiment's runs
    uv run python -m {{ cookiecutter.package_name }}.figures --help         # every option

The work is done in report/figures.py (its docstring explains every option); the runs are read
by report/runs.py, which also gives them to your own code as one pandas table.
"""

from .report.figures import main

if __name__ == "__main__":
    main()
