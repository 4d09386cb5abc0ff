"""python -m optimizers_for_a_small_gpt.benchmark: see main.py."""

from .main import main

raise SystemExit(main())
