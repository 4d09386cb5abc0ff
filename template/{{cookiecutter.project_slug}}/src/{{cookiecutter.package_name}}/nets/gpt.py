"""A small GPT: a decoder-only transformer for next-token prediction.

Token and position embeddings, then `n_layer` pre-norm blocks (x + attention(norm(x)), then
x + mlp(norm(x))), a final norm, and an output layer that shares its weight matrix with the
token embedding (weight tying). Attention is causal: position t only sees positions <= t.
It goes through torch.nn.functional.scaled_dot_product_attention, which picks a fused kernel
(FlashAttention on recent GPUs) when it can.

`gradient_checkpointing: true` keeps only each block's input during the forward pass and
recomputes the block's activations in the backward pass: less memory, about a third more
compute. Sizes of the lecture's "Shakespeare char" baseline: n_layer 6, n_head 6, n_embd 384.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config_errors import ConfigError


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.dropout = dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)  # queries, keys and values of all heads at once
        self.proj = nn.Linear(n_embd, n_embd)  # mixes the heads' outputs
        self.proj_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, channels = x.shape
        # (B, T, 3C) -> three tensors of shape (B, heads, T, C / heads)
        q, k, v = self.qkv(x).view(batch, time, 3, self.n_head, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(batch, time, channels)  # heads side by side again
        return self.proj_dropout(self.proj(y))


class Block(nn.Module):
    """One transformer block. FSDP configs wrap (shard) each Block separately."""

    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(n_embd)
        self.attention = CausalSelfAttention(n_embd, n_head, dropout)
        self.norm2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_layer: int = 4,  # transformer blocks
        n_head: int = 4,  # attention heads per block; must divide n_embd
        n_embd: int = 128,  # width of the residual stream (embedding size)
        dropout: float = 0.0,  # dropout on attention weights and block outputs while training
        gradient_checkpointing: bool = False,  # recompute block activations in backward to save memory
    ):
        super().__init__()
        if n_embd % n_head:
            raise ConfigError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head}), e.g. n_embd: {n_head * 32}")
        self.block_size = block_size
        self.gradient_checkpointing = gradient_checkpointing
        self.token_embedding = nn.Embedding(vocab_size, n_embd)
        self.position_embedding = nn.Embedding(block_size, n_embd)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, dropout) for _ in range(n_layer))
        self.norm = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # weight tying: one matrix, two uses
        self.apply(self.init_weights)
        for name, param in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                # GPT-2's scaling: each residual branch adds a little, so deep stacks start stable
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab_size) of the next token at every position of tokens (B, T)."""
        time = tokens.shape[1]
        if time > self.block_size:
            raise ValueError(f"sequence of {time} tokens is longer than block_size {self.block_size}")
        positions = torch.arange(time, device=tokens.device)
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.head(self.norm(x))

    @torch.no_grad()
    def generate(
        self,
        tokens: torch.Tensor,
        new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue tokens (B, T) by `new_tokens` sampled tokens; returns (B, T + new_tokens).

        temperature < 1 sharpens the distribution (0 picks the most likely token), > 1 flattens
        it; top_k keeps only the k most likely tokens at each step.
        """
        for _ in range(new_tokens):
            logits = self(tokens[:, -self.block_size :])[:, -1]
            if temperature == 0:
                next_token = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_token = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)
            tokens = torch.cat([tokens, next_token], dim=1)
        return tokens
