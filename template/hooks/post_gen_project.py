"""Tidy the generated project: drop the problem families the team did not choose, then print
the next steps.

Each family is one cohesive unit: `src/<package>/problems/<family>.py`, `configs/<family>*.yaml`,
`configs/sweeps/<family>*.yaml` and `tests/test_<family>.py`, plus the nets in
`src/<package>/nets/` that only it uses.
"""

import shutil
from pathlib import Path

PACKAGE = "{{ cookiecutter.package_name }}"
CHOSEN = "{{ cookiecutter.problem_family }}"
LICENSE = "{{ cookiecutter.license }}"

# The nets (files in src/<package>/nets/) each family needs.
FAMILY_NETS = {
    "vision": {"mlp", "cnn", "resnet"},
    "tabular": {"mlp"},
    "objective": set(),
    "language": {"gpt"},
    "diffusion": {"unet"},
}


def prune_families(root: Path, keep: set[str]) -> None:
    """Delete every file of the families not in `keep`, and the nets no kept family uses."""
    package = root / "src" / PACKAGE
    for family in set(FAMILY_NETS) - keep:
        doomed = [package / "problems" / f"{family}.py"]
        doomed += root.glob(f"configs/{family}*.yaml")
        doomed += root.glob(f"configs/sweeps/{family}*.yaml")
        doomed += root.glob(f"tests/test_{family}*.py")
        for path in doomed:
            path.unlink(missing_ok=True)
    needed = set().union(*(FAMILY_NETS[family] for family in keep))
    for net in (package / "nets").glob("*.py"):
        if net.stem != "__init__" and net.stem not in needed:
            net.unlink()


def main() -> None:
    root = Path.cwd()
    keep = set(FAMILY_NETS) if CHOSEN == "all" else {CHOSEN}
    prune_families(root, keep)
    if LICENSE == "none":
        (root / "LICENSE").unlink()
    shutil.rmtree(root / "__pycache__", ignore_errors=True)
    print(
        f"""
Your project is ready in {root}

Next steps (from that folder):
  1. Install:        uv sync --extra dev
  2. Train:          uv run python train.py fit   (the default experiment, offline, on the CPU)
  3. Test:           uv run pytest
  4. Look at runs:   uv run tensorboard --logdir runs
  5. Share it:       git init && git add . && git commit -m "Start from the course template"
                     then push to https://github.com/{{ cookiecutter.github_owner }}/{{ cookiecutter.project_slug }}

README.md shows more (another optimizer, a schedule, resuming, repeating a run); docs/extending.md
shows how to add your own optimizer, schedule, net, dataset or problem family. Without uv:
pip install -e ".[dev]" in a virtual environment, then the same commands without "uv run".
"""
    )


if __name__ == "__main__":
    main()
