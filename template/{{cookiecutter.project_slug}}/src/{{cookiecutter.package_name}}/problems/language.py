"""Language modelling: a small GPT learns to predict the next token of a text.

    uv run python train.py fit --config configs/language.yaml                     # Python's docs, offline, a minute
    uv run python train.py fit --config configs/language_shakespeare_char.yaml --config configs/trainer/gpu.yaml
    uv run python -m {{ cookiecutter.package_name }}.problems.language --ckpt runs/language/<run name>/checkpoints/last.ckpt \
        --prompt "ROMEO:" --tokens 300 --temperature 0.8 --top_k 40      # generate text

Text (data.corpus): `python_docs` is the English documentation that ships inside every Python
install (pydoc_data, about 465,000 characters); `tiny_shakespeare` is downloaded once into
data/ and checked against its published SHA-256; any other value is a local text file or a
URL (http://, https://, file://), whose SHA-256 is checked when data.sha256 is given.

Tokens (data.tokenizer): `byte` turns text into its UTF-8 bytes (256 tokens, works for any
text, no download); `bpe` is GPT-2's byte-pair encoding through the tiktoken package
(50,257 tokens). The last val_fraction + test_fraction of the text is held out, in one piece.

Metrics: val/loss (cross-entropy in nats per token), val/perplexity = exp(val/loss), and
val/bpb, bits per byte of text, which compares models with different tokenizers.
"""

import argparse
import hashlib
import math
import urllib.request
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from ..config_errors import ConfigError, check_arguments
from ..data import DeviceBatches, SeededDraws, check_whole_numbers, data_device, device_batches, read_utf8
from ..module import CourseModule, OptimizerFactory, ScheduleFactory
from ..nets.gpt import GPT

# Downloadable texts known by name: where they come from and their SHA-256.
CORPORA = {
    "tiny_shakespeare": {
        "url": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "sha256": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",  # 1,115,394 bytes
        "file": "tiny_shakespeare.txt",
    },
}
TOKENIZERS = ("byte", "bpe")


class ByteTokenizer:
    """Text <-> its UTF-8 bytes. Every text round-trips; there is nothing to download."""

    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, tokens: list[int]) -> str:
        return bytes(tokens).decode("utf-8", errors="replace")  # a sample may stop mid-character

    def token_bytes(self) -> torch.Tensor:
        """Length in bytes of each token's text (for bits per byte)."""
        return torch.ones(self.vocab_size)


class BPETokenizer:
    """GPT-2's byte-pair encoding (tiktoken's "gpt2" encoding)."""

    name = "bpe"

    def __init__(self):
        try:
            import tiktoken

            self.encoding = tiktoken.get_encoding("gpt2")
        except ImportError as error:
            raise ConfigError(
                "tokenizer: bpe needs the tiktoken package: install it with `uv add tiktoken` "
                "(or `pip install tiktoken`), or use tokenizer: byte, which needs nothing."
            ) from error
        except Exception as error:  # no network on the first use: the encoding files are downloaded
            raise ConfigError(
                f"tiktoken could not load the GPT-2 encoding ({error}). On first use it downloads two files "
                "(vocab.bpe and encoder.json), so run once with internet access; offline, copy a filled "
                "cache folder from another machine and point the TIKTOKEN_CACHE_DIR environment variable "
                "at it. Or use tokenizer: byte, which needs no download."
            ) from error
        self.vocab_size = self.encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def decode(self, tokens: list[int]) -> str:
        return self.encoding.decode(tokens, errors="replace")

    def token_bytes(self) -> torch.Tensor:
        return torch.tensor([len(self.encoding.decode_single_token_bytes(t)) for t in range(self.vocab_size)])


def make_tokenizer(name: str):
    if name not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {name!r}: choose one of {', '.join(TOKENIZERS)}")
    return ByteTokenizer() if name == "byte" else BPETokenizer()


def python_docs() -> str:
    """The English documentation bundled with Python (the text behind `help("topic")`)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def download(url: str, path: Path, sha256: str | None) -> None:
    """Download `url` to `path` once, through a temporary file, checking its SHA-256 if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    print(f"Downloading {url} to {path}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            partial.write_bytes(response.read())
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ConfigError(
            f"could not download {url} ({error}). With no internet access, copy the file to {path} "
            "yourself, or use corpus: python_docs, which needs no download."
        ) from error
    check_sha256(partial, sha256, url, downloaded=True)
    partial.rename(path)


def check_sha256(path: Path, sha256: str | None, source: str, downloaded: bool = False) -> None:
    """Raise a ConfigError if the file's SHA-256 is not `sha256` (nothing to check if None).
    A bad download is deleted; a file of your own is left alone."""
    if sha256 is None:
        return
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != sha256.lower():
        if downloaded:
            path.unlink()
        raise ConfigError(
            f"{source} has SHA-256 {actual}, not the expected {sha256}: the text changed or the download was "
            f"cut short{' (the download was deleted: run again to retry)' if downloaded else ''}. "
            "If the text is meant to differ, set data.sha256 to its SHA-256 or to null."
        )


def load_text(corpus: str, data_dir: str = "data", sha256: str | None = None) -> str:
    """The text named by `corpus` (see the module docstring), downloading it if needed."""
    if corpus == "python_docs":
        return python_docs()
    if corpus in CORPORA:
        url, sha256, name = CORPORA[corpus]["url"], CORPORA[corpus]["sha256"], CORPORA[corpus]["file"]
    elif corpus.split("://")[0] in ("http", "https", "file"):
        url, name = corpus, Path(urllib.request.url2pathname(corpus.split("?")[0])).name or "corpus.txt"
    else:
        path = Path(corpus)
        if not path.is_file():
            raise ConfigError(
                f"corpus {corpus!r} is neither python_docs, {', '.join(CORPORA)}, a URL, nor an existing text file"
            )
        check_sha256(path, sha256, corpus)
        return read_utf8(path)
    path = Path(data_dir) / name
    if not path.is_file():
        download(url, path, sha256)
    return read_utf8(path)


class RandomWindows(SeededDraws):
    """`batches` random windows of `block_size` + 1 tokens per epoch, as (inputs, targets), with
    start positions drawn afresh (and reproducibly, see SeededDraws) every epoch."""

    def __init__(self, tokens: torch.Tensor, block_size: int, batch_size: int, batches: int,
                 seed: int = 0, rank: int = 0):
        if len(tokens) <= block_size + 1:
            raise ConfigError(f"the training text has {len(tokens)} tokens: fewer than block_size + 2; lower block_size")
        super().__init__(self.windows, batches, seed, rank)
        self.tokens, self.block_size, self.batch_size = tokens, block_size, batch_size
        self.offsets = torch.arange(block_size + 1, device=tokens.device)

    def windows(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(self.tokens) - self.block_size, (self.batch_size, 1), generator=generator)
        # non_blocking on a CUDA GPU: the CPU does not wait for the GPU's queued work, as a plain copy
        # would at every step (not on Apple's MPS, where such copies have raced: pytorch#83015).
        device = self.tokens.device
        windows = self.tokens[starts.to(device, non_blocking=device.type == "cuda") + self.offsets]
        return windows[:, :-1], windows[:, 1:]


def consecutive_windows(tokens: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows covering `tokens`: every token is predicted once."""
    count = (len(tokens) - 1) // block_size
    if count < 1:
        raise ConfigError(f"a held-out split has {len(tokens)} tokens: fewer than block_size + 1; lower block_size")
    inputs = tokens[: count * block_size].view(count, block_size)
    targets = tokens[1 : count * block_size + 1].view(count, block_size)
    return inputs, targets


class TextDataModule(L.LightningDataModule):
    """A text as one token tensor on the device; random training windows, fixed held-out ones."""

    # What the shared code of a run learns of this data (see run/families.py):
    model_links = ("tokenizer", "block_size")  # handed to the model's arguments of these names
    resume_may_change = {"data_dir", "eval_batch_size"}  # a resume may change these

    @staticmethod
    def data_file(settings: dict) -> str | None:
        """The text a run reads, which names its folder (runs/language_<file name>/) when it is a
        file of yours; the named corpora (python_docs, ...) keep the config's name."""
        return settings.get("corpus")

    def __init__(
        self,
        corpus: str = "python_docs",  # python_docs, tiny_shakespeare, a text file, or a URL
        sha256: str | None = None,  # expected SHA-256 of a file or URL corpus (checked when given)
        data_dir: str = "data",  # where downloaded texts are kept
        tokenizer: str = "byte",  # byte (UTF-8 bytes, 256 tokens) or bpe (GPT-2's, needs tiktoken)
        block_size: int = 64,  # tokens of context the model sees (also the window length)
        batch_size: int = 32,  # training windows per batch
        batches_per_epoch: int = 100,  # an "epoch" of random windows: how often validation runs
        eval_batch_size: int = 64,  # held-out windows per batch (no gradients: can be larger)
        val_fraction: float = 0.05,  # the end of the text is held out: this fraction for validation...
        test_fraction: float = 0.05,  # ...and then this fraction, the very end, for testing
        max_eval_windows: int | None = None,  # use at most this many held-out windows (faster validation)
    ):
        super().__init__()
        make_tokenizer(tokenizer)  # fail now on an unknown name or a missing tiktoken
        if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
            raise ConfigError(f"val_fraction {val_fraction} and test_fraction {test_fraction}: give fractions "
                              "above 0 with a sum below 1 (e.g. 0.05 and 0.05)")
        check_whole_numbers(block_size=block_size, batch_size=batch_size, batches_per_epoch=batches_per_epoch,
                            eval_batch_size=eval_batch_size)
        if max_eval_windows is not None:
            check_whole_numbers(max_eval_windows=max_eval_windows)  # null: every held-out window
        self.save_hyperparameters()
        self.splits: dict[str, torch.Tensor] = {}

    @property
    def tokenizer(self) -> str:  # handed to the model by train.py, which decodes its samples
        return self.hparams.tokenizer

    @property
    def block_size(self) -> int:  # handed to the model by train.py
        return self.hparams.block_size

    def prepare_data(self):
        load_text(self.hparams.corpus, self.hparams.data_dir, self.hparams.sha256)  # download on one process

    def setup(self, stage: str | None = None):
        if self.splits:
            return
        hp = self.hparams
        text = load_text(hp.corpus, hp.data_dir, hp.sha256)
        if not text.strip():
            raise ConfigError(f"corpus {hp.corpus} has no text: give a file with text in it (a few hundred "
                              "kilobytes or more, such as corpus: tiny_shakespeare)")
        tokens = torch.tensor(make_tokenizer(hp.tokenizer).encode(text), dtype=torch.long)
        n_train = int(len(tokens) * (1 - hp.val_fraction - hp.test_fraction))
        n_val = int(len(tokens) * hp.val_fraction)
        self.check_lengths(len(tokens), {"train": n_train, "val": n_val, "test": len(tokens) - n_train - n_val})
        device = data_device(self)
        self.splits = {
            "train": tokens[:n_train].to(device),
            "val": tokens[n_train : n_train + n_val].to(device),
            "test": tokens[n_train + n_val :].to(device),
        }
        # Window order: from the global seed (seed_everything), like the other families' shuffling.
        self.shuffle_seed = int(torch.randint(0, 2**31 - 1, ()))

    def check_lengths(self, total: int, lengths: dict[str, int]) -> None:
        """Raise a ConfigError, with the numbers and what to change, if a split is too short for one
        window: block_size + 2 tokens for training (RandomWindows), block_size + 1 held out."""
        hp = self.hparams
        for split, length in lengths.items():
            extra = 2 if split == "train" else 1
            if length >= hp.block_size + extra:
                continue
            share = {"train": f"{1 - hp.val_fraction - hp.test_fraction:.0%}", "val": f"val_fraction {hp.val_fraction}",
                     "test": f"test_fraction {hp.test_fraction}"}[split]
            fixes = [f"lower block_size to {length - extra} or less"] if length > extra else []
            fixes += [] if split == "train" else [f"raise {split}_fraction"]
            advice = ", ".join(fixes) + " or give a longer text" if fixes else "give a longer text"
            raise ConfigError(
                f"corpus {hp.corpus}: the {split} split ({share} of {total} tokens) has {length} tokens, fewer "
                f"than block_size + {extra} = {hp.block_size + extra}: {advice}"
            )

    def unigram_bpb(self, split: str = "val") -> float:
        """Bits per byte on `split` of the unigram model of the training tokens (add-one smoothing):
        the score of a model that ignores context, which the GPT should beat by far."""
        tokenizer = make_tokenizer(self.hparams.tokenizer)
        counts = torch.bincount(self.splits["train"].cpu(), minlength=tokenizer.vocab_size).double() + 1
        log2_p = (counts / counts.sum()).log2()
        tokens = self.splits[split].cpu()
        return float(-log2_p[tokens].sum() / tokenizer.token_bytes().double()[tokens].sum())

    def train_dataloader(self):
        hp, trainer = self.hparams, self.trainer
        return RandomWindows(self.splits["train"], hp.block_size, hp.batch_size, hp.batches_per_epoch,
                             seed=self.shuffle_seed, rank=trainer.global_rank if trainer else 0)

    def held_out(self, split: str) -> DeviceBatches:
        inputs, targets = consecutive_windows(self.splits[split], self.hparams.block_size)
        limit = self.hparams.max_eval_windows
        if limit:  # evenly spread over the split, not just its beginning
            keep = torch.linspace(0, len(inputs) - 1, min(limit, len(inputs))).long().to(inputs.device)
            inputs, targets = inputs[keep], targets[keep]
        return device_batches(self, (inputs, targets), self.hparams.eval_batch_size, training=False)

    def val_dataloader(self):
        return self.held_out("val")

    def test_dataloader(self):
        return self.held_out("test")

    def predict_dataloader(self):
        return self.held_out("test")


class LanguageModel(CourseModule):
    """A GPT trained with next-token cross-entropy; logs loss, perplexity, bits per byte, samples."""

    metrics_higher_is_better = ()  # loss, perplexity and bits per byte: all best at their minimum

    def __init__(
        self,
        net_args: dict[str, Any] | None = None,  # GPT sizes, e.g. {n_layer: 6, n_head: 6, n_embd: 384} (nets/gpt.py)
        sample_prompt: str = "\n",  # text the samples logged at each validation start from
        sample_tokens: int = 200,  # length of those samples, in tokens (0: no samples)
        sample_every: int = 1,  # log a sample every this many validations (sampling is slow on a CPU)
        temperature: float = 0.8,  # sampling temperature of the logged samples (0: always the likeliest token)
        top_k: int | None = 40,  # sample among the k likeliest tokens only (null: all tokens)
        optimizer: OptimizerFactory | None = None,  # --optimizer NAME (see optim/choices.py); None: adam
        scheduler: ScheduleFactory | None = None,  # --scheduler NAME (see optim/schedules.py); None: constant
        param_groups: list[dict[str, Any]] | None = None,  # per-parameter settings, e.g. [{match: "net.*.bias", lr: 0.1}]
        tokenizer: str = "byte",  # filled in from the data by train.py
        block_size: int = 64,  # filled in from the data by train.py
    ):
        super().__init__(optimizer, scheduler, param_groups)
        self.save_hyperparameters()
        self.tokenizer = make_tokenizer(tokenizer)
        check_arguments(GPT, net_args or {}, "net gpt", skip=("vocab_size", "block_size"))
        self.net = GPT(self.tokenizer.vocab_size, block_size, **(net_args or {}))
        # Bytes of text behind each token: bits per byte = bits per token / bytes per token.
        self.register_buffer("token_bytes", self.tokenizer.token_bytes(), persistent=False)
        # Token-weighted means over a whole validation or test epoch (synchronised across GPUs).
        self.mean_loss = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})
        self.mean_bytes = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)

    def loss(self, batch) -> torch.Tensor:
        """The training objective on one batch: mean cross-entropy in nats per token."""
        return self.loss_and_targets(batch)[0]

    def loss_and_targets(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy (nats per token) and the targets."""
        inputs, targets = batch
        logits = self(inputs)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()), targets

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log_step("train/loss", loss, prog_bar=True)  # on logging steps only: see module.py
        return loss

    def evaluate(self, batch, stage: str) -> None:
        loss, targets = self.loss_and_targets(batch)
        self.mean_loss[stage].update(loss, weight=targets.numel())
        self.mean_bytes[stage].update(self.token_bytes[targets].mean(), weight=targets.numel())

    def log_epoch(self, stage: str) -> None:
        """Loss, perplexity and bits per byte over all the epoch's tokens."""
        loss, bytes_per_token = self.mean_loss[stage].compute(), self.mean_bytes[stage].compute()
        self.log(f"{stage}/loss", loss, prog_bar=True)
        self.log(f"{stage}/perplexity", torch.exp(loss))
        self.log(f"{stage}/bpb", loss / math.log(2) / bytes_per_token, prog_bar=True)
        self.mean_loss[stage].reset(), self.mean_bytes[stage].reset()

    def validation_step(self, batch, batch_idx):
        self.evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self.evaluate(batch, "test")

    def predict_step(self, batch, batch_idx):
        """`uv run python train.py predict`: the likeliest next token at every position of the test windows
        (to generate text, use the command at the top of this file)."""
        inputs, _ = batch
        return self(inputs).argmax(dim=-1)

    def on_test_epoch_end(self):
        self.log_epoch("test")

    def on_validation_epoch_end(self):
        self.log_epoch("val")
        sample_now = (self.trainer.current_epoch + 1) % self.hparams.sample_every == 0
        if self.hparams.sample_tokens > 0 and sample_now and not self.trainer.sanity_checking:
            experiment = getattr(self.logger, "experiment", None)  # a no-op stand-in on GPUs other than the first
            if hasattr(experiment, "add_text"):  # every process samples: sharded (FSDP) models need them all
                text = self.sample(self.hparams.sample_prompt, self.hparams.sample_tokens)
                # Indented lines are shown as a code block: spaces and line breaks are kept.
                experiment.add_text("samples", "    " + text.replace("\n", "\n    "), self.global_step)

    def sample(self, prompt: str, new_tokens: int, temperature: float | None = None,
               top_k: int | None = -1, seed: int = 0) -> str:
        """`prompt` continued by `new_tokens` sampled tokens (the same seed gives the same text)."""
        temperature = self.hparams.temperature if temperature is None else temperature
        top_k = self.hparams.top_k if top_k == -1 else top_k
        tokens = torch.tensor([self.tokenizer.encode(prompt or "\n")], device=self.device)
        generator = torch.Generator(self.device).manual_seed(seed)  # leaves the global RNG alone
        was_training = self.training
        self.eval()
        out = self.net.generate(tokens, new_tokens, temperature, top_k, generator)
        self.train(was_training)
        return self.tokenizer.decode(out[0].tolist())


def main(args: list[str] | None = None) -> str:
    """Generate text from a prompt with a trained checkpoint; prints it and returns it."""
    parser = argparse.ArgumentParser(description="Generate text with a trained GPT checkpoint.")
    parser.add_argument("--ckpt", required=True, help="a .ckpt file, e.g. runs/language/<run name>/checkpoints/last.ckpt")
    parser.add_argument("--prompt", default="\n", help="text to continue")
    parser.add_argument("--tokens", type=int, default=300, help="how many tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="0: greedy; below 1: safer; above 1: wilder")
    parser.add_argument("--top_k", type=int, default=40, help="sample among the k likeliest tokens (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sampling")
    parser.add_argument("--out", help="also write the text to this file")
    options = parser.parse_args(args)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = LanguageModel.load_from_checkpoint(options.ckpt, map_location=device)
    text = model.sample(options.prompt, options.tokens, options.temperature, options.top_k or None, options.seed)
    print(text)
    if options.out:
        Path(options.out).write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    # Run through the package's copy of this module: a checkpoint names its class as
    # {{ cookiecutter.package_name }}.problems.language..., not __main__..., and Lightning loads only that one.
    import importlib

    importlib.import_module(__spec__.name).main()
