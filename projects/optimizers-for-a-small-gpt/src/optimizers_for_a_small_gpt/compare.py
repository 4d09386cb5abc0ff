"""The compare command: a sweep's optimizers side by side (sensitivity, best runs, a results table).

    uv run python -m optimizers_for_a_small_gpt.compare --sweep configs/sweeps/<name>.yaml
    uv run python -m optimizers_for_a_small_gpt.compare runs/<folder> --metric val/acc --mode max
    uv run python -m optimizers_for_a_small_gpt.compare --help   # every option

The work is done in report/compare.py (its docstring explains every option and every number).
"""

from .report.compare import main

if __name__ == "__main__":
    main()
