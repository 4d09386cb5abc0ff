"""Linear models, logistic regression, linear SVMs and MLPs on feature vectors.

    uv run python train.py fit --config configs/tabular.yaml            # logistic regression, breast cancer data
    uv run python train.py fit --config configs/tabular_synthetic.yaml  # least squares with a chosen condition number
    uv run python train.py fit --config configs/tabular_gd_vs_sgd.yaml --data.init_args.batch_size 10

Data (`source`): `synthetic` (a generated problem with chosen size, condition number, noise
and seed, which keeps its true parameters), a dataset bundled with scikit-learn (breast_cancer,
diabetes, wine, iris, digits: no download), or `csv` (a CSV file with a header row; `target`
names the column to predict, every other column must be numeric). Features are standardized
with the mean and standard deviation of the training split only.

The objective is the mean loss over the training set plus l2/2 ||w||^2 + l1 ||w||_1 over the
weights (never the biases). For convex objectives with a unique minimizer (squared or logistic
loss, linear model) the module solves the problem in float64 before training (Newton's method,
or FISTA when l1 > 0) and logs `val/dist_to_opt` (||theta - theta*||) and `train/excess_loss`
(objective on the whole training set minus its minimum) at every validation.

A classifier also logs `train/acc` (the fraction of each epoch's training samples it classified
correctly, as it went), `val/acc` and `val/auroc`. With the data's `test_every_epoch: true`, every
validation evaluates the test split too: `test/loss`, `test/acc`, ... curves, as lecture 0 plots.
"""

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import AUROC, Accuracy
from torchmetrics.regression import MeanSquaredError, R2Score

from ..config_errors import ConfigError, check_arguments
from ..data import (
    DeviceBatches,
    check_holdout,
    check_whole_numbers,
    data_device,
    device_batches,
    holdout_size,
    split_indices,
)
from ..fista import fista
from ..module import CourseModule, OptimizerFactory, ScheduleFactory
from ..nets.mlp import MLP
from .tabular_sources import SKLEARN_DATASETS, SOURCES, TASKS, load_csv, load_sklearn, synthetic


class TabularDataModule(L.LightningDataModule):
    """Train, validation and test splits of a feature matrix, standardized, held on the device."""

    # What the shared code of a run learns of this data (see run/families.py):
    model_links = ("num_features", "num_classes")  # handed to the model's arguments of these names
    resume_may_change = {"test_every_epoch"}  # a resume may change these

    @staticmethod
    def samples_per_step(settings: dict) -> int | None:
        """Training samples in one step (of one device): the whole training set with full_batch,
        whose size is known in advance for synthetic data only (None otherwise), else batch_size."""
        if settings.get("full_batch"):
            return settings.get("n_samples") if settings.get("source") == "synthetic" else None
        return settings.get("batch_size")

    @staticmethod
    def data_file(settings: dict) -> str | None:
        """The CSV file a run reads, which names its folder (runs/tabular_<file name>/); None for
        the named datasets, which keep the config's name."""
        return settings.get("csv_path") if settings.get("source") == "csv" else None

    def __init__(
        self,
        source: str = "breast_cancer",  # synthetic, csv, or breast_cancer, diabetes, wine, iris, digits (scikit-learn)
        task: str = "binary",  # synthetic and csv: regression, binary or multiclass (scikit-learn sets its own)
        csv_path: str = "data/data.csv",  # csv: the file (a header row, numeric feature columns)
        target: str = "target",  # csv: the name of the column to predict
        n_samples: int = 500,  # synthetic: training samples (validation and test are drawn besides)
        n_features: int = 20,  # synthetic: number of features d
        condition_number: float = 10.0,  # synthetic: of X^T X / n on the training set (eigenvalues 1/cond..1)
        noise: float = 0.1,  # synthetic: standard deviation of the noise added to the targets or scores
        n_classes: int = 3,  # synthetic multiclass: number of classes
        data_seed: int = 0,  # synthetic: seed of the design, true parameters and noise
        standardize: bool = True,  # features to mean 0, std 1 on the training split (false: keep a synthetic design's spectrum)
        val_size: int | float = 0.2,  # validation samples: a fraction below 1 (e.g. 0.2), or a count (e.g. 100)
        test_size: int | float = 0.2,  # test samples: a fraction below 1, or a count (0: no test split)
        split_seed: int = 0,  # seed of the train/validation/test split
        batch_size: int = 64,  # training mini-batch size
        full_batch: bool = False,  # true: each step uses the whole training set (SGD becomes gradient descent)
        test_every_epoch: bool = False,  # also test at every validation of fit: test/ curves (choose settings on val/ only)
    ):
        super().__init__()
        if source not in SOURCES:
            raise ConfigError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
        check_holdout("val_size", val_size)
        check_holdout("test_size", test_size, minimum=0)  # 0: no test split
        check_whole_numbers(batch_size=batch_size)
        if test_every_epoch and not test_size:
            raise ConfigError("test_every_epoch needs a test split, and test_size is 0: set test_size (e.g. 0.2) "
                              "or test_every_epoch: false")
        if source == "synthetic":
            check_whole_numbers(n_samples=n_samples, n_features=n_features)
            check_whole_numbers(minimum=2, n_classes=n_classes)
            if not noise >= 0:
                raise ConfigError(f"noise {noise}: give a standard deviation >= 0 (e.g. 0.1)")
        self.save_hyperparameters()
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.truth: dict[str, torch.Tensor] = {}  # synthetic: the true weight and bias

    @property
    def task(self) -> str:
        if self.hparams.source in SKLEARN_DATASETS:
            return {0: "regression", 2: "binary"}.get(SKLEARN_DATASETS[self.hparams.source][1], "multiclass")
        return self.hparams.task

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 for a real-valued (regression) target."""
        hp = self.hparams
        if hp.source in SKLEARN_DATASETS:
            return SKLEARN_DATASETS[hp.source][1]
        if self.task == "regression":
            return 0
        if hp.source == "synthetic":
            return 2 if self.task == "binary" else hp.n_classes
        self.load()
        return self.csv_classes

    @property
    def num_features(self) -> int:
        hp = self.hparams
        if hp.source == "synthetic":
            return hp.n_features
        return self.load()[0][0].shape[1]

    def load(self):
        """{split: (features float64, targets)} before standardization, cached."""
        if getattr(self, "raw", None) is not None:
            return self.raw
        hp = self.hparams
        if hp.source == "synthetic":
            draw = lambda n, seed: synthetic(self.task, n, hp.n_features, hp.condition_number,  # noqa: E731
                                             hp.noise, hp.n_classes, seed)
            x, y, self.truth = draw(hp.n_samples, hp.data_seed)
            n_val = holdout_size("val_size", hp.val_size, hp.n_samples)  # fractions are of n_samples
            n_test = holdout_size("test_size", hp.test_size, hp.n_samples, minimum=0)
            # validation and test: fresh samples from the same distribution (same design spectrum and truth)
            x_out, y_out = self.fresh_samples(x, n_val + n_test)
            self.raw = ((x, y), (x_out[:n_val], y_out[:n_val]), (x_out[n_val:], y_out[n_val:]))
            return self.raw
        x, y = load_sklearn(hp.source) if hp.source in SKLEARN_DATASETS else load_csv(hp.csv_path, hp.target, hp.task)
        if hp.source == "csv" and self.task != "regression":
            self.csv_classes = int(y.max()) + 1
            if self.task == "binary" and self.csv_classes != 2:
                raise ConfigError(f"{hp.csv_path}: column {hp.target!r} has {self.csv_classes} classes: use task: multiclass")
        rest, test = split_indices(len(y), hp.test_size, hp.split_seed, "test_size", minimum=0)
        n_val = holdout_size("val_size", hp.val_size, len(y))  # a fraction of all the samples, like test_size
        if len(rest) - n_val < 2:  # the standard deviation of the training features needs two samples
            raise ConfigError(f"val_size {hp.val_size} and test_size {hp.test_size} hold out {n_val} + {len(test)} of "
                              f"the {len(y)} samples, leaving {max(0, len(rest) - n_val)} to train on: make them "
                              "smaller (e.g. 0.2 and 0.2)")
        train, val = rest[n_val:], rest[:n_val]
        self.raw = ((x[train], y[train]), (x[val], y[val]), (x[test], y[test]))
        return self.raw

    def fresh_samples(self, x_train: torch.Tensor, count: int):
        """`count` new synthetic samples: features with the training design's covariance, targets
        from the same true parameters and noise."""
        hp = self.hparams
        generator = torch.Generator().manual_seed(hp.data_seed + 1)
        covariance = x_train.T @ x_train / len(x_train)
        root = torch.linalg.cholesky(covariance)
        x = torch.randn(count, hp.n_features, generator=generator, dtype=torch.float64) @ root.T
        scores = x @ self.truth["weight"] + self.truth["bias"]
        scores = scores + hp.noise * torch.randn(scores.shape, generator=generator, dtype=torch.float64)
        y = {"regression": scores[:, 0], "binary": (scores[:, 0] > 0).long(), "multiclass": scores.argmax(dim=1)}
        return x, y[self.task]

    def setup(self, stage: str | None = None):
        if self.splits:
            return
        trainer = self.trainer
        # The data follow the module's precision: float64 for precision 64-true, else float32.
        dtype = torch.float64 if trainer and str(trainer.precision).startswith("64") else torch.float32
        device = data_device(self)
        splits = dict(zip(("train", "val", "test"), self.load(), strict=True))
        mean, std = torch.zeros(()), torch.ones(())
        if self.hparams.standardize:  # statistics of the training split only
            mean = splits["train"][0].mean(dim=0)
            std = splits["train"][0].std(dim=0)
            # A column constant on the training split (a pixel always blank in digits) is only centred:
            # dividing by its zero spread would blow any other value in validation or test up to 1e12.
            std = torch.where(std > 1e-12, std, torch.ones_like(std))
        for name, (x, y) in splits.items():
            y = y.to(dtype) if self.task == "regression" else y
            self.splits[name] = (((x - mean) / std).to(device, dtype), y.to(device))
        self.shuffle_seed = int(torch.randint(0, 2**31 - 1, ()))  # from the global seed, as in vision

    def batches(self, split: str, training: bool = False) -> DeviceBatches:
        full = not training or self.hparams.full_batch
        batch_size = max(1, len(self.splits[split][1])) if full else self.hparams.batch_size  # test_size 0: empty
        return device_batches(self, self.splits[split], batch_size, training=training and not full)

    def train_dataloader(self):
        return self.batches("train", training=True)

    def val_dataloader(self):
        if self.hparams.test_every_epoch and self.trainer and self.trainer.state.fn == "fit":
            return [self.batches("val"), self.batches("test")]  # the module logs the second under test/
        return self.batches("val")

    def test_dataloader(self):
        return self.batches("test")

    def predict_dataloader(self):
        return self.batches("test")


def data_loss(kind: str, outputs: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean loss of the outputs: squared error, logistic (binary or multinomial) or hinge."""
    if kind == "squared":
        return F.mse_loss(outputs[:, 0], targets)
    if num_classes == 2:  # one score per sample; labels 0/1
        if kind == "logistic":
            return F.binary_cross_entropy_with_logits(outputs[:, 0], targets.to(outputs.dtype))
        return F.relu(1 - (2 * targets.to(outputs.dtype) - 1) * outputs[:, 0]).mean()  # hinge, labels +-1
    if kind == "logistic":
        return F.cross_entropy(outputs, targets)
    return F.multi_margin_loss(outputs, targets)  # multiclass hinge (Weston-Watkins)


LOSSES = ("squared", "logistic", "hinge")
NETS = ("linear", "mlp")


class TabularModel(CourseModule):
    """A linear model or an MLP trained on mean loss + l2/2 ||w||^2 + l1 ||w||_1."""

    metrics_higher_is_better = ("acc", "auroc", "r2")  # loss, mse and dist_to_opt: best at their minimum

    def __init__(
        self,
        loss: str = "logistic",  # squared (regression), logistic (binary or multinomial) or hinge (linear SVM)
        net: str = "linear",  # linear, or mlp (see src/<package>/nets/mlp.py)
        net_args: dict[str, Any] | None = None,  # mlp arguments, e.g. {widths: [64, 64], activation: relu}
        l2: float = 0.0,  # penalty l2/2 ||w||^2 in the objective (weights only, never biases)
        l1: float = 0.0,  # penalty l1 ||w||_1 in the objective (weights only)
        optimizer: OptimizerFactory | None = None,  # --optimizer NAME (see optim/choices.py); None: adam
        scheduler: ScheduleFactory | None = None,  # --scheduler NAME (see optim/schedules.py); None: constant
        param_groups: list[dict[str, Any]] | None = None,  # per-parameter settings, e.g. [{match: "*bias", lr: 0.1}]: every bias
        num_features: int | None = None,  # filled in from the data by train.py
        num_classes: int | None = None,  # filled in from the data by train.py (0: regression)
    ):
        super().__init__(optimizer, scheduler, param_groups)
        self.save_hyperparameters()
        if num_features is None or num_classes is None:
            raise ConfigError("TabularModel needs num_features and num_classes; train.py takes them from the data. "
                              "In your own code pass them, e.g. TabularModel(num_features=30, num_classes=2)")
        if loss not in LOSSES or net not in NETS:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)} and net one of {', '.join(NETS)}; "
                              f"got loss {loss!r}, net {net!r}")
        if (loss == "squared") != (num_classes == 0):
            raise ConfigError(f"loss {loss!r} does not fit this data ({num_classes} classes): use squared for a "
                              "real-valued target (task: regression), logistic or hinge for classes")
        if l1 < 0 or l2 < 0:
            raise ConfigError(f"l1 and l2 must be >= 0, got {l1}, {l2}")
        outputs = num_classes if num_classes > 2 else 1
        if net == "linear":
            if net_args:
                raise ConfigError("net_args are for net: mlp; the linear model takes none")
            self.net = nn.Linear(num_features, outputs)
            nn.init.zeros_(self.net.weight), nn.init.zeros_(self.net.bias)  # start at 0, as the lectures do
        else:
            check_arguments(MLP, net_args or {}, "net 'mlp'", skip=("input_shape", "num_outputs"))
            self.net = MLP((num_features,), outputs, **(net_args or {}))
        self.metrics = nn.ModuleDict({stage: self.make_metrics(num_classes) for stage in ("val", "test")})
        self.optimum: list[torch.Tensor] | None = None  # theta* and the optimal objective, once solved

    @staticmethod
    def make_metrics(num_classes: int) -> MetricCollection:
        if num_classes == 0:
            return MetricCollection({"mse": MeanSquaredError(), "r2": R2Score()})
        task = "binary" if num_classes == 2 else "multiclass"
        return MetricCollection({"acc": Accuracy(task, num_classes=num_classes),
                                 "auroc": AUROC(task, num_classes=num_classes)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def penalty(self, weights: list[torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for weight in weights:
            if self.hparams.l2:
                total = total + 0.5 * self.hparams.l2 * (weight**2).sum()
            if self.hparams.l1:
                total = total + self.hparams.l1 * weight.abs().sum()
        return total

    def weights(self) -> list[torch.Tensor]:
        return [p for p in self.net.parameters() if p.ndim > 1]

    def objective(self, x, y, outputs: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss on (x, y) plus the penalties: what training minimizes. `outputs`: self(x), if computed."""
        outputs = self(x) if outputs is None else outputs
        return data_loss(self.hparams.loss, outputs, y, self.hparams.num_classes) + self.penalty(self.weights())

    def scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """What the metrics compare with the targets: predictions, probabilities or class scores."""
        if self.hparams.num_classes == 0:
            return outputs[:, 0]
        return torch.sigmoid(outputs[:, 0]) if self.hparams.num_classes == 2 else outputs.softmax(dim=1)

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """Predicted classes: score > 0 with two classes (one score per sample), else the highest score."""
        return (outputs[:, 0] > 0).long() if self.hparams.num_classes == 2 else outputs.argmax(dim=1)

    def loss(self, batch) -> torch.Tensor:
        """The training objective on one batch, penalties included (used by the diagnostics)."""
        x, y = batch
        return self.objective(x, y)

    def training_step(self, batch, batch_idx):
        x, y = batch
        outputs = self(x)
        loss = self.objective(x, y, outputs)
        self.log_step("train/loss", loss, prog_bar=True)  # on logging steps only: see module.py
        if self.hparams.num_classes:  # classification: the fraction of this epoch's samples classified correctly
            self.log_epoch_mean("train/acc", (self.predictions(outputs) == y).sum(), len(y))
        return loss

    def on_before_optimizer_step(self, optimizer):
        if not self.writes_logs():
            return
        norms = [torch.linalg.vector_norm(p.grad) for p in self.parameters() if p.grad is not None]
        self.log_step("train/grad_norm", torch.linalg.vector_norm(torch.stack(norms)))

    def evaluate(self, batch, stage: str, prog_bar: bool = True):
        x, y = batch
        outputs = self(x)
        loss = data_loss(self.hparams.loss, outputs, y, self.hparams.num_classes)
        # add_dataloader_idx=False: test/acc stays test/acc when validation also runs the test split;
        # sync_dist: the mean over every process's samples (under DDP; summed once, at the epoch's end).
        self.log(f"{stage}/loss", loss, prog_bar=prog_bar, add_dataloader_idx=False, sync_dist=True)
        self.metrics[stage].update(self.scores(outputs), y)
        self.log_dict({f"{stage}/{name}": metric for name, metric in self.metrics[stage].items()}, add_dataloader_idx=False)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        if dataloader_idx == 0:
            self.evaluate(batch, "val")
        else:  # the test split, with data.test_every_epoch: test/ curves, kept out of the progress bar
            self.evaluate(batch, "test", prog_bar=False)

    def test_step(self, batch, batch_idx):
        self.evaluate(batch, "test")

    def predict_step(self, batch, batch_idx):
        outputs = self(batch[0])
        return outputs[:, 0] if self.hparams.num_classes == 0 else self.scores(outputs)

    # --- the exact optimum (linear model, squared or logistic loss) ---

    def setup(self, stage: str):
        data = getattr(self.trainer, "datamodule", None)
        if self.optimum is None and data is not None and hasattr(data, "splits") and "train" in data.splits:
            self.optimum = self.solve(*data.splits["train"])

    def solve(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor] | None:
        """[weight*, bias*, objective*] minimizing the training objective, solved in float64; None
        when it is not unique or not smooth enough here (MLP, hinge loss, separable classes)."""
        hp = self.hparams
        if hp.net != "linear" or hp.loss == "hinge":
            return None
        x, y = x.double().cpu(), (y.double() if hp.num_classes == 0 else y).cpu()
        outputs = self.net.weight.shape[0]
        shapes = [(outputs, x.shape[1]), (outputs,)]

        def split(theta):
            return theta[: outputs * x.shape[1]].reshape(shapes[0]), theta[outputs * x.shape[1] :]

        def smooth(theta):  # mean loss + l2 penalty
            weight, bias = split(theta)
            return data_loss(hp.loss, x @ weight.T + bias, y, hp.num_classes) + 0.5 * hp.l2 * (weight**2).sum()

        theta = torch.zeros(outputs * (x.shape[1] + 1), dtype=torch.float64)
        if hp.l1 == 0:
            theta = newton(smooth, theta)
        else:  # FISTA at step 1/L; L bounds the curvature: the Hessian of the multinomial loss at 0
            # is K/2 times below its largest value. l1 weighs the weights, never the biases.
            bound = max(1.0, hp.num_classes / 2) * torch.linalg.eigvalsh(torch.func.hessian(smooth)(theta))[-1]
            l1 = torch.zeros_like(theta)
            l1[: outputs * x.shape[1]] = hp.l1
            theta = fista(torch.func.grad(smooth), theta, 1.0 / bound, l1)
        if theta is None:
            return None
        weight, bias = split(theta)
        if hp.loss == "logistic" and hp.l2 == 0:
            predictions = (x @ weight.T + bias).argmax(1) if outputs > 1 else (x @ weight.T + bias)[:, 0] > 0
            if bool((predictions.long() == y).all()):
                return None  # separable classes: the loss tends to 0 as ||w|| grows, no minimizer
        value = smooth(theta) + hp.l1 * weight.abs().sum()
        return [weight, bias, value]

    def on_validation_epoch_end(self):
        """Log the distance to theta* and the excess training objective (full training set)."""
        if self.optimum is None or self.trainer.sanity_checking:
            return
        weight, bias, value = (t.to(self.device, self.dtype) for t in self.optimum)
        distance = torch.sqrt(((self.net.weight - weight) ** 2).sum() + ((self.net.bias - bias) ** 2).sum())
        self.log("val/dist_to_opt", distance)
        x, y = self.trainer.datamodule.splits["train"]
        with torch.no_grad():
            self.log("train/excess_loss", self.objective(x, y) - value)


def newton(function, theta: torch.Tensor, tolerance: float = 1e-10, max_steps: int = 100):
    """Minimize a smooth convex `function` by Newton's method with backtracking; None if the
    gradient does not vanish (no minimizer, e.g. separable classes without an l2 penalty)."""
    for _ in range(max_steps):
        gradient = torch.func.grad(function)(theta)
        if torch.linalg.vector_norm(gradient) < tolerance:
            return theta
        hessian = torch.func.hessian(function)(theta)
        direction = torch.linalg.lstsq(hessian, -gradient[:, None]).solution[:, 0]
        step, value = 1.0, function(theta)
        while function(theta + step * direction) > value + 1e-4 * step * (gradient @ direction) and step > 1e-10:
            step /= 2
        theta = theta + step * direction
    return None

