"""python -m conditioning_momentum_and_the_noise_floor.benchmark: see main.py."""

from .main import main

raise SystemExit(main())
