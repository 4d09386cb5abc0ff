"""Tests of the language family: tokenizers, text download, the GPT, learning, generation, configs.

No network: downloads are served from files the tests write (urlopen is replaced).
"""

import hashlib
import io
import math
import runpy
import sys
import urllib.request

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import CONFIGS, run_one_batch

from {{ cookiecutter.package_name }}.config_errors import ConfigError
from {{ cookiecutter.package_name }}.nets.gpt import GPT, Block
from {{ cookiecutter.package_name }}.problems import language
from {{ cookiecutter.package_name }}.problems.language import (
    ByteTokenizer,
    LanguageModel,
    TextDataModule,
    load_text,
    make_tokenizer,
)

FAKE_PLAY = "ROMEO:\nBut soft, what light through yonder window breaks?\n\n" * 300


@pytest.fixture
def fake_shakespeare(monkeypatch):
    """Serve a fake Tiny Shakespeare to urlopen and accept its checksum; returns the URLs asked for."""
    body = FAKE_PLAY.encode()
    requested = []

    def urlopen(url, timeout=None):
        requested.append(url)
        return io.BytesIO(body)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    preset = {**language.CORPORA["tiny_shakespeare"], "sha256": hashlib.sha256(body).hexdigest()}
    monkeypatch.setitem(language.CORPORA, "tiny_shakespeare", preset)
    return requested


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("language*.yaml")), ids=lambda path: path.stem)
def test_every_language_config_runs_one_batch(config, in_tmp, fake_shakespeare):
    args = []
    if config.stem != "language":  # GPU-sized models: the same model, on a CPU-sized batch
        args += ["--data.init_args.batch_size", "2", "--data.init_args.eval_batch_size", "2",
                 "--model.init_args.sample_tokens", "4"]
    if "strategy" in yaml.safe_load(config.read_text())["trainer"]:
        # FSDP needs GPUs; here the same model runs unsharded on the CPU, at a short context.
        # The GPT-2 tokenizer downloads its files on first use, and tests have no network (tiktoken
        # is optional too): the rest of the config is checked with bytes.
        args += ["--trainer.strategy", "auto", "--data.init_args.block_size", "32", "--data.init_args.tokenizer", "byte"]
    cli = run_one_batch(config, "--trainer.precision", "32-true", *args)
    assert "val/bpb" in cli.trainer.callback_metrics


def test_fsdp_config_shards_each_transformer_block():
    from jsonargparse import ArgumentParser
    from lightning.pytorch.strategies import FSDPStrategy, Strategy

    parser = ArgumentParser()
    parser.add_argument("--strategy", type=Strategy)
    config = yaml.safe_load((CONFIGS / "language_gpt2_fsdp.yaml").read_text())
    strategy = parser.instantiate(parser.parse_object({"strategy": config["trainer"]["strategy"]})).strategy
    assert isinstance(strategy, FSDPStrategy)
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {Block}


@pytest.mark.parametrize("text", ["", "plain ASCII", "naïve café, 日本語, emoji 🙂, \x00 and \n\t"])
def test_byte_tokens_round_trip_any_utf8_text(text):
    tokenizer = ByteTokenizer()
    tokens = tokenizer.encode(text)
    assert all(0 <= t < 256 for t in tokens) and len(tokens) == len(text.encode("utf-8"))
    assert tokenizer.decode(tokens) == text


def test_bpe_without_tiktoken_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import tiktoken now fails
    with pytest.raises(ConfigError, match="uv add tiktoken.*tokenizer: byte"):
        make_tokenizer("bpe")
    with pytest.raises(ConfigError, match="choose one of byte, bpe"):
        make_tokenizer("chars")


def test_download_once_and_check_the_sha256(tmp_path, monkeypatch):
    source = tmp_path / "corpus.txt"
    source.write_text("to be or not to be\n" * 10)
    url, digest = source.as_uri(), hashlib.sha256(source.read_bytes()).hexdigest()
    data_dir = tmp_path / "data"
    assert load_text(url, str(data_dir), sha256=digest) == source.read_text()
    assert (data_dir / "corpus.txt").read_text() == source.read_text()
    source.unlink()  # the copy in data/ is used from now on: no second download
    assert load_text(url, str(data_dir), sha256=digest).startswith("to be")
    bad = tmp_path / "other.txt"
    bad.write_text("not what was promised")
    with pytest.raises(ConfigError, match="SHA-256"):
        load_text(bad.as_uri(), str(data_dir), sha256=digest)
    assert not (data_dir / "other.txt").exists() and not list(data_dir.glob("*.part"))
    with pytest.raises(ConfigError, match="python_docs"):
        load_text(str(tmp_path / "missing.txt"))


def test_tiny_shakespeare_preset_is_downloaded_into_data(in_tmp, fake_shakespeare):
    assert load_text("tiny_shakespeare") == FAKE_PLAY
    assert load_text("tiny_shakespeare") == FAKE_PLAY
    assert len(fake_shakespeare) == 1 and "tinyshakespeare/input.txt" in fake_shakespeare[0]
    assert (in_tmp / "data" / "tiny_shakespeare.txt").is_file()


def test_splits_are_contiguous_and_windows_are_shifted_by_one():
    data = TextDataModule(block_size=16, batch_size=4, batches_per_epoch=3)
    data.setup("fit")
    text = torch.tensor(list(language.python_docs().encode("utf-8")))
    assert torch.equal(torch.cat([data.splits[s] for s in ("train", "val", "test")]), text)
    batches = list(data.train_dataloader())
    assert len(batches) == 3
    inputs, targets = batches[0]
    assert inputs.shape == (4, 16) and torch.equal(inputs[:, 1:], targets[:, :-1])
    again = data.train_dataloader()
    again.set_epoch(0)
    assert torch.equal(next(iter(again))[0], inputs)  # the same epoch gives the same windows
    again.set_epoch(1)
    assert not torch.equal(next(iter(again))[0], inputs)
    assert 4.0 < data.unigram_bpb() < 5.5  # English text without context: about 4.7 bits per byte


def test_output_at_t_ignores_later_tokens():
    torch.manual_seed(0)
    net = GPT(256, block_size=16, n_layer=2, n_head=2, n_embd=32).eval()
    tokens = torch.randint(256, (2, 16))
    changed = tokens.clone()
    changed[:, 9:] = torch.randint(256, (2, 7))
    before, after = net(tokens), net(changed)
    assert torch.allclose(before[:, :9], after[:, :9], atol=1e-5)
    assert not torch.allclose(before[:, 9:], after[:, 9:], atol=1e-3)


def test_untrained_loss_is_near_log_vocab_size():
    torch.manual_seed(0)
    model = LanguageModel({"n_layer": 2, "n_head": 2, "n_embd": 32}, block_size=32)
    tokens = torch.randint(256, (8, 33))
    with torch.no_grad():
        loss = model.loss((tokens[:, :-1], tokens[:, 1:]))
    assert abs(float(loss) - math.log(256)) < 0.1


def test_weights_are_tied_and_checkpointing_keeps_gradients():
    torch.manual_seed(0)
    net = GPT(256, block_size=16, n_layer=2, n_head=2, n_embd=32)
    assert net.head.weight is net.token_embedding.weight
    tokens = torch.randint(256, (2, 16))
    net(tokens).square().mean().backward()
    plain = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.gradient_checkpointing = True
    net(tokens).square().mean().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(plain, net.parameters(), strict=True))
    with pytest.raises(ConfigError, match="multiple of n_head"):
        GPT(256, 16, n_head=3, n_embd=32)


def test_learns_a_repeated_text_by_heart():
    torch.manual_seed(0)
    net = GPT(256, block_size=32, n_layer=1, n_head=2, n_embd=32)
    text = torch.tensor(list(b"the quick brown fox jumps over the lazy dog. " * 20))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        starts = torch.randint(len(text) - 33, (16, 1))
        windows = text[starts + torch.arange(33)]
        loss = F.cross_entropy(net(windows[:, :-1]).flatten(0, 1), windows[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss < 0.15, f"loss {float(loss):.3f} after 200 steps"
    prompt = text[None, :20]
    assert bytes(net.generate(prompt, 25, temperature=0)[0, 20:].tolist()) == bytes(text[20:45].tolist())


def test_generate_command_writes_text_from_a_checkpoint(tmp_path, capsys, monkeypatch):
    L.seed_everything(0)
    model = LanguageModel({"n_layer": 1, "n_head": 2, "n_embd": 32}, block_size=16, sample_tokens=0)
    data = TextDataModule(block_size=16, batch_size=4, batches_per_epoch=2, max_eval_windows=4)
    trainer = L.Trainer(max_epochs=1, logger=False, default_root_dir=tmp_path, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, data)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "sample.txt"
    text = language.main(["--ckpt", str(ckpt), "--prompt", "The ", "--tokens", "30", "--top_k", "5", "--out", str(out)])
    assert text.startswith("The ") and len(text.encode("utf-8", errors="replace")) >= 30
    assert out.read_text(encoding="utf-8") == text and text in capsys.readouterr().out
    again = tmp_path / "again.txt"
    command = ["--ckpt", str(ckpt), "--prompt", "The ", "--tokens", "30", "--top_k", "5", "--out", str(again)]
    monkeypatch.setattr(sys, "argv", ["language.py", *command])  # as `python -m ...problems.language ...`
    runpy.run_module(language.__name__, run_name="__main__")
    assert again.read_text(encoding="utf-8") == text  # same seed, same text


def test_a_corpus_that_is_not_utf8_says_where_and_how_to_convert_it(tmp_path):
    corpus = tmp_path / "poems.txt"
    corpus.write_bytes("Une chanson\nd'\xe9t\xe9\n".encode("latin1"))
    with pytest.raises(ConfigError, match="poems.txt is not UTF-8 text: byte 0xe9 at offset 14 .line 2.") as error:
        TextDataModule(str(corpus)).setup("fit")
    assert f"iconv -f latin1 -t utf-8 {corpus} > {tmp_path / 'poems_utf8.txt'}" in str(error.value)


def test_empty_or_short_corpora_say_what_to_change(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("")
    with pytest.raises(ConfigError, match="has no text: give a file with text"):
        TextDataModule(str(corpus)).setup("fit")
    corpus.write_text("hello world " * 10)  # 120 bytes: 108 to train on, 6 to validate, 6 to test
    with pytest.raises(ConfigError, match="the val split .val_fraction 0.05 of 120 tokens. has 6 tokens, fewer than "
                                          "block_size \\+ 1 = 65: lower block_size to 5 or less, raise val_fraction"):
        TextDataModule(str(corpus)).setup("fit")
    with pytest.raises(ConfigError, match="the train split .98% of 120 tokens. has 117 tokens, fewer than "
                                          "block_size \\+ 2 = 202: lower block_size to 115 or less or give a longer text"):
        TextDataModule(str(corpus), block_size=200, val_fraction=0.01, test_fraction=0.01).setup("fit")
    TextDataModule(str(corpus), block_size=4).setup("fit")  # short enough


@pytest.mark.parametrize("args, message", [
    ({"block_size": 0}, "block_size 0: give a whole number >= 1"),
    ({"batch_size": -2}, "batch_size -2"),
    ({"batches_per_epoch": 0}, "batches_per_epoch 0"),
    ({"eval_batch_size": 0}, "eval_batch_size 0"),
    ({"max_eval_windows": 0}, "max_eval_windows 0"),
    ({"val_fraction": 1.5}, "val_fraction 1.5 and test_fraction 0.05: give fractions above 0 with a sum below 1"),
])
def test_bad_data_settings_are_named(args, message):
    with pytest.raises(ConfigError, match=message):
        TextDataModule(**args)
