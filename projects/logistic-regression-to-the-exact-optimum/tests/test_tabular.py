"""Tests of the tabular family: the data sources, the exact optimum, learning, 64-bit runs,
and every config."""

import csv
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import CONFIGS, QUIET, fails_with, run, run_one_batch
from lightning.pytorch.loggers import CSVLogger

from logistic_regression_to_the_exact_optimum.config_errors import ConfigError
from logistic_regression_to_the_exact_optimum.optim import make_optimizer
from logistic_regression_to_the_exact_optimum.problems.tabular import SKLEARN_DATASETS, TabularDataModule, TabularModel, data_loss
from logistic_regression_to_the_exact_optimum.report import figures


def fit(model, data, epochs: int, logger=False, **trainer_args) -> L.Trainer:
    trainer = L.Trainer(max_epochs=epochs, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", **trainer_args)
    trainer.fit(model, data)
    return trainer


def model_for(data: TabularDataModule, **args) -> TabularModel:
    return TabularModel(num_features=data.num_features, num_classes=data.num_classes, **args)


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("tabular*.yaml")), ids=lambda path: path.stem)
def test_every_tabular_config_runs_one_batch(config, in_tmp):
    run_one_batch(config)


def synthetic(task="regression", **args) -> TabularDataModule:
    data = TabularDataModule("synthetic", task, standardize=False, full_batch=True, **args)
    data.setup("fit")
    return data


def test_synthetic_design_has_the_chosen_condition_number():
    data = synthetic(n_samples=300, n_features=8, condition_number=25.0)
    x = data.splits["train"][0].double()
    eigenvalues = torch.linalg.eigvalsh(x.T @ x / len(x))
    assert float(eigenvalues.min()) == pytest.approx(1 / 25, rel=1e-4) and float(eigenvalues.max()) == pytest.approx(1, rel=1e-4)
    assert x.mean(dim=0).abs().max() < 1e-5  # centred columns


def test_least_squares_optimum_matches_a_direct_solve():
    data = synthetic(n_samples=200, n_features=6, condition_number=50.0, noise=0.3)
    weight, bias, value = model_for(data, loss="squared").solve(*data.splits["train"])
    x, y = (t.double() for t in data.splits["train"])
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    direct = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    assert torch.allclose(torch.cat([weight[0], bias]), direct, atol=1e-9)
    assert float(value) == pytest.approx(float(((design @ direct - y) ** 2).mean()), rel=1e-9)
    # with little noise the optimum is close to the true parameters
    clean = synthetic(n_samples=200, n_features=6, noise=1e-4)
    weight, bias, _ = model_for(clean, loss="squared").solve(*clean.splits["train"])
    assert torch.allclose(weight[0], clean.truth["weight"][:, 0], atol=1e-3)


def test_l1_optimum_satisfies_the_optimality_conditions():
    data = synthetic(n_samples=200, n_features=10, noise=0.5)
    l1 = 0.3
    weight, bias, _ = model_for(data, loss="squared", l1=l1).solve(*data.splits["train"])
    x, y = (t.double() for t in data.splits["train"])
    w = weight[0].clone().requires_grad_()
    data_loss("squared", (x @ w + bias)[:, None], y, 0).backward()
    zero = weight[0] == 0
    assert zero.any() and (~zero).any()
    assert (w.grad[zero].abs() <= l1 + 1e-8).all()
    assert torch.allclose(w.grad[~zero], -l1 * torch.sign(weight[0][~zero]), atol=1e-7)


def test_gradient_descent_reaches_the_logistic_optimum():
    L.seed_everything(0)
    data = TabularDataModule("synthetic", "multiclass", n_samples=300, n_features=5, noise=1.0, full_batch=True)
    model = model_for(data, loss="logistic", l2=0.01, optimizer=make_optimizer("sgd", lr=2.0, momentum=0.5))
    trainer = fit(model, data, 150)
    assert model.optimum is not None
    assert trainer.callback_metrics["val/dist_to_opt"] < 1e-3
    assert 0 <= trainer.callback_metrics["train/excess_loss"] < 1e-6


def test_logistic_regression_separates_separable_classes():
    L.seed_everything(0)
    data = TabularDataModule("synthetic", "binary", n_samples=50, n_features=5, noise=0.0, full_batch=True)
    model = model_for(data, loss="logistic", optimizer=make_optimizer("sgd", lr=5.0))
    fit(model, data, 200)
    assert model.optimum is None  # separable and no l2 penalty: no minimizer to measure against
    x, y = data.splits["train"]
    assert torch.equal((model(x)[:, 0] > 0).long(), y)  # 100% training accuracy


def test_linear_svm_learns_breast_cancer():
    L.seed_everything(0)
    data = TabularDataModule("breast_cancer", batch_size=32)
    model = model_for(data, loss="hinge", l2=1e-3, optimizer=make_optimizer("sgd", lr=0.05))
    trainer = fit(model, data, 5)
    assert trainer.callback_metrics["val/acc"] > 0.9 and trainer.callback_metrics["val/auroc"] > 0.95


def test_64_true_precision_puts_the_data_in_float64():
    L.seed_everything(0)
    data = TabularDataModule("synthetic", "regression", n_samples=100, n_features=4, condition_number=2.0,
                             standardize=False, full_batch=True)
    model = model_for(data, loss="squared", optimizer=make_optimizer("sgd", lr=0.5))
    trainer = fit(model, data, 100, precision="64-true")
    assert data.splits["train"][0].dtype == torch.float64 and model.net.weight.dtype == torch.float64
    assert trainer.callback_metrics["val/dist_to_opt"] < 1e-11  # far below float32's resolution


@pytest.mark.parametrize("name", sorted(SKLEARN_DATASETS))
def test_bundled_datasets_are_standardized_with_training_statistics(name):
    data = TabularDataModule(name)
    data.setup("fit")
    x, y = data.splits["train"]
    assert x.shape[1] == data.num_features and torch.allclose(x.mean(dim=0), torch.zeros(x.shape[1]), atol=1e-4)
    assert not torch.allclose(data.splits["val"][0].mean(dim=0), torch.zeros(x.shape[1]), atol=1e-4)
    assert data.num_classes == 0 or int(y.max()) + 1 == data.num_classes
    sizes = [len(data.splits[split][1]) for split in ("train", "val", "test")]
    assert sizes[1] == sizes[2] and sum(sizes) == len(data.raw[0][1]) + len(data.raw[1][1]) + len(data.raw[2][1])
    # A feature constant on the training split (digits' always-blank pixels) is not divided by 0.
    assert all(data.splits[split][0].abs().max() < 100 for split in ("train", "val", "test"))


def test_csv_source_reads_a_named_target_column(in_tmp):
    rows = ["height,colour,weight"] + [f"{i % 7},{'red' if i % 3 else 'blue'},{i * 0.5}" for i in range(60)]
    (in_tmp / "plants.csv").write_text("\n".join(rows))
    data = TabularDataModule("csv", "binary", csv_path="plants.csv", target="colour", full_batch=True)
    assert data.num_features == 2 and data.num_classes == 2
    model = model_for(data, loss="logistic", l2=0.1, optimizer=make_optimizer("sgd", lr=0.5))
    fit(model, data, 3)
    assert model.optimum is not None
    with pytest.raises(ConfigError, match="no column 'label'.*height, colour, weight"):
        _ = TabularDataModule("csv", csv_path="plants.csv", target="label").num_features


@pytest.mark.parametrize("source, loss", [("breast_cancer", "logistic"), ("wine", "hinge")])
def test_train_acc_is_the_accuracy_of_the_starting_weights_in_a_full_batch_epoch(source, loss):
    L.seed_everything(0)
    data = TabularDataModule(source, full_batch=True)
    data.setup("fit")
    model = model_for(data, loss=loss, optimizer=make_optimizer("sgd", lr=1.0))
    torch.nn.init.normal_(model.net.weight)  # not the zeros it starts from, which predict one class
    x, y = data.splits["train"]
    before = float((model.predictions(model(x)) == y).float().mean())
    assert before == pytest.approx(float(model.make_metrics(data.num_classes)["acc"](model.scores(model(x)), y)))
    trainer = fit(model, data, 1)
    assert float(trainer.callback_metrics["train/acc"]) == pytest.approx(before, abs=1e-6)
    assert float((model.predictions(model(x)) == y).float().mean()) != pytest.approx(before, abs=1e-3)


def test_regression_logs_no_train_acc():
    data = synthetic(n_samples=50, n_features=3)
    trainer = fit(model_for(data, loss="squared"), data, 1)
    assert "val/mse" in trainer.callback_metrics and "train/acc" not in trainer.callback_metrics


def test_test_every_epoch_logs_test_curves_equal_to_testing(tmp_path):
    L.seed_everything(0)
    data = TabularDataModule("breast_cancer", full_batch=True, test_every_epoch=True)
    model = model_for(data, l2=0.05, optimizer=make_optimizer("sgd", lr=0.3))
    trainer = fit(model, data, 3, logger=CSVLogger(tmp_path), log_every_n_steps=1)
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    curves = {name: [float(row[name]) for row in rows if row[name]] for name in rows[0]}
    assert len(curves["test/loss"]) == len(curves["test/acc"]) == len(curves["test/auroc"]) == len(curves["val/loss"]) == 3
    tested = trainer.test(model, data, verbose=False)[0]
    for name in ("test/loss", "test/acc", "test/auroc"):
        assert curves[name][-1] == pytest.approx(tested[name], rel=1e-5)
    with pytest.raises(ConfigError, match="test_every_epoch needs a test split, and test_size is 0"):
        TabularDataModule(test_size=0, test_every_epoch=True)


def test_bad_settings_are_explained():
    with pytest.raises(ConfigError, match="use squared for a real-valued target"):
        TabularModel(loss="logistic", num_features=3, num_classes=0)
    with pytest.raises(ConfigError, match="unknown source 'housing'"):
        TabularDataModule("housing")
    with pytest.raises(ConfigError, match="'width'.*widths"):
        TabularModel(net="mlp", net_args={"width": [4]}, num_features=3, num_classes=2)


@pytest.mark.parametrize("content, message", [
    ("height,weight,target\n1,2,0\n\n3,nan,1\n", "plants.csv, column 'weight', row 4: nan is not a finite number"),
    ("height,weight,target\n1,2,0\n3,-inf,1\n", "plants.csv, column 'weight', row 3: -inf is not a finite number"),
    ("height,weight,target\n1,,0\n", "plants.csv, column 'weight', row 2: the cell is empty"),
    ("height,weight,target\n1,heavy,0\n", "plants.csv, column 'weight', row 2: 'heavy' is not a number"),
    ("height,weight,target\n1,2,0\n1,2,0,5\n", "plants.csv, row 3: 4 cells, but the header names 3 columns"),
    ("height,weight,target\n1,2,\n", "plants.csv, column 'target', row 2: the class is empty"),
    ("height,weight,target\n1,2,a\n3,4,a\n", "column 'target' holds one class only"),
    ("", "plants.csv is empty: it needs a header row"),
    ("height,weight,target\n", "plants.csv has a header but no rows of data"),
    ("height;weight;target\n1;2;0\n", "no column 'target' .*separated by ';'"),
    ("height,height,target\n1,2,0\n", "column.*'height' more than once"),
])
def test_csv_problems_name_the_file_column_and_row(content, message, in_tmp):
    (in_tmp / "plants.csv").write_text(content)
    with pytest.raises(ConfigError, match=message):
        _ = TabularDataModule("csv", "binary", csv_path="plants.csv").num_features


def test_csv_regression_target_must_be_finite_and_files_must_be_utf8(in_tmp):
    (in_tmp / "plants.csv").write_text("height,target\n1,2.5\n2,inf\n")
    with pytest.raises(ConfigError, match="column 'target', row 3: inf is not a finite number"):
        _ = TabularDataModule("csv", "regression", csv_path="plants.csv").num_features
    (in_tmp / "plants.csv").write_bytes("height,target\n1,caf\xe9\n".encode("latin1"))
    with pytest.raises(ConfigError, match="plants.csv is not UTF-8 text: byte 0xe9 at offset 19 .line 2.*iconv"):
        _ = TabularDataModule("csv", "binary", csv_path="plants.csv").num_features
    # A spreadsheet's "CSV UTF-8" export starts with a byte order mark: the first column keeps its name.
    (in_tmp / "plants.csv").write_text("\ufefftarget,height\n" + "".join(f"{i % 2},{i}\n" for i in range(20)))
    assert TabularDataModule("csv", "binary", csv_path="plants.csv").num_features == 1


def test_nan_in_a_csv_ends_the_command_with_one_line(in_tmp, capsys):
    # It once ended in "RuntimeError: false INTERNAL ASSERT FAILED" (linear model) or "Diverged" (MLP).
    (in_tmp / "plants.csv").write_text("height,target\n" + "".join(f"{i},{i % 2}\n" for i in range(20)) + "nan,1\n")
    fails_with("error: plants.csv, column 'height', row 22: nan is not a finite number", capsys,
               "fit", "--config", str(CONFIGS / "tabular.yaml"), "--data.init_args.source", "csv",
               "--data.init_args.csv_path", "plants.csv")


@pytest.mark.parametrize("args, message", [
    ({"val_size": 1.5}, "val_size 1.5: give a fraction below 1 .e.g. 0.1. or a whole number of samples"),
    ({"test_size": -1}, "test_size -1: give a whole number of samples >= 0"),
    ({"val_size": 0.0}, "val_size 0.0 is 0 of the 569 samples"),
    ({"val_size": 300, "test_size": 0.5}, "hold out 300 \\+ 284 of the 569 samples, leaving 0 to train on"),
    ({"test_size": 569}, "test_size 569 holds out 569 of the 569 samples, leaving none"),
    ({"batch_size": 0}, "batch_size 0: give a whole number >= 1"),
    ({"source": "synthetic", "task": "multiclass", "n_classes": 1}, "n_classes 1: give a whole number >= 2"),
    ({"source": "synthetic", "noise": -0.1}, "noise -0.1: give a standard deviation >= 0"),
])
def test_bad_split_and_size_settings_are_explained(args, message):
    with pytest.raises(ConfigError, match=message):
        TabularDataModule(**args).setup("fit")


def test_test_size_0_leaves_an_empty_test_split():
    for source in ("breast_cancer", "synthetic"):
        data = TabularDataModule(source, "regression", test_size=0, full_batch=True)
        data.setup("fit")
        assert len(data.splits["test"][1]) == 0 and len(data.test_dataloader()) == 0
        assert len(data.splits["val"][1]) > 0


def test_a_validation_is_read_at_the_steps_taken_before_it(in_tmp):
    # Gradient descent takes one step an epoch: a validation read one step early would put each
    # epoch's result an epoch (the whole training set, on the samples axis) too soon.
    cli = run("fit", "--config", str(CONFIGS / "tabular.yaml"), "--trainer.max_epochs", "3", *QUIET)
    read = figures.read_run(Path(cli.trainer.log_dir))
    assert cli.trainer.global_step == 3 and list(read.scalars["val/loss"].steps) == [1, 2, 3]
    assert list(read.scalars["test/loss"].steps) == [1, 2, 3]  # test_every_epoch: tested with each validation
    assert list(read.scalars["train/loss"].steps) == [1]  # the loss of the weights after 1 step (every 2nd step logs)
    assert list(figures.x_values(read, read.scalars["val/loss"], "epoch")) == [1, 2, 3]


def test_samples_axis_counts_a_full_batch_step_as_the_whole_training_set():
    def run(name: str, **data) -> figures.Run:
        config = {f"data.init_args.{key}": value for key, value in data.items()} | {"trainer.devices": 1}
        config["data.class_path"] = "logistic_regression_to_the_exact_optimum.problems.tabular.TabularDataModule"  # it declares the size
        steps = np.arange(0, 200, 10, dtype=float)
        return figures.Run(Path("runs/gd_vs_sgd") / name, config,
                           {"val/loss": figures.Series(steps=steps, times=100.0 + steps, values=np.ones_like(steps))})

    sgd = run("sgd", batch_size=16)
    gd = run("gd", batch_size=16, full_batch=True, source="synthetic", n_samples=500)
    gd_unknown = run("gd_cancer", batch_size=16, full_batch=True, source="breast_cancer")
    assert figures.batch_size_of(sgd) == 16  # SGD: the mini-batch
    assert figures.batch_size_of(gd) == 500  # gradient descent on generated data: all n_samples, whatever batch_size says
    assert figures.batch_size_of(gd_unknown) is None  # a dataset whose size the config does not give: no axis, not a wrong one
    notes = []
    figure = figures.plot_metrics(figures.group_runs([sgd, gd, gd_unknown]), ["val/loss"], x="samples", notes=notes)
    lines = {line.get_label().split(" ")[0]: line.get_xdata() for line in figure.axes[0].get_lines()}
    assert len(lines) == 2 and max(max(xs) for xs in lines.values()) == pytest.approx(190 * 500)
    assert any("no samples axis for" in note and "left out" in note for note in notes)
