"""A small decoder-only Transformer (GPT) for the multilingual LM experiments, and its building blocks.

Pre-LN blocks with `F.scaled_dot_product_attention`, learned positions, a GELU MLP, a final
LayerNorm and an LM head tied to the token embedding (nanoGPT's recipe). `Attention`, `MLP`,
`Block` and the init helpers are shared with `coolmix.models.seq2seq`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coolmix.errors import ConfigError
from coolmix.validate import check_int

__all__ = [
    "GPT",
    "MLP",
    "Attention",
    "Block",
    "GPTConfig",
    "check_dims",
    "init_weights",
    "param_estimate",
    "scale_residual_init",
]

INIT_STD = 0.02
"""Std of every Linear/Embedding weight at init (GPT-2); residual projections get a scaled-down std."""


MAX_DIMS: dict[str, int] = {
    "vocab_size": 1 << 20,
    "d_model": 1 << 15,
    "n_head": 1 << 10,
    "d_ff": 1 << 17,
    "max_len": 1 << 16,
    "n_layer": 1 << 10,
    "n_enc": 1 << 10,
    "n_dec": 1 << 10,
}
"""Upper bound of each shape field: far beyond what this trainer is for, small enough to check
the memory estimate before anything (even a meta-device model) is built."""

BYTES_PER_PARAM = 16
"""fp32 weight + gradient + AdamW's two moments: what one parameter costs while training."""


def param_estimate(cfg: object, layer_fields: tuple[str, ...], cross_layers: int = 0) -> int:
    """Parameters of a model of this shape, to leading order (biases and norms left out):
    2·V·d (embedding and head) + T·d (positions) + L·(4d² + 2d·d_ff) + L_cross·4d²."""
    d, v = cfg.d_model, cfg.vocab_size
    layers = sum(getattr(cfg, f) for f in layer_fields)
    return 2 * v * d + cfg.max_len * d + layers * (4 * d * d + 2 * d * cfg.d_ff) + cross_layers * 4 * d * d


def memory_bytes() -> int | None:
    """Physical memory of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_dims(cfg: object, layer_fields: tuple[str, ...], cross_layers: int = 0) -> None:
    """Validate the fields every model config shares; raises `ConfigError` naming the field.

    Each shape field is bounded (`MAX_DIMS`), and the whole shape must fit in this machine's
    memory while training (`BYTES_PER_PARAM` × `param_estimate`), so an absurd size is one
    line here rather than an allocation failure inside torch.
    """
    for name in ("vocab_size", "d_model", "n_head", "d_ff", "max_len", *layer_fields):
        check_int(name, getattr(cfg, name), lo=1, hi=MAX_DIMS[name])
    if cfg.d_model % cfg.n_head:
        raise ConfigError("d_model", cfg.d_model, f"must be divisible by n_head={cfg.n_head}")
    dropout = cfg.dropout
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError("dropout", dropout, "must be a number in [0, 1)")
    n = param_estimate(cfg, layer_fields, cross_layers)
    have = memory_bytes()
    if have is not None and n * BYTES_PER_PARAM > have:
        raise ConfigError(
            "d_model",
            cfg.d_model,
            f"this shape has ~{n:.3g} parameters, needing ~{n * BYTES_PER_PARAM / 2**30:.0f} GiB to "
            f"train (weights, gradients, AdamW); this machine has {have / 2**30:.0f} GiB",
        )


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a `GPT`. `max_len` bounds the sequence length (the learned position table)."""

    vocab_size: int
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    d_ff: int = 512
    max_len: int = 128
    dropout: float = 0.0
    """Applied to embeddings, attention probabilities and residual branches while training."""

    def __post_init__(self) -> None:
        check_dims(self, ("n_layer",))


class Attention(nn.Module):
    """Multi-head attention over `ctx` (self-attention when `ctx` is None) via SDPA.

    `keep` is a boolean key mask broadcastable to [B, H, T, S], True where a key may be attended;
    callers must leave at least one True key per query row (SDPA returns NaN for an all-False row).
    """

    def __init__(self, d_model: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.dropout = dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.resid_drop = nn.Dropout(dropout)

    def _heads(self, x: Tensor) -> Tensor:
        """[B, T, D] -> [B, H, T, D/H]."""
        b, t, d = x.shape
        return x.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)

    def project_kv(self, ctx: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of `ctx` split into heads; cached by the decoder during generation."""
        k, v = self.kv(ctx).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(
        self,
        x: Tensor,
        ctx: Tensor | None = None,
        keep: Tensor | None = None,
        causal: bool = False,
        kv: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Attend from `x` [B, T, D] to `ctx` (or to precomputed heads `kv`); returns [B, T, D]."""
        k, v = kv if kv is not None else self.project_kv(x if ctx is None else ctx)
        q = self._heads(self.q(x))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p, is_causal=causal)
        y = y.transpose(1, 2).reshape(x.shape)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: Linear -> GELU -> Linear."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff)
        self.proj = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LN Transformer block: self-attention, optional cross-attention (decoder), MLP."""

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float, cross: bool = False) -> None:
        super().__init__()
        self.ln_self = nn.LayerNorm(d_model)
        self.self_attn = Attention(d_model, n_head, dropout)
        self.ln_cross = nn.LayerNorm(d_model) if cross else None
        self.cross_attn = Attention(d_model, n_head, dropout) if cross else None
        self.ln_mlp = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, d_ff, dropout)

    def forward(
        self,
        x: Tensor,
        keep: Tensor | None = None,
        causal: bool = False,
        mem: Tensor | None = None,
        mem_keep: Tensor | None = None,
    ) -> Tensor:
        """`keep`/`causal` mask self-attention; `mem`/`mem_keep` feed cross-attention (decoder only)."""
        x = x + self.self_attn(self.ln_self(x), keep=keep, causal=causal)
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.ln_cross(x), ctx=mem, keep=mem_keep)
        return x + self.mlp(self.ln_mlp(x))

    def step(
        self,
        x: Tensor,
        past: tuple[Tensor, Tensor] | None,
        mem_kv: tuple[Tensor, Tensor],
        mem_keep: Tensor | None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One decoding step for new positions `x` [B, 1, D] given cached self-attention heads `past`.

        Returns the block output and the extended cache. Equals `forward(causal=True)` on the
        whole prefix, restricted to the last position, up to float rounding.
        """
        h = self.ln_self(x)
        k, v = self.self_attn.project_kv(h)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x = x + self.self_attn(h, kv=(k, v))
        x = x + self.cross_attn(self.ln_cross(x), keep=mem_keep, kv=mem_kv)
        return x + self.mlp(self.ln_mlp(x)), (k, v)


def init_weights(module: nn.Module, n_residual: int) -> None:
    """GPT-2 init: N(0, 0.02) weights, zero biases, residual output projections N(0, 0.02/sqrt(n_residual)).

    `n_residual` is the number of residual branches summed into the stream (2 per GPT block);
    scaling their projections keeps the residual stream's variance independent of depth.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=INIT_STD)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    scale_residual_init(module, n_residual)


def scale_residual_init(module: nn.Module, n_residual: int) -> None:
    """Re-draw the residual output projections inside `module` with std 0.02/sqrt(n_residual)."""
    for m in module.modules():
        if isinstance(m, (Attention, MLP)):
            nn.init.normal_(m.proj.weight, mean=0.0, std=INIT_STD / math.sqrt(n_residual))


class GPT(nn.Module):
    """Decoder-only LM: `forward(tokens [B, T]) -> logits [B, T, V]`, causal, LM head tied to `wte`."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_head, cfg.d_ff, cfg.dropout) for _ in range(cfg.n_layer)
        )
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one [V, D] tensor serves both ends
        init_weights(self, n_residual=2 * cfg.n_layer)

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits for every position; position t sees tokens[:, :t+1] only."""
        t = tokens.shape[1]
        if t > self.cfg.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len={self.cfg.max_len}")
        pos = torch.arange(t, device=tokens.device)
        x = self.drop(self.wte(tokens) + self.wpe(pos))
        for block in self.blocks:
            x = block(x, causal=True)
        return self.lm_head(self.ln_f(x))

    def num_params(self, non_embedding: bool = False) -> int:
        """Distinct parameters (the tied head counts once); `non_embedding` drops both tables."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel() + self.wpe.weight.numel()
        return n
