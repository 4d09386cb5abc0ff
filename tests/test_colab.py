"""Tests of the Colab notebooks: the template's walkthrough (colab/walkthrough.ipynb) runs top
to bottom offline on a CPU, and every baked project gets a valid demo notebook with its badge.

    .venv/bin/python -m pytest tests/test_colab.py
"""

import json
import re
from pathlib import Path

import nbformat
import pytest
from cookiecutter.main import cookiecutter
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
WALKTHROUGH = REPO / "colab" / "walkthrough.ipynb"


# (conftest.py's isolated_cookiecutter keeps cookiecutter's files out of the home folder; the kernel
# inherits its COOKIECUTTER_CONFIG.)


@pytest.mark.slow
def test_walkthrough_runs_top_to_bottom_offline(tmp_path):
    notebook = nbformat.read(WALKTHROUGH, as_version=4)
    nbformat.validate(notebook)
    source = "".join(cell.source for cell in notebook.cells)
    assert '"google.colab" in sys.modules' in source and "pip\", \"install\", \"--quiet\", \"cookiecutter\"" in source
    assert "%tensorboard --logdir runs" in source and "configs/trainer/gpu.yaml" in source
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    tiny = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1",
            "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false"]
    answers = {"project_name": "Walkthrough Check", "problem_family": "vision"}
    parameters.source += (f"\nANSWERS = {answers!r}\nTRAIN_ARGS = {json.dumps(tiny)}\n"
                          f"FIGURE_ARGS = {json.dumps(['--metrics', 'train/loss', 'val/loss'])}\n"
                          f"WORKDIR = {str(tmp_path / 'work')!r}\n")
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(WALKTHROUGH.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails

    project = tmp_path / "work" / "walkthrough-check"
    assert (project / "src" / "walkthrough_check" / "figures.py").is_file()
    assert list(project.glob("runs/vision_digits/*/events.out.tfevents.*"))
    assert (project / "figures" / "loss.png").stat().st_size > 10_000
    report = (project / "report.md").read_text()
    assert re.search(r"<!-- figures:results:start -->\n\| configuration \| runs \|", report)  # the table is in
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert any("image/png" in output.get("data", {}) for output in outputs)
    assert "TensorBoard skipped here" in "".join(output.get("text", "") for output in outputs)


def test_baked_demo_notebook_is_valid_and_linked_from_the_readme(tmp_path):
    name = 'Quote "This" \\ Study'  # quotes and a backslash must not break the notebook's JSON
    answers = {"project_name": name, "project_slug": "quote-study", "github_owner": "ada-lovelace"}
    project = Path(cookiecutter(str(REPO), no_input=True, output_dir=str(tmp_path), extra_context=answers))
    demo = project / "notebooks" / "demo.ipynb"
    notebook = nbformat.read(demo, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].source.startswith(f"# {name}: Colab demo")
    assert "https://github.com/ada-lovelace/quote-study.git" in notebook.cells[1].source
    badge = "https://colab.research.google.com/github/ada-lovelace/quote-study/blob/main/notebooks/demo.ipynb"
    assert badge in (project / "README.md").read_text() and badge in notebook.cells[0].source
    assert name in (project / "report.md").read_text()
