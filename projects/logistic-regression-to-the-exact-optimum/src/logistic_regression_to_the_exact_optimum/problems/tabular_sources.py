"""Where the tabular family's data comes from: a synthetic problem with chosen size, condition
number and noise, a dataset bundled with scikit-learn, or a CSV file of the team's own.

    from logistic_regression_to_the_exact_optimum.problems.tabular_sources import load_sklearn
    features, targets = load_sklearn("iris")  # float64 (150, 4), int64 (150,)
"""

import csv
import io
import math
from pathlib import Path

import torch

from ..config_errors import ConfigError
from ..data import (
    read_utf8,
)

# scikit-learn's bundled datasets: name -> (loader function, number of classes; 0 for a real target)
SKLEARN_DATASETS = {
    "breast_cancer": ("load_breast_cancer", 2),
    "diabetes": ("load_diabetes", 0),
    "wine": ("load_wine", 3),
    "iris": ("load_iris", 3),
    "digits": ("load_digits", 10),
}
SOURCES = ("synthetic", "csv", *SKLEARN_DATASETS)
TASKS = ("regression", "binary", "multiclass")


def synthetic(task: str, n: int, d: int, condition_number: float, noise: float, num_classes: int, seed: int):
    """A design X (n x d, centred columns) whose X^T X / n has eigenvalues spaced on a log scale
    from 1/condition_number to 1 exactly, true parameters (w, b), and targets:
    regression y = X w + b + noise * N(0, 1); binary y = [X w + b + noise * N(0, 1) > 0];
    multiclass y = argmax(X W + b + noise * N(0, 1)). noise = 0 makes classes separable."""
    if condition_number < 1 or n <= d:
        raise ConfigError(f"synthetic data needs condition_number >= 1 and n_samples > n_features, got "
                          f"{condition_number}, {n}, {d}")
    generator = torch.Generator().manual_seed(seed)
    normal = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    z = normal(n, d)
    left, _ = torch.linalg.qr(z - z.mean(dim=0))  # orthonormal columns, each summing to 0
    right, _ = torch.linalg.qr(normal(d, d))
    eigenvalues = torch.logspace(-math.log10(condition_number), 0.0, d, dtype=torch.float64)
    x = math.sqrt(n) * left @ torch.diag(eigenvalues.sqrt()) @ right.T
    outputs = 1 if task != "multiclass" else num_classes
    weight, bias = normal(d, outputs), normal(outputs)
    scores = x @ weight + bias + noise * normal(n, outputs)
    if task == "regression":
        y = scores[:, 0]
    elif task == "binary":
        y = (scores[:, 0] > 0).long()
    else:
        y = scores.argmax(dim=1)
    return x, y, {"weight": weight, "bias": bias}


def load_sklearn(name: str):
    """(features, targets) of a dataset bundled with scikit-learn."""
    import sklearn.datasets  # imported here: slow to import, and only these sources need it

    loader, num_classes = SKLEARN_DATASETS[name]
    x, y = getattr(sklearn.datasets, loader)(return_X_y=True)
    y = torch.tensor(y, dtype=torch.long if num_classes else torch.float64)
    return torch.tensor(x, dtype=torch.float64), y


def load_csv(path: str, target: str, task: str):
    """(features, targets) from a CSV file with a header row; `target` names the target column.
    Classification targets may be any strings (classes are numbered in sorted order).

    Each problem in the file (no such file or column, an empty, non-numeric, NaN or infinite
    cell, a row of the wrong length) is a ConfigError naming the file, column and row, with rows
    numbered as a spreadsheet shows them: the header is row 1."""
    header, body = csv_rows(path, target)
    features, labels = [], []
    for number, row in body:
        if len(row) != len(header):
            raise ConfigError(f"{path}, row {number}: {len(row)} cells, but the header names {len(header)} columns")
        cells = dict(zip(header, row, strict=True))
        features.append([cell_value(path, cells[column], column, number) for column in header if column != target])
        if task == "regression":
            labels.append(cell_value(path, cells[target], target, number))
        elif not cells[target].strip():
            raise ConfigError(f"{path}, column {target!r}, row {number}: the class is empty: fill it in or delete the row")
        else:
            labels.append(cells[target].strip())
    x = torch.tensor(features, dtype=torch.float64)
    if task == "regression":
        return x, torch.tensor(labels, dtype=torch.float64)
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ConfigError(f"{path}: column {target!r} holds one class only ({classes[0]!r}): nothing to classify")
    number_of = {name: i for i, name in enumerate(classes)}
    return x, torch.tensor([number_of[label] for label in labels])


def csv_rows(path: str, target: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header of a CSV file and its other rows, each as (row number, cells); a ConfigError
    if the file is missing, not UTF-8, empty, or has no column `target`."""
    if not Path(path).is_file():
        raise ConfigError(f"no CSV file at {path}: set data.init_args.csv_path to your file")
    text = read_utf8(Path(path)).removeprefix("\ufeff")  # Excel's "CSV UTF-8" starts with a byte order mark
    reader = csv.reader(io.StringIO(text))
    rows = [(reader.line_num, row) for row in reader if row]  # line_num: the row's number; blank lines skipped
    if not rows:
        raise ConfigError(f"{path} is empty: it needs a header row naming the columns, then one row per sample")
    header, body = [name.strip() for name in rows[0][1]], rows[1:]
    if target not in header:
        hint = " (its columns seem separated by ';': save it with commas)" if len(header) == 1 and ";" in header[0] else ""
        raise ConfigError(f"{path} has no column {target!r}{hint}: set data.init_args.target to one of {', '.join(header)}")
    if len(set(header)) < len(header):
        twice = sorted({name for name in header if header.count(name) > 1})
        raise ConfigError(f"{path}: the header names column(s) {', '.join(map(repr, twice))} more than once: rename them")
    if not body:
        raise ConfigError(f"{path} has a header but no rows of data")
    return header, body


def cell_value(path: str, text: str, column: str, row: int) -> float:
    """A CSV cell as a finite float, or a ConfigError naming the file, column and row."""
    where = f"{path}, column {column!r}, row {row}"
    if not text.strip():
        raise ConfigError(f"{where}: the cell is empty: fill it in or delete the row")
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a number: features (and a regression target) must be numbers") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {text.strip()} is not a finite number: replace it or delete the row")
    return value
