"""Tests of the optimizer and schedule factories, and of on-device batching."""

import inspect
import io
import math

import lightning as L
import pytest
import torch
from conftest import CONFIGS, fails_with
from torch import nn

from the_sgd_lecture_reproduced.config_errors import ConfigError
from the_sgd_lecture_reproduced.data import DeviceBatches, split_indices
from the_sgd_lecture_reproduced.module import CourseModule
from the_sgd_lecture_reproduced.optim import (
    OPTIMIZERS,
    SCHEDULES,
    MuonWithAdamW,
    PreconditionedGD,
    SGDMomentum,
    SignSGD,
    check_optimizer,
    hidden_matrices,
    make_optimizer,
    make_schedule,
    param_groups,
)


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 1))


def build(model: nn.Module, name: str, **arguments) -> torch.optim.Optimizer:
    """What the module does with `--optimizer name --optimizer.<argument> value`."""
    return make_optimizer(name, **arguments)(param_groups(model))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_builds_and_reduces_a_loss(name):
    needs_curvature = getattr(check_optimizer(make_optimizer(name)), "needs_curvature", False)
    # Newton's method is for convex objectives (an MLP's Hessian is singular): least squares for it
    model = nn.Linear(4, 1) if needs_curvature else small_model()
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    takes_weight_decay = "weight_decay" in inspect.signature(make_optimizer(name).func).parameters
    optimizer = build(model, name, **({"weight_decay": 0.01} if takes_weight_decay else {}))  # starting lr
    if hasattr(optimizer, "train"):  # Schedule-Free
        optimizer.train()
    if needs_curvature:  # the Hessian of the loss over (weight, bias), as a module's curvature() gives it
        assert [p.numel() for group in optimizer.param_groups for p in group["params"]] == [4, 1]
        features = torch.cat([x, torch.ones(64, 1)], dim=1)
        optimizer.curvature = lambda: 2 * features.T @ features / 64
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_every_optimizer_name_has_a_class_and_a_starting_lr():
    for name, (class_path, starting_values) in OPTIMIZERS.items():
        assert issubclass(make_optimizer(name).func, torch.optim.Optimizer), name
        assert starting_values["lr"] > 0, class_path


def test_sgd_takes_exactly_one_gradient_step():
    model = nn.Linear(3, 1, bias=False)
    before = model.weight.detach().clone()
    optimizer = build(model, "sgd", lr=0.5)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    assert torch.allclose(model.weight, before - 0.5 * torch.ones(1, 3))


def test_hand_written_sgd_momentum_matches_torchs():
    torch.manual_seed(0)
    mine, reference = nn.Linear(5, 3), nn.Linear(5, 3)
    reference.load_state_dict(mine.state_dict())
    optimizers = [SGDMomentum(mine.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01),
                  torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)]
    for _ in range(5):
        x = torch.randn(8, 5)
        for model, optimizer in zip([mine, reference], optimizers, strict=True):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    assert torch.allclose(mine.weight, reference.weight, atol=1e-6)


def test_signsgd_steps_by_the_sign_of_the_gradient():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    optimizer = SignSGD([param], lr=0.1)
    param.grad = torch.tensor([0.5, -7.0, 0.0])
    optimizer.step()
    assert torch.allclose(param, torch.tensor([0.9, -1.9, 3.0]))
    signum = SignSGD([param], lr=0.1, momentum=0.5)  # averages first: m = 0.5 * g on the first step
    param.grad = torch.tensor([-1.0, 1.0, 2.0])
    before = param.detach().clone()
    signum.step()
    assert torch.allclose(param, before - 0.1 * torch.tensor([-1.0, 1.0, 1.0]))


def test_muon_gets_exactly_the_hidden_weight_matrices():
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 16),
                          nn.Conv1d(16, 16, 3), nn.Linear(16, 5))
    hidden = [model[1].weight, model[3].weight]
    assert hidden_matrices(model) == {id(p) for p in hidden}
    optimizer = build(model, "muon")
    assert isinstance(optimizer, MuonWithAdamW)
    assert [id(p) for p in optimizer.muon.param_groups[0]["params"]] == [id(p) for p in hidden]
    adamw_params = {id(p) for group in optimizer.adamw.param_groups for p in group["params"]}
    assert adamw_params == {id(p) for p in model.parameters()} - {id(p) for p in hidden}  # embedding, head, ...
    assert optimizer.param_groups[0]["lr"] == 0.02 and optimizer.param_groups[1]["lr"] == 3e-3


def test_muon_leaves_a_tied_output_layer_and_keeps_every_hidden_matrix():
    embedding, hidden, head = nn.Embedding(10, 8), nn.Linear(8, 8), nn.Linear(8, 10, bias=False)
    head.weight = embedding.weight  # weight tying, as in the GPT
    assert hidden_matrices(nn.ModuleList([embedding, hidden, head])) == {id(hidden.weight)}


def test_muon_falls_back_for_models_without_hidden_layers():
    matrix = nn.ParameterList([nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(5))])
    optimizer = build(matrix, "muon")  # e.g. a matrix-valued decision variable
    assert [p.shape for p in optimizer.muon.param_groups[0]["params"]] == [(4, 3)]
    with pytest.warns(UserWarning, match="every parameter is trained by AdamW"):
        vector_only = build(nn.ParameterList([nn.Parameter(torch.randn(5))]), "muon")
    assert vector_only.muon is None and len(vector_only.param_groups) == 1
    plain = MuonWithAdamW(small_model().parameters())  # plain tensors: 2-D ones go to Muon
    assert [p.ndim for p in plain.muon.param_groups[0]["params"]] == [2, 2]


def test_muon_state_survives_a_checkpoint_round_trip():
    model = small_model()
    optimizer = build(model, "muon")
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    copy = build(model, "muon")
    copy.load_state_dict(optimizer.state_dict())
    assert torch.equal(copy.muon.state_dict()["state"][0]["momentum_buffer"],
                       optimizer.muon.state_dict()["state"][0]["momentum_buffer"])


def quadratic(hessian: torch.Tensor, target: torch.Tensor, *shapes):
    """Parameters of `shapes` and f = 1/2 (z - target)^T H (z - target), z their concatenation."""
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(shape, dtype=torch.float64)) for shape in shapes]

    def gradient_step(optimizer):
        optimizer.zero_grad()
        error = torch.cat([p.flatten() for p in params]) - target
        (0.5 * error @ hessian @ error).backward()
        optimizer.step()
        return torch.cat([p.detach().flatten() for p in params])

    return params, gradient_step


def random_hessian(n: int, condition_number: float) -> torch.Tensor:
    basis, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))
    return basis @ torch.diag(torch.logspace(0, -math.log10(condition_number), n, dtype=torch.float64)) @ basis.T


def test_newton_solves_a_quadratic_in_one_step_over_every_parameter():
    torch.manual_seed(1)
    hessian, target = random_hessian(7, 1e4), torch.randn(7, dtype=torch.float64)
    params, gradient_step = quadratic(hessian, target, (2, 2), (3,))  # flattened and concatenated: 7 numbers
    optimizer = PreconditionedGD(params, lr=1.0, preconditioner="newton")
    assert optimizer.needs_curvature and optimizer.param_groups[0]["damping"] == 0.0
    with pytest.raises(RuntimeError, match="preconditioner newton needs the Hessian"):
        gradient_step(optimizer)  # no curvature set
    optimizer.curvature = lambda: hessian
    assert torch.allclose(gradient_step(optimizer), target, atol=1e-9)
    # damping: the step is (H + damping I)^-1 g, here along H's eigenvectors h_i / (h_i + damping) of the error
    damped = PreconditionedGD(params, lr=1.0, damping=0.5)
    damped.curvature = lambda: hessian
    start = torch.cat([p.detach().flatten() for p in params]) + 1.0
    with torch.no_grad():
        for p, value in zip(params, start.split([4, 3]), strict=True):
            p.copy_(value.view_as(p))
    expected = start - torch.linalg.solve(hessian + 0.5 * torch.eye(7, dtype=torch.float64), hessian @ (start - target))
    assert torch.allclose(gradient_step(damped), expected, atol=1e-12)


def test_diagonal_preconditioner_solves_an_axis_aligned_quadratic_in_one_step():
    hessian, target = torch.diag(torch.tensor([1.0, 1e-3, 30.0, 0.2], dtype=torch.float64)), torch.ones(4).double()
    params, gradient_step = quadratic(hessian, target, (4,))
    optimizer = PreconditionedGD(params, preconditioner="diagonal")
    optimizer.curvature = lambda: hessian
    assert torch.allclose(gradient_step(optimizer), target, atol=1e-12)
    # where H_ii + damping <= 0 it takes a plain gradient step along that coordinate instead
    indefinite = torch.diag(torch.tensor([2.0, -1.0], dtype=torch.float64))
    params, gradient_step = quadratic(indefinite, torch.zeros(2).double(), (2,))
    start = params[0].detach().clone()
    optimizer = PreconditionedGD(params, lr=0.1, preconditioner="diagonal")
    optimizer.curvature = lambda: indefinite
    assert torch.allclose(gradient_step(optimizer), start - 0.1 * torch.tensor([1.0, -1.0]).double() * start)


@pytest.mark.parametrize(
    "settings, reference",
    [
        ({"preconditioner": "identity", "lr": 0.1}, lambda p: torch.optim.SGD(p, lr=0.1)),
        # torch's Adagrad and RMSprop add eps after the square root too: the same formulas
        ({"preconditioner": "adagrad", "lr": 0.1, "eps": 1e-10}, lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-10)),
        ({"preconditioner": "rmsprop", "lr": 0.01, "beta": 0.9}, lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9)),
    ],
    ids=["identity", "adagrad", "rmsprop"],
)
def test_preconditioners_without_hessian_match_torchs_optimizers(settings, reference):
    mine, theirs = small_model(), small_model()
    optimizers = [make_optimizer("preconditioned", **settings)(param_groups(mine)), reference(theirs.parameters())]
    assert not optimizers[0].needs_curvature
    for _ in range(5):
        x = torch.randn(8, 4)
        for model, optimizer in zip([mine, theirs], optimizers, strict=True):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("preconditioner", ["adagrad", "rmsprop"])
def test_preconditioner_state_survives_a_checkpoint_round_trip(preconditioner):
    models = [small_model(), small_model()]
    x = torch.randn(8, 4)
    optimizers = [make_optimizer("preconditioned", preconditioner=preconditioner, lr=0.01)(param_groups(m)) for m in models]

    def step(model, optimizer):
        optimizer.zero_grad()
        model(x).square().mean().backward()
        optimizer.step()

    for _ in range(3):
        step(models[0], optimizers[0])
    checkpoint = io.BytesIO()  # as a resumed run does: through a file
    torch.save({"model": models[0].state_dict(), "optimizer": optimizers[0].state_dict()}, checkpoint)
    checkpoint.seek(0)
    saved = torch.load(checkpoint, weights_only=True)
    models[1].load_state_dict(saved["model"])
    optimizers[1].load_state_dict(saved["optimizer"])
    assert optimizers[1].param_groups[0]["preconditioner"] == preconditioner
    for model, optimizer in zip(models, optimizers, strict=True):
        step(model, optimizer)
    for a, b in zip(*(m.parameters() for m in models), strict=True):
        assert torch.equal(a, b)  # a fresh sum of squares would have taken another step


def test_newton_is_refused_where_the_module_has_no_hessian(capsys, in_tmp):
    with pytest.raises(ConfigError, match="needs the Hessian, which CourseModule does not compute .a module that can defines"):
        CourseModule(optimizer=make_optimizer("newton"))
    CourseModule(optimizer=make_optimizer("preconditioned", preconditioner="adagrad"))  # no Hessian needed
    other = [path for path in sorted(CONFIGS.glob("*.yaml")) if not path.name.startswith("objective")]
    if not other:
        pytest.skip("this project has only the objective family, whose module computes the Hessian")
    fails_with("needs the Hessian", capsys, "fit", "--config", str(other[0]), "--optimizer", "newton")
    assert not (in_tmp / "data").exists() and not list(in_tmp.glob("runs/*"))  # before data loads or a run starts


def test_group_overrides_take_matching_parameters():
    model = small_model()  # 0: Linear (hidden), 1: LayerNorm, 3: Linear (output)
    groups = param_groups(model, overrides=[{"match": "3.*", "lr": 0.5}])
    assert [group["name"] for group in groups] == ["matrices", "no_decay", "3.*"]
    assert groups[2]["lr"] == 0.5 and len(groups[2]["params"]) == 2
    optimizer = make_optimizer("sgd", lr=0.1)(groups)
    assert [group["lr"] for group in optimizer.param_groups] == [0.1, 0.1, 0.5]
    with pytest.raises(ConfigError, match="needs a `match` pattern"):
        param_groups(model, overrides=[{"lr": 0.1}])


def test_optimizers_keep_their_own_default_weight_decay():
    groups = build(small_model(), "adamw").param_groups
    assert [group["weight_decay"] for group in groups] == [0.01, 0.01, 0.0]  # torch's AdamW default, not on biases
    assert build(small_model(), "adam").param_groups[0]["weight_decay"] == 0.0


def test_weight_decay_skips_biases_norms_and_embeddings():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.BatchNorm1d(4), nn.LayerNorm(4))
    matrices, no_decay = build(model, "sgd", weight_decay=0.1).param_groups
    assert matrices["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in matrices["params"]] == [(4, 4)]  # only the linear layer's weight matrix
    assert len(no_decay["params"]) == 6  # embedding, linear bias, two norms' weights and biases


def test_tied_weights_appear_once():
    embedding, head = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    groups = param_groups(nn.ModuleList([embedding, head]))
    assert sum(len(group["params"]) for group in groups) == 1


@pytest.mark.parametrize(
    "name, arguments, message",
    [
        ("adan", {}, "unknown optimizer 'adan': choose one of sgd, momentum, nesterov, adagrad"),
        ("adam", {"momentum": 0.9}, "optimizer Adam: .*unexpected keyword argument 'momentum'"),
        ("sgd", {"lr": -0.1}, "optimizer SGD: Invalid learning rate"),
        ("sgd", {"lr": 0.0}, "lr must be > 0"),
        ("adam", {"betas": (0.9, 1.0)}, "Invalid beta parameter"),
        ("sgd", {"momentum": 1.5}, r"momentum must lie in \[0, 1\)"),
        ("sgd", {"nesterov": True}, "Nesterov momentum requires a momentum"),
        ("muon", {"adamw_betas": (0.9, 1.2)}, "Invalid beta parameter"),
        ("preconditioned", {"preconditioner": "bfgs"}, "preconditioner must be one of identity, newton, diagonal"),
        ("newton", {"damping": -1.0}, "need lr > 0, damping >= 0"),
        ("newton", {"lr": 0.0}, "need lr > 0, damping >= 0"),
        ("preconditioned", {"preconditioner": "rmsprop", "beta": 1.0}, r"beta in \[0, 1\)"),
    ],
)
def test_bad_optimizer_settings_fail_clearly_when_the_module_is_made(name, arguments, message):
    if name not in OPTIMIZERS:
        with pytest.raises(ConfigError, match=message):
            make_optimizer(name, **arguments)
        return
    with pytest.raises(ConfigError, match=message):
        check_optimizer(make_optimizer(name, **arguments))
    with pytest.raises(ConfigError, match=message):
        CourseModule(optimizer=make_optimizer(name, **arguments))


def test_bad_scheduler_settings_fail_clearly():
    with pytest.raises(ConfigError, match="unknown scheduler 'cosin': choose one of constant, step, cosine"):
        make_schedule("cosin")
    with pytest.raises(ConfigError, match="Cosine: got an unexpected keyword argument 'gamma'; it takes warmup_steps"):
        CourseModule(scheduler=make_schedule("cosine", gamma=0.5))
    with pytest.raises(ConfigError, match="needs the run's length"):
        schedule_factor({"name": "cosine"}, total_steps=math.inf)
    with pytest.raises(ConfigError, match="must take \\(optimizer, total_steps"):
        CourseModule(scheduler=torch.optim.lr_scheduler.StepLR)


def schedule_factor(config: dict, total_steps: float):
    """factor(step) of the schedule `config` names, over a run of total_steps optimizer steps."""
    config = dict(config)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    return SCHEDULES[config.pop("name")](optimizer, total_steps, **config).with_warmup


@pytest.mark.parametrize(
    "config, total, expected",  # factor at steps 0, 10, 50, 99
    [
        ({"name": "constant"}, 100, [1, 1, 1, 1]),
        ({"name": "step", "step_size": 30, "gamma": 0.5}, 100, [1, 1, 0.5, 0.125]),
        ({"name": "step"}, 100, [1, 1, 0.1, 0.001]),  # step_size defaults to a third of the run
        ({"name": "cosine"}, 100, [1, (1 + math.cos(math.pi * 0.1)) / 2, 0.5, (1 + math.cos(math.pi * 0.99)) / 2]),
        ({"name": "cosine", "min_factor": 0.1}, 100, [1, 0.1 + 0.9 * (1 + math.cos(math.pi * 0.1)) / 2, 0.55, None]),
        ({"name": "inverse_time", "tau": 10}, 100, [1, 0.5, 1 / 6, 1 / 10.9]),
        ({"name": "inverse_time"}, 100, [1, 0.5, 1 / 6, 1 / 10.9]),  # tau defaults to a tenth of the run
        ({"name": "warmup_cosine"}, 100, [0.2, (1 + math.cos(math.pi * 5 / 95)) / 2, None, None]),
        ({"name": "constant", "warmup_steps": 20}, 100, [0.05, 0.55, 1, 1]),
        ({"name": "cosine", "warmup_steps": 10}, 110, [0.1, 1, (1 + math.cos(math.pi * 0.4)) / 2, None]),
        ({"name": "exponential", "gamma": 0.9}, 100, [1, 0.9**10, 0.9**50, 0.9**99]),
        ({"name": "exponential"}, 100, [1, 0.01**0.1, 0.1, 0.01**0.99]),  # reaches 0.01 at the end
        ({"name": "linear"}, 100, [1, 0.9, 0.5, 0.01]),
        ({"name": "linear", "warmup_steps": 10, "min_factor": 0.1}, 110, [0.1, 1, 1 - 0.9 * 0.4, None]),
        ({"name": "wsd"}, 100, [1, 1, 1, 1 - 19 / 20]),  # decays over the last 20% of the run
        ({"name": "wsd", "decay_fraction": 0.5, "warmup_steps": 10}, 110, [0.1, 1, 1, 1 - 39 / 50]),
    ],
)
def test_schedules_match_their_formulas(config, total, expected):
    factor = schedule_factor(config, total)
    for step, value in zip([0, 10, 50, 99], expected, strict=True):
        if value is not None:
            assert factor(step) == pytest.approx(value), f"step {step}"


@pytest.mark.parametrize("total", [100, 37])
def test_one_cycle_matches_torchs_one_cycle(total):
    model = nn.Linear(2, 1)
    reference_optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    reference = torch.optim.lr_scheduler.OneCycleLR(reference_optimizer, max_lr=1.0, total_steps=total)
    expected = []
    for _ in range(total):
        expected.append(reference_optimizer.param_groups[0]["lr"])
        reference_optimizer.step()
        reference.step()
    factor = schedule_factor({"name": "one_cycle"}, total)
    assert [factor(step) for step in range(total)] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_every_schedule_is_covered_by_a_formula_test():
    tested = {"constant", "step", "cosine", "inverse_time", "warmup_cosine", "exponential", "linear", "wsd",
              "one_cycle"}
    assert set(SCHEDULES) == tested, "add the new schedule to test_schedules_match_their_formulas"


class Regression(CourseModule):
    """A tiny model to check that the trainer steps the schedule once per optimizer step."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.layer = nn.Linear(2, 1)
        self.lrs = []

    def training_step(self, batch, batch_idx):
        self.lrs.append(self.optimizers().param_groups[0]["lr"])
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def train_dataloader(self):
        return DeviceBatches((torch.randn(40, 2), torch.randn(40, 1)), batch_size=8)  # 5 batches


def test_trainer_steps_the_schedule_per_optimizer_step():
    model = Regression(optimizer=make_optimizer("sgd", lr=0.1), scheduler=make_schedule("warmup_cosine", warmup_steps=3))
    trainer = L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model)
    factor = schedule_factor({"name": "warmup_cosine", "warmup_steps": 3}, total_steps=20)
    assert len(model.lrs) == 20
    assert model.lrs == pytest.approx([0.1 * factor(step) for step in range(20)])


def test_device_batches_cover_every_sample_once_per_epoch():
    x = torch.arange(10)
    batches = DeviceBatches((x, x * 2), batch_size=4, shuffle=True, seed=1)
    assert len(batches) == 3
    epoch0 = torch.cat([b[0] for b in batches])
    assert sorted(epoch0.tolist()) == list(range(10))
    assert all(torch.equal(b[1], b[0] * 2) for b in batches)  # tensors stay aligned
    assert torch.equal(torch.cat([b[0] for b in batches]), epoch0)  # same epoch, same order
    batches.sampler.set_epoch(1)
    assert not torch.equal(torch.cat([b[0] for b in batches]), epoch0)  # a new order each epoch
    assert len(DeviceBatches((x,), batch_size=4, drop_last=True)) == 2
    assert len(DeviceBatches((x,), batch_size=100)) == 1  # larger than the data: one full batch


def test_device_batches_shard_across_processes():
    x = torch.arange(12)
    shards = [torch.cat([b[0] for b in DeviceBatches((x,), 2, shuffle=True, rank=r, world_size=3)]) for r in range(3)]
    assert sorted(torch.cat(shards).tolist()) == list(range(12))


def test_split_indices_is_seeded_and_disjoint():
    kept, held = split_indices(100, 0.2, seed=3)
    assert len(held) == 20 and set(kept.tolist()).isdisjoint(held.tolist())
    assert torch.equal(held, split_indices(100, 20, seed=3)[1])
    with pytest.raises(ConfigError):
        split_indices(10, 10, seed=0)
