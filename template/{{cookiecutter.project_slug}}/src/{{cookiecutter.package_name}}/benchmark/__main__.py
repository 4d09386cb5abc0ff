"""python -m {{ cookiecutter.package_name }}.benchmark: see main.py."""

from .main import main

raise SystemExit(main())
