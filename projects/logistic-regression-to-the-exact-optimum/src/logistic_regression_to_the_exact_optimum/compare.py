"""The compare command: a sweep's optimizers side by side (sensitivity, best runs, a results table).

    uv run python -m logistic_regression_to_the_exact_optimum.compare --sweep configs/sweeps/<name>.yaml
    uv run python -m logistic_regression_to_the_exact_optimum.compare runs/<folder> --metric val/acc --mode max
    uv run python -m logistic_regression_to_the_exact_optimum.compare --help   # every option

The work is done in report/compare.py (its docstring explains every option and every number).
"""

from .report.compare import main

if __name__ == "__main__":
    main()
