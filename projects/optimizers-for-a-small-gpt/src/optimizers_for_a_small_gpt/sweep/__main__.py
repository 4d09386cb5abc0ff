"""A worker process, as `sweep.py --workers N` starts it (python -m <package>.sweep --worker-of ...)."""

import sys

from . import main

sys.exit(main())
