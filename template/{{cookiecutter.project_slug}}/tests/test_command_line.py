"""Tests of the command line a student uses all semester: switching the optimizer and the
schedule with one flag, their own optimizer by import path, run names, the help listing, the
table printed at the end of a run and TensorBoard's HParams tab."""

import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from conftest import QUIET, ROOT, fails_with, run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from {{ cookiecutter.package_name }}.run.flags import expand_choices, name_from_arguments

SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2", *QUIET]


def saved_config(cli) -> dict:
    return yaml.safe_load((Path(cli.trainer.log_dir) / "config.yaml").read_text())


def test_one_flag_replaces_the_whole_optimizer_entry(in_tmp):
    cli = run("fit", "--optimizer", "adam", *SHORT)
    optimizer = saved_config(cli)["model"]["init_args"]["optimizer"]
    assert optimizer["class_path"] == "torch.optim.Adam"
    assert optimizer["init_args"]["lr"] == 1e-3  # Adam's starting value, not the config's SGD lr
    assert optimizer["init_args"]["weight_decay"] == 0.0  # nothing of the config's optimizer carries over
    assert not {"momentum", "nesterov", "dampening"} & set(optimizer["init_args"])
    assert type(cli.trainer.optimizers[0]).__name__ == "Adam"
    assert Path(cli.trainer.log_dir).name == "adam_max_epochs1_limit_train_batches3_limit_val_batches2"


def test_arguments_given_after_the_name_change_only_themselves(in_tmp):
    cli = run("fit", "--optimizer", "nesterov", "--optimizer.lr", "0.01", "--scheduler", "wsd",
              "--scheduler.warmup_steps", "2", "--name", "nag", *SHORT)
    model = saved_config(cli)["model"]["init_args"]
    assert model["optimizer"]["init_args"] | {"lr": 0.01, "momentum": 0.9, "nesterov": True} == model["optimizer"]["init_args"]
    assert model["scheduler"]["class_path"].endswith(".optim.WSD") and model["scheduler"]["init_args"]["warmup_steps"] == 2
    assert Path(cli.trainer.log_dir).name == "nag"
    again = run("fit", "--optimizer", "nesterov", "--name", "nag", *SHORT)
    assert Path(again.trainer.log_dir).name == "nag_2"  # a taken name is never overwritten


def test_long_forms_work_the_same_way(in_tmp):
    cli = run("fit", "--model.init_args.optimizer", "signsgd", "--model.init_args.optimizer.lr", "0.002", *SHORT)
    optimizer = saved_config(cli)["model"]["init_args"]["optimizer"]
    assert optimizer["class_path"].endswith(".optim.SignSGD") and optimizer["init_args"]["lr"] == 0.002
    assert expand_choices(["--model.optimizer=adam"]) == expand_choices(["--optimizer", "adam"])


def test_a_students_own_optimizer_by_import_path(in_tmp, monkeypatch):
    # A file of the student's own, outside anything the template wrote.
    (in_tmp / "my_optimizers.py").write_text(
        "import torch\n\n\n"
        "class HalfSGD(torch.optim.SGD):\n"
        "    \"\"\"SGD at half the learning rate it is given.\"\"\"\n\n"
        "    def __init__(self, params, lr: float = 0.1, momentum: float = 0.0):\n"
        "        super().__init__(params, lr=lr / 2, momentum=momentum)\n"
    )
    monkeypatch.syspath_prepend(str(in_tmp))
    cli = run("fit", "--optimizer", "my_optimizers.HalfSGD", "--optimizer.momentum", "0.5", *SHORT)
    assert type(cli.trainer.optimizers[0]).__name__ == "HalfSGD"
    assert cli.trainer.optimizers[0].param_groups[0]["momentum"] == 0.5
    assert cli.trainer.global_step == cli.trainer.num_training_batches > 0  # 3 batches, or 1 when full-batch
    assert Path(cli.trainer.log_dir).name.startswith("halfsgd_momentum0.5")


def test_an_optimizer_that_takes_a_single_parameter_group_trains_with_all_parameters_in_it(in_tmp):
    cli = run("fit", "--optimizer", "torch.optim.LBFGS", "--optimizer.lr", "0.1", *SHORT)  # any torch.optim.Optimizer
    (group,) = cli.trainer.optimizers[0].param_groups
    assert len(group["params"]) == len([param for param in cli.model.parameters() if param.requires_grad])
    assert cli.trainer.global_step > 0
    from {{ cookiecutter.package_name }}.optim import build_optimizer, param_groups

    asked = param_groups(cli.model, [{"match": "*", "lr": 0.5}])  # groups the config asks for: LBFGS's refusal stands
    with pytest.raises(ValueError, match="parameter groups"):
        build_optimizer(torch.optim.LBFGS, asked + [{"name": "extra", "params": [torch.nn.Parameter(torch.zeros(1))]}])


def test_the_worked_example_optimizer_trains_from_the_command_line(in_tmp):
    cli = run("fit", "--optimizer", "sgd_momentum", "--optimizer.lr", "0.02", *SHORT)
    assert type(cli.trainer.optimizers[0]).__name__ == "SGDMomentum"
    assert cli.trainer.global_step == cli.trainer.num_training_batches > 0  # 3 batches, or 1 when full-batch


@pytest.mark.parametrize(
    "args, message",
    [
        (["--optimizer", "adamm"], "unknown optimizer 'adamm': choose one of sgd, momentum, nesterov, adagrad, rmsprop, adam"),
        (["--scheduler", "cosin"], "unknown scheduler 'cosin': choose one of constant, step, cosine"),
        (["--optimizer", "adam", "--optimizer.momentum", "0.9"], "Adam does not take 'momentum'; it takes: lr=0.001, betas"),
        (["--data", "lightning.LightningDataModule", "--data.init_args.batch_size", "8"],
         "LightningDataModule does not take 'batch_size'; it takes no arguments"),
        # a family whose model makes its own batches (as the objective family's does): the hint names the model's
        (["--data", "lightning.LightningDataModule", "--data.batch_size", "8"],
         "its model makes its own batches, so try --model.init_args.batch_size"),
        # class paths from before the template's code moved into folders (a config or run of an earlier version)
        (["--optimizer", "{{ cookiecutter.package_name }}.optimizers.SignSGD"],
         "{{ cookiecutter.package_name }}.optimizers is now {{ cookiecutter.package_name }}.optim"),
        (["--trainer.logger", "{{ cookiecutter.package_name }}.logger.TensorBoardLogger"],
         "{{ cookiecutter.package_name }}.logger is now {{ cookiecutter.package_name }}.run.logger"),
    ],
)
def test_unknown_names_and_arguments_fail_before_any_data_loads(args, message, in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run("fit", *args, *SHORT)
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err
    assert not (in_tmp / "runs").exists() and not (in_tmp / "data").exists()


def test_a_yaml_mistake_names_its_file_and_line(in_tmp, capsys):
    (in_tmp / "bad.yaml").write_text("trainer:\n  max_epochs: 1\n   limit_train_batches: 2\n")
    fails_with("bad.yaml, line 3, column 23: mapping values are not allowed here (a YAML syntax mistake", capsys,
               "fit", "--config", "bad.yaml")
    assert not (in_tmp / "runs").exists()


def test_a_misspelt_optimizer_ends_train_py_before_lightning_is_imported():
    command = [sys.executable, "-X", "importtime", "train.py", "fit", "--optimizer", "adamm"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    printed = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert len(printed) == 1 and printed[0].startswith("error: unknown optimizer 'adamm'"), printed
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "torch" in imported and not any(name.split(".")[0] == "lightning" for name in imported)


def test_help_lists_every_optimizer_and_schedule(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run("fit", "--help")
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    listing = printed[printed.index("Optimizers: --optimizer NAME"):]
    for name in ("adam ", "muon ", "signsgd ", "sgd_momentum ", "wsd ", "warmup_cosine "):
        assert f"\n  {name}" in listing, name
    assert re.search(r"\n  adam +Adam\(lr=0.001, betas=\(0.9, 0.999\)", listing)


def test_a_command_builds_only_its_own_subcommand_and_help_lists_all_four(in_tmp, capsys):
    # Each subcommand's parser takes a third of a second to build: `fit` builds fit's only.
    cli = run("fit", *SHORT)
    assert list(cli._subcommand_parsers) == ["fit"]
    with pytest.raises(SystemExit) as exit_info:
        run("--help")
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert all(re.search(rf"\n +{name} +\w", printed) for name in ("fit", "validate", "test", "predict")), printed
    ckpt = next(Path(cli.trainer.log_dir).glob("checkpoints/*.ckpt"))
    assert list(run("validate", "--ckpt_path", str(ckpt), *QUIET)._subcommand_parsers) == ["validate"]


def test_checkpoints_can_be_switched_off(in_tmp):
    cli = run("fit", *SHORT, "--trainer.enable_checkpointing", "false")
    assert cli.trainer.state.finished and cli.trainer.checkpoint_callbacks == []
    assert not (Path(cli.trainer.log_dir) / "checkpoints").exists()
    # config.yaml is still written, by PyYAML's C emitter (cli.yaml_text): the text of its Python one.
    text = (Path(cli.trainer.log_dir) / "config.yaml").read_text().removeprefix(f"# lightning.pytorch=={L.__version__}\n")
    assert text == yaml.dump(yaml.safe_load(text), Dumper=yaml.SafeDumper, default_flow_style=False, sort_keys=False)
    assert "optimizer:" in text and "class_path:" in text


def test_names_come_from_what_the_command_line_changes():
    assert name_from_arguments(["--optimizer", "adam", "--optimizer.lr", "3e-4", "--seed_everything", "1"]) == "adam_lr3e-4_seed1"
    assert name_from_arguments(["--config", "configs/x.yaml", *QUIET]) is None
    assert name_from_arguments(["--optimizer=my_pkg.opt.MyOpt"]) == "myopt"
    assert name_from_arguments(["--trainer.num_nodes", "2"]) is None  # scripts/slurm.sh passes it: not the student's change


def read_events(run_dir: str) -> EventAccumulator:
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()
    return events


def test_the_end_of_fit_table_equals_the_event_files(in_tmp, capsys):
    cli = run("fit", "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "3",
              *QUIET)
    printed = capsys.readouterr().out
    events = read_events(cli.trainer.log_dir)
    assert f"3 epochs, {cli.trainer.global_step} optimizer steps" in printed and "did not diverge" in printed
    assert f"Saved in {cli.trainer.log_dir}" in printed
    rows = re.findall(r"^  (val/\S+) +(\S+) +(\S+)$", printed, re.M)
    assert {name for name, _, _ in rows} == {tag for tag in events.Tags()["scalars"] if tag.startswith("val/")}
    for name, best, final in rows:
        values = [event.value for event in events.Scalars(name)]
        higher_is_better = name.endswith(("acc", "auroc"))  # (the tabular family logs val/auroc)
        assert higher_is_better == (name.split("/")[-1] in cli.model.metrics_higher_is_better)  # as its family declares
        assert float(final) == pytest.approx(values[-1], rel=1e-3)
        assert float(best) == pytest.approx(max(values) if higher_is_better else min(values), rel=1e-3)
    from {{ cookiecutter.package_name }}.report.runs import declared_higher_is_better

    assert declared_higher_is_better(Path(cli.trainer.log_dir)) == cli.model.metrics_higher_is_better  # for the reports


def test_accuracies_and_areas_under_the_curve_are_better_higher():
    from {{ cookiecutter.package_name }}.metrics import higher_is_better

    assert all(map(higher_is_better, ["val/acc", "test/auroc", "val/auc", "val/f1", "val/r2"]))
    assert not any(map(higher_is_better, ["val/loss", "val/dist_to_opt", "val/bits_per_byte", "train/excess_loss"]))
    # A family declares its own: those it names are better higher, every other metric lower.
    assert higher_is_better("val/reward", ("reward",)) and not higher_is_better("val/acc", ())


def test_hparams_tab_shows_the_settings_and_results_not_internals(in_tmp):
    cli = run("fit", "--optimizer", "adamw", *SHORT)
    events = read_events(cli.trainer.log_dir)
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    settings = dict(start.hparams)
    assert settings["optimizer"].string_value == "AdamW" and settings["optimizer.lr"].number_value == 1e-3
    assert {"seed", "trainer.max_epochs", "run", "result: best val/loss"} <= set(settings)
    assert settings["result: best val/loss"].number_value == pytest.approx(min(e.value for e in events.Scalars("val/loss")))
    assert settings["result: diverged"].number_value == 0  # (torch writes a bool as a number)
    assert "optimizer.betas" not in settings  # AdamW's own default: noise in a comparison
    assert not [key for key in settings if key.startswith("_") or key in ("data_dir", "foreach", "optimizer.fused")]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert "val/loss" in {metric.name.tag for metric in experiment.metric_infos}  # the chart's last value
    # Only curves among the charts: no hp_metric, no single-point summaries, no flat `diverged`.
    assert not [tag for tag in events.Tags()["scalars"] if tag in ("hp_metric", "diverged") or tag.startswith("best")]
    assert "custom_scalars__config__" in events.Tags()["tensors"]  # the Custom Scalars layout: loss first
