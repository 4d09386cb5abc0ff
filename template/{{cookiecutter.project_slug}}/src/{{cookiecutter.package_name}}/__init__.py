{#- The title goes in the docstring with any backslash or double quote escaped, so that a name
    such as `The "Adam" Study` cannot end the string early. -#}
"""{{ cookiecutter.project_name|replace("\\", "\\\\")|replace('"', '\\"') }}

A course project built on PyTorch Lightning. Start with `uv run python train.py fit`, then read
src/{{ cookiecutter.package_name }}/problems/.
"""
