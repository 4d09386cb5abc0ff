"""python -m the_sgd_lecture_reproduced.benchmark: see main.py."""

from .main import main

raise SystemExit(main())
