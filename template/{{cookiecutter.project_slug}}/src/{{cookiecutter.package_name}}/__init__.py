"""{{ cookiecutter.project_name }}: a course project built on PyTorch Lightning.

Start with `uv run python train.py fit`, then read src/{{ cookiecutter.package_name }}/problems/.
"""
