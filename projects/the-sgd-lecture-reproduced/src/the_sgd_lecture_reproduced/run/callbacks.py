"""Callbacks that train.py adds to every run.

- OptimizerModes: switches optimizers with train/eval weights (Schedule-Free) between them.
- ProgressBar: Lightning's progress bar, redrawn less often.
- Diagnostics: optimization diagnostics, logged to TensorBoard: why a run behaves as it does.
- SkipEmptyHooks: spares Lightning the calls to hooks that callbacks leave empty.

train.py adds one Diagnostics callback to every run; its switches are the `diagnostics:`
section of a config (see `uv run python train.py fit --help`), e.g.

    diagnostics:
      every_n_steps: 50              # gradient/parameter/update norms, lr, momentum, throughput
      sharpness_every_n_steps: 200   # top Hessian eigenvalue (0 = off)
      noise_scale_every_n_steps: 200 # gradient noise scale (0 = off)
      stop_on_divergence: true       # end the run cleanly when the loss or the weights blow up

Nothing is computed, and the device is never synchronised, on steps where nothing is logged
(except the first step, whose loss is the reference for divergence: see Diagnostics.check).
The sharpness and noise scale need the module's `loss(batch)` (see module.py).
"""

import math
import sys
import time

import torch
from lightning.fabric.utilities.apply_func import apply_to_collection
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.data import extract_batch_size
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..config_errors import ConfigError
from ..module import writes_logs


class Diverged(RuntimeError):
    """The loss or the weights blew up (see Diagnostics.check). train.py exits with status 0."""


def batch_size_of(batch) -> int:
    """Samples in a batch; 0 for batches without one (the objective family's noise draws)."""
    try:
        return extract_batch_size(batch)
    except Exception:  # Lightning finds no tensor with a batch dimension in it
        return 0


# The hooks Lightning calls at every batch, for every callback, whether it defines them or not.
BATCH_HOOKS = [f"on_{stage}_batch_{end}" for stage in ("train", "validation", "test", "predict") for end in ("start", "end")]
BATCH_HOOKS += ["on_before_backward", "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad"]


def skip_empty_hooks(callbacks) -> None:
    """Set each per-batch hook that a callback leaves as Callback's empty one to None.

    Lightning calls every per-batch hook of every callback (about 50 calls a step for train.py's
    8 callbacks), each inside a profiler context, which together cost about a tenth of a small
    model's step; it skips a hook that is not callable (trainer/call.py), which is what None is.
    """
    for callback in callbacks:
        for hook in BATCH_HOOKS:
            if getattr(type(callback), hook) is getattr(Callback, hook):
                setattr(callback, hook, None)


class SkipEmptyHooks(Callback):
    """Calls skip_empty_hooks on every callback of the run once they are all known: at `setup`,
    after Lightning has added those the module returns from `configure_callbacks` (the diffusion
    module's EMA, for example), which train.py's own list does not have yet."""

    def setup(self, trainer, pl_module, stage):
        skip_empty_hooks(trainer.callbacks)


def global_norm(tensors) -> torch.Tensor:
    """The Euclidean norm of all `tensors` taken together."""
    norms = [torch.linalg.vector_norm(t.detach().float()) for t in tensors]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


def top_hessian_eigenvalue(loss_fn, params: list[torch.Tensor], iterations: int = 20, seed: int = 0) -> float:
    """The Hessian eigenvalue of largest magnitude of loss_fn() at `params`, by power iteration
    on Hessian-vector products (double backpropagation; the Hessian is never formed)."""
    # Fused attention kernels have no second derivative: use the plain ("math") one here.
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
        grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
        generator = torch.Generator(device=params[0].device).manual_seed(seed)
        vector = [torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype) for p in params]
        eigenvalue = torch.zeros(())
        for _ in range(iterations):
            norm = global_norm(vector)
            vector = [v / norm for v in vector]
            product = torch.autograd.grad(grads, params, grad_outputs=vector, retain_graph=True)
            eigenvalue = sum((h * v).sum() for h, v in zip(product, vector, strict=True))  # Rayleigh quotient
            vector = [h.detach() for h in product]
    return float(eigenvalue)


def noise_scale_parts(loss_fn, batch, params: list[torch.Tensor], pieces: int) -> tuple[float, float]:
    """Unbiased estimates of |G|^2 (the true gradient's squared norm) and tr(Sigma) (the
    per-example gradient covariance) from one batch cut into `pieces` equal micro-batches
    (McCandlish et al., 2018, appendix A). Their ratio is the "simple" noise scale."""
    size = batch_size_of(batch)
    small = size // pieces
    if small < 1:
        raise ConfigError(f"noise scale: a batch of {size} cannot be cut into {pieces} micro-batches")
    small_norms, gradients = [], []
    with torch.enable_grad():
        for i in range(pieces):
            piece = apply_to_collection(batch, torch.Tensor, lambda t, i=i: t[i * small : (i + 1) * small])
            gradient = torch.autograd.grad(loss_fn(piece), params)
            small_norms.append(float(global_norm(gradient)) ** 2)
            gradients.append([g.detach() for g in gradient])
    big = small * pieces
    big_norm = float(global_norm([sum(parts) / pieces for parts in zip(*gradients, strict=True)])) ** 2
    small_norm = sum(small_norms) / pieces
    true_norm = (big * big_norm - small * small_norm) / (big - small)
    trace = (small_norm - big_norm) / (1 / small - 1 / big)
    return true_norm, trace


class Diagnostics(Callback):
    """Logs optimizer statistics every `every_n_steps` optimizer steps, optionally the
    sharpness and the gradient noise scale, and stops a diverging run cleanly."""

    def __init__(
        self,
        every_n_steps: int | None = None,  # None: the trainer's log_every_n_steps; 0: off
        sharpness_every_n_steps: int = 0,  # top Hessian eigenvalue every this many steps (0: off)
        sharpness_iterations: int = 20,  # power iterations per estimate
        noise_scale_every_n_steps: int = 0,  # gradient noise scale every this many steps (0: off)
        noise_scale_pieces: int = 4,  # micro-batches the batch is cut into for it
        noise_scale_smoothing: float = 0.9,  # EMA factor applied to the noise scale's two parts
        stop_on_divergence: bool = True,  # end the run when the loss or the weights blow up (see check)
        divergence_factor: float = 1e4,  # "blow up": |loss| above this many times the first step's (at least 1)
    ):
        self.every_n_steps = every_n_steps
        self.sharpness_every = sharpness_every_n_steps
        self.sharpness_iterations = sharpness_iterations
        self.noise_every = noise_scale_every_n_steps
        self.noise_pieces = noise_scale_pieces
        self.noise_smoothing = noise_scale_smoothing
        self.stop_on_divergence = stop_on_divergence
        self.divergence_factor = divergence_factor
        self.noise_parts = None  # EMA of (|G|^2, tr Sigma)
        self.before_step = None  # parameters before a logged step, for the update size
        self.first_loss = None  # the fresh model's loss (at the first step): the reference for divergence
        self.last_loss = None  # the latest training loss, still on the device
        self.unchecked_losses = []  # the losses of the steps since the last check, on the device (no sync)
        self.weights_checked_at = None  # the global step of the last check of the weights
        self.timer = None  # (time, global step) at the previous logged step

    def due(self, trainer, every: int | None) -> bool:
        """Whether the optimizer step being taken is measured: every `every` steps (None: the trainer's
        log_every_n_steps), the 10th, 20th, ... for 10: the steps whose train/ metrics are logged, so
        that they and the diagnostics cost one logging step, not two (3 ms on a CPU where a step is 1)."""
        every = trainer.log_every_n_steps if every is None else every
        return bool(every) and (trainer.global_step + 1) % every == 0

    def write(self, trainer, metrics: dict) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def setup(self, trainer, pl_module, stage):
        needs_loss = self.sharpness_every or self.noise_every
        if needs_loss and not callable(getattr(pl_module, "loss", None)):
            raise ConfigError(f"sharpness and noise scale need {type(pl_module).__name__}.loss(batch)")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if not self.due(trainer, self.every_n_steps):
            return
        groups = optimizer.param_groups
        # Per parameter group (decay, no_decay, matrices, ...) when there are several; with one,
        # opt/lr (logged by the module) and opt/grad_norm say it all.
        names = [f"/{group.get('name', f'group{i}')}" if len(groups) > 1 else "" for i, group in enumerate(groups)]
        metrics = {}
        for name, group in zip(names, groups, strict=True):
            if name:
                metrics[f"opt/lr{name}"] = float(group["lr"])
            momentum = group.get("momentum", group.get("betas", (None,))[0])
            if momentum is not None:
                metrics[f"opt/momentum{name}"] = float(momentum)
        norms = [global_norm([p.grad for p in group["params"] if p.grad is not None]) for group in groups]
        norms = torch.stack([norm.to(pl_module.device) for norm in norms]).tolist()  # one synchronisation for all
        if len(groups) > 1:
            metrics |= {f"opt/grad_norm{name}": norm for name, norm in zip(names, norms, strict=True)}
        metrics["opt/grad_norm"] = math.sqrt(sum(norm**2 for norm in norms))
        self.write(trainer, metrics)
        self.before_step = [p.detach().clone() for p in pl_module.parameters() if p.requires_grad]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        measured = self.before_step is not None  # the step just taken was measured (see due)
        if loss is not None:
            self.last_loss = loss.detach()
            # A spike between two checks counts too: the next check looks at every loss since the
            # last (kept in a list: no synchronisation, no computation at each step).
            self.unchecked_losses.append(self.last_loss)
            if len(self.unchecked_losses) >= 1000:  # checks far apart (no logging): keep their largest only
                self.unchecked_losses = [torch.stack(self.unchecked_losses).abs().max()]
            # The loss goes to the host then anyway (a measured step checks it with the weights below).
            # (the optimizer has stepped: trainer.global_step counts the step just taken)
            if (self.first_loss is None or writes_logs(trainer, trainer.global_step - 1)) and not measured:
                self.check(trainer)
        if measured:
            params = [p.detach() for p in pl_module.parameters() if p.requires_grad]
            update = global_norm([p - b for p, b in zip(params, self.before_step, strict=True)])
            param_norm = global_norm(params)
            param_norm, ratio = torch.stack([param_norm, update / param_norm.clamp_min(1e-12)]).tolist()
            self.write(trainer, {"opt/param_norm": param_norm, "opt/update_ratio": ratio})
            self.before_step = None
            self.check(trainer, param_norm=param_norm)
            self.weights_checked_at = trainer.global_step  # a validation right after need not check them again
            self.log_throughput(trainer, pl_module, batch)
        if self.sharpness_every and trainer.global_step % self.sharpness_every == 0:
            params = [p for p in pl_module.parameters() if p.requires_grad]
            value = top_hessian_eigenvalue(lambda: pl_module.loss(batch), params, self.sharpness_iterations)
            self.write(trainer, {"opt/sharpness": value})
        if self.noise_every and trainer.global_step % self.noise_every == 0:
            self.log_noise_scale(trainer, pl_module, batch)

    def log_throughput(self, trainer, pl_module, batch):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()  # once per logged step: the timing must include queued work
        now = time.perf_counter()
        if self.timer is not None:
            seconds, steps = now - self.timer[0], trainer.global_step - self.timer[1]
            samples = steps * batch_size_of(batch) * trainer.accumulate_grad_batches  # this batch's size for them all
            self.write(trainer, {"perf/samples_per_sec": samples / seconds, "perf/step_time": seconds / steps})
        self.timer = (now, trainer.global_step)

    def log_noise_scale(self, trainer, pl_module, batch):
        params = [p for p in pl_module.parameters() if p.requires_grad]
        try:
            parts = noise_scale_parts(pl_module.loss, batch, params, self.noise_pieces)
        except ConfigError as error:  # this batch cannot be split: say so once, and go on training
            rank_zero_warn(f"gradient noise scale switched off: {error}")
            self.noise_every = 0
            return
        if self.noise_parts is None:
            self.noise_parts = parts
        else:
            self.noise_parts = tuple(self.noise_smoothing * old + (1 - self.noise_smoothing) * new
                                     for old, new in zip(self.noise_parts, parts, strict=True))
        true_norm, trace = self.noise_parts
        if true_norm > 0:
            self.write(trainer, {"opt/noise_scale": trace / true_norm})

    # Divergence. Checked where the numbers are on the host anyway: the first step (whose loss is
    # the reference), every step that writes logs, the parameter norm of the diagnostics' steps,
    # and before every validation and at every epoch's end, that is before every checkpoint.
    def on_validation_start(self, trainer, pl_module):
        if trainer.state.fn == "fit":
            self.check_loss_and_weights(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self.check_loss_and_weights(trainer, pl_module)

    def check_loss_and_weights(self, trainer, pl_module) -> None:
        # Once per step: a validation at an epoch's end is followed by the epoch end, with no step between.
        if self.stop_on_divergence and self.last_loss is not None and trainer.global_step != self.weights_checked_at:
            self.weights_checked_at = trainer.global_step
            params = [p for p in pl_module.parameters() if p.requires_grad]
            self.check(trainer, param_norm=float(global_norm(params)))

    def state_dict(self):
        return {"first_loss": self.first_loss}  # a resumed run keeps the fresh model's loss as reference

    def load_state_dict(self, state_dict):
        self.first_loss = state_dict.get("first_loss")

    def check(self, trainer, param_norm: float | None = None) -> None:
        """Raise Diverged if the latest training loss, or the weights (`param_norm`), blew up:

        - a loss or a weight that is not a finite number. Non-finite gradients show up here too,
          in the weights the optimizer step made of them (in fp16 mixed precision, a step with
          non-finite gradients is skipped on purpose, and is no divergence);
        - |loss| above divergence_factor (default 1e4) x max(|first loss|, 1). The first loss is the
          fresh model's, at the first training step: the loss of knowing nothing (log(number of
          classes) for a classifier, f(x0) for an objective). Runs that learn stay far below: the
          default experiments rise at most 7x above it, early on, and a spike that the run
          recovers from stays well below too. A divergence grows geometrically and passes 1e4
          within steps (SGD at lr 10 on the digits: 2.3 at step 0, 4.7e7 at step 9). The floor of
          1 keeps a run whose first loss is about 0 (started at a minimum) from being flagged for
          a small rise.
        """
        if not self.stop_on_divergence or self.last_loss is None:
            return
        # The one synchronisation of a check: the latest loss and the largest since the last check.
        recent = torch.stack(self.unchecked_losses or [self.last_loss]).float().abs().max()
        loss, peak = torch.stack([self.last_loss.float(), recent]).tolist()
        self.unchecked_losses = []
        if self.first_loss is None:
            self.first_loss = loss
        limit = self.divergence_factor * max(abs(self.first_loss), 1.0)
        if not math.isfinite(loss):
            reason = f"loss {loss}"
        elif not math.isfinite(peak) or peak > limit:
            reason = (f"loss reached {peak:.3g}, over {self.divergence_factor:g} x the first step's loss "
                      f"{self.first_loss:.3g}")
        elif param_norm is not None and not math.isfinite(param_norm):
            reason = "weights that are not finite numbers"
        else:
            reason = None
        # In a run on several processes, one that diverges stops them all (none waits for it forever).
        if not trainer.strategy.reduce_boolean_decision(reason is not None, all=False):
            return
        self.write(trainer, {"diverged": 1.0})
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        # The best checkpoint's file and last.ckpt (see checkpoints.py), where they were written.
        saved = sorted({path for c in trainer.callbacks for path in (getattr(c, "best_model_path", ""),
                                                                    getattr(c, "last_path", "")) if path})
        kept = f"its checkpoints from before are kept: {', '.join(saved)}" if saved else "it had saved no checkpoint yet"
        raise Diverged(
            f"the loss diverged by step {trainer.global_step} ({reason or 'on another process'}, learning rate "
            f"{lr:.3g}). The run stopped; {kept}. Try a smaller learning rate, "
            "a warmup (scheduler warmup_steps), or gradient clipping (trainer.gradient_clip_val: 1.0)."
        )


class QuietTqdm(Tqdm):
    """Lightning's tqdm bar, redrawn at most every `every` seconds (and when it closes)."""

    every = 0.1
    drawn_at = float("-inf")

    def due(self) -> bool:
        """Whether a redraw now would be shown (then the metrics are worth reading for it)."""
        return time.monotonic() - self.drawn_at >= self.every

    def refresh(self, *args, **kwargs):
        if self.due():
            self.drawn_at = time.monotonic()
            super().refresh(*args, **kwargs)


class ProgressBar(TQDMProgressBar):
    """Lightning's progress bar, redrawn at most 10 times a second while training, and with no
    bar of its own for a short validation (10 batches or fewer) between training epochs: its
    results show on the training bar.

    Lightning's own redraws several times a step and epoch and reads the logged metrics (from the
    GPU) each time: for the small defaults, whose epochs take milliseconds, that cost more than
    training. train.py puts this one in place of Lightning's, TQDM or Rich;
    `trainer.enable_progress_bar: false` still hides it.
    """

    quiet_validation = False  # this validation has no bar

    def init_train_tqdm(self) -> Tqdm:
        # Lightning's training bar (TQDMProgressBar.init_train_tqdm), redrawn less often
        return QuietTqdm(desc=self.train_description, position=2 * self.process_position, disable=self.is_disabled,
                         leave=True, dynamic_ncols=True, file=sys.stdout, smoothing=0, bar_format=self.BAR_FORMAT)

    def redraw_due(self) -> bool:
        return not self.train_progress_bar.disable and self.train_progress_bar.due()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.redraw_due():
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        else:
            self.train_progress_bar.n = batch_idx + 1  # counted, drawn later

    def on_train_epoch_end(self, trainer, pl_module):
        if self.redraw_due():
            super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if not self.train_progress_bar.disable:  # the last metrics, drawn as the bar closes
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        super().on_train_end(trainer, pl_module)

    def on_validation_start(self, trainer, pl_module):
        self.quiet_validation = trainer.state.fn == "fit" and self.total_val_batches <= 10
        if not self.quiet_validation:
            super().on_validation_start(trainer, pl_module)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not self.quiet_validation:
            super().on_validation_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not self.quiet_validation:
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_validation_end(self, trainer, pl_module):
        if not self.quiet_validation:
            super().on_validation_end(trainer, pl_module)
        elif not trainer.sanity_checking and self.redraw_due():
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))


class OptimizerModes(Callback):
    """Evaluate and save the weights an optimizer means for evaluation, train on the others.

    Some optimizers (Schedule-Free SGD and AdamW, or one of your own) keep two sequences of
    weights: the ones gradients are taken at, and an average that is better to evaluate. Such an
    optimizer has `train()` and `eval()` methods that swap the model's weights between the two;
    this callback calls them, like Lightning's EMAWeightAveraging swaps in averaged weights:
    eval() before validation, testing and prediction, train() before training goes on, and a
    checkpoint always holds the evaluation weights (and says so, so a resumed run switches back).
    Optimizers without those methods are left alone.
    """

    mode = None  # "train" or "eval": what this callback last switched the optimizer to

    def switch(self, trainer, mode: str) -> None:
        """Call the run's optimizer's train() or eval(), if it has them."""
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        if callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None)):
            getattr(optimizer, mode)()
            self.mode = mode

    def on_train_epoch_start(self, trainer, pl_module):
        self.switch(trainer, "train")

    def on_validation_start(self, trainer, pl_module):
        self.switch(trainer, "eval")

    on_test_start = on_predict_start = on_validation_start

    def on_validation_end(self, trainer, pl_module):
        if trainer.state.fn == "fit":
            self.switch(trainer, "train")  # training may go on within the epoch

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self.mode != "train":
            return  # the model holds the evaluation weights already
        self.switch(trainer, "eval")  # save the evaluation weights...
        checkpoint["state_dict"] = {name: value.detach().clone() for name, value in pl_module.state_dict().items()}
        self.switch(trainer, "train")
        for group in checkpoint["optimizer_states"][0]["param_groups"]:
            if "train_mode" in group:
                group["train_mode"] = False  # ...and record it (Schedule-Free), so a resumed run switches back
