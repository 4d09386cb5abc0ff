"""python -m logistic_regression_to_the_exact_optimum.benchmark: see main.py."""

from .main import main

raise SystemExit(main())
