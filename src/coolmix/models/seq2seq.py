"""A small encoder-decoder Transformer for the multilingual MT experiments, with greedy and beam decoding.

Same parts as `coolmix.models.gpt` (pre-LN blocks, SDPA, learned positions, GELU MLP), plus
cross-attention. One embedding table serves source tokens, target tokens and the output
projection, as in a joint-vocabulary NMT model. A target-language tag can be the first decoder
token (`bos_id` may differ per example).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coolmix.errors import ConfigError
from coolmix.models.gpt import Block, check_dims, init_weights, scale_residual_init

__all__ = ["Seq2Seq", "Seq2SeqConfig", "key_mask"]

_KV = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Shape of a `Seq2Seq`. `max_len` bounds both the source and the decoder input length."""

    vocab_size: int
    d_model: int = 128
    n_enc: int = 3
    n_dec: int = 3
    n_head: int = 4
    d_ff: int = 512
    max_len: int = 64
    dropout: float = 0.1
    """Applied to embeddings, attention probabilities and residual branches while training."""

    def __post_init__(self) -> None:
        check_dims(self, ("n_enc", "n_dec"), cross_layers=self.n_dec if isinstance(self.n_dec, int) else 0)


def key_mask(src_pad_mask: Tensor | None) -> Tensor | None:
    """[B, S] pad mask (True = padding) -> SDPA keep mask [B, 1, 1, S] (True = may attend).

    A source that is all padding keeps every key instead: SDPA gives NaN for a query row with no
    allowed key in some torch versions and backends (2.13 on CPU gives zeros), and such an example
    has no real source to protect anyway.
    """
    if src_pad_mask is None:
        return None
    keep = ~src_pad_mask
    keep = keep | ~keep.any(dim=1, keepdim=True)
    return keep[:, None, None, :]


class Seq2Seq(nn.Module):
    """Encoder-decoder: `forward(src [B, S], tgt_in [B, T], src_pad_mask) -> logits [B, T, V]`."""

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.emb = nn.Embedding(cfg.vocab_size, d)
        self.src_pos = nn.Embedding(cfg.max_len, d)
        self.tgt_pos = nn.Embedding(cfg.max_len, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(Block(d, cfg.n_head, cfg.d_ff, cfg.dropout) for _ in range(cfg.n_enc))
        self.ln_enc = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(
            Block(d, cfg.n_head, cfg.d_ff, cfg.dropout, cross=True) for _ in range(cfg.n_dec)
        )
        self.ln_dec = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.emb.weight  # tied: source, target and output share one table
        # Encoder blocks add 2 residual branches each, decoder blocks 3 (self, cross, MLP).
        init_weights(self, n_residual=2 * cfg.n_enc)
        scale_residual_init(self.decoder, n_residual=3 * cfg.n_dec)

    def _check_len(self, n: int, what: str) -> None:
        if n > self.cfg.max_len:
            raise ValueError(f"{what} length {n} exceeds max_len={self.cfg.max_len}")

    def encode(self, src: Tensor, src_pad_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Encoder states [B, S, D] and the keep mask that cross-attention must use with them."""
        self._check_len(src.shape[1], "source")
        keep = key_mask(src_pad_mask)
        pos = torch.arange(src.shape[1], device=src.device)
        x = self.drop(self.emb(src) + self.src_pos(pos))
        for block in self.encoder:
            x = block(x, keep=keep)
        return self.ln_enc(x), keep

    def decode(self, tgt_in: Tensor, memory: Tensor, keep: Tensor | None) -> Tensor:
        """Teacher-forced decoder logits [B, T, V]; position t sees tgt_in[:, :t+1] and all of memory."""
        self._check_len(tgt_in.shape[1], "decoder input")
        pos = torch.arange(tgt_in.shape[1], device=tgt_in.device)
        x = self.drop(self.emb(tgt_in) + self.tgt_pos(pos))
        for block in self.decoder:
            x = block(x, causal=True, mem=memory, mem_keep=keep)
        return self.lm_head(self.ln_dec(x))

    def forward(self, src: Tensor, tgt_in: Tensor, src_pad_mask: Tensor | None = None) -> Tensor:
        """Next-token logits for each decoder position; `src_pad_mask` is True at source padding."""
        memory, keep = self.encode(src, src_pad_mask)
        return self.decode(tgt_in, memory, keep)

    def num_params(self, non_embedding: bool = False) -> int:
        """Distinct parameters (the tied head counts once); `non_embedding` drops the three tables."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= sum(e.weight.numel() for e in (self.emb, self.src_pos, self.tgt_pos))
        return n

    # ----------------------------------------------------------------------------------------------
    # Incremental decoding: cross-attention keys/values are computed once, self-attention keys/values
    # are cached per layer, so each new token costs one position instead of the whole prefix.

    def _step(
        self, tok: Tensor, t: int, past: list[_KV] | None, mem_kv: list[_KV], keep: Tensor | None
    ) -> tuple[Tensor, list[_KV]]:
        """Logits [B, V] for decoder position `t` fed token `tok` [B]; returns the extended cache."""
        x = self.emb(tok)[:, None, :] + self.tgt_pos.weight[t]
        new_past = []
        for i, block in enumerate(self.decoder):
            x, kv = block.step(x, None if past is None else past[i], mem_kv[i], keep)
            new_past.append(kv)
        return self.lm_head(self.ln_dec(x))[:, 0], new_past

    @torch.no_grad()
    def generate(
        self,
        src: Tensor,
        max_new_tokens: int,
        bos_id: int | Tensor,
        eos_id: int,
        pad_id: int,
        beam_size: int = 1,
        length_penalty: float = 1.0,
    ) -> Tensor:
        """Decode `src` [B, S] (padded with `pad_id`) into at most `max_new_tokens` tokens per example.

        `bos_id` is the first decoder token: one id, or one per example (e.g. a target-language
        tag). Greedy when `beam_size == 1`, else beam search ranking finished hypotheses by
        sum log-prob / length**length_penalty. The output [B, L <= max_new_tokens] excludes the
        start token, keeps each sequence's first `eos_id` and pads after it with `pad_id`; L is the
        longest decoded length. Runs in eval mode (no dropout) and restores the previous mode.
        """
        if isinstance(max_new_tokens, bool) or not 1 <= max_new_tokens <= self.cfg.max_len:
            raise ConfigError("max_new_tokens", max_new_tokens, f"must be in [1, max_len={self.cfg.max_len}]")
        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
            raise ConfigError("beam_size", beam_size, "must be an integer >= 1")
        was_training = self.training
        self.eval()
        try:
            b = src.shape[0]
            start = torch.as_tensor(bos_id, dtype=torch.long, device=src.device).expand(b)
            memory, keep = self.encode(src, src == pad_id)
            if beam_size == 1:
                return self._greedy(start, memory, keep, max_new_tokens, eos_id, pad_id)
            return self._beam(start, memory, keep, max_new_tokens, eos_id, pad_id, beam_size, length_penalty)
        finally:
            self.train(was_training)

    def _greedy(
        self, start: Tensor, memory: Tensor, keep: Tensor | None, max_new: int, eos_id: int, pad_id: int
    ) -> Tensor:
        """Batched argmax decoding; a row that has emitted eos continues with pad until all have."""
        b = start.shape[0]
        mem_kv = [block.cross_attn.project_kv(memory) for block in self.decoder]
        out = start.new_full((b, max_new), pad_id)
        done = torch.zeros(b, dtype=torch.bool, device=start.device)
        tok, past = start, None
        for t in range(max_new):
            logits, past = self._step(tok, t, past, mem_kv, keep)
            tok = logits.argmax(dim=-1).masked_fill(done, pad_id)
            out[:, t] = tok
            done |= tok == eos_id
            if bool(done.all()):
                return out[:, : t + 1]
        return out

    def _beam(
        self,
        start: Tensor,
        memory: Tensor,
        keep: Tensor | None,
        max_new: int,
        eos_id: int,
        pad_id: int,
        k: int,
        length_penalty: float,
    ) -> Tensor:
        """Batched beam search with `k` beams per example; hypotheses are rows b*k .. b*k+k-1.

        Finished hypotheses keep their beam slot (extended by free pads) and the search runs until
        all k are finished or `max_new` steps; the output is cut to the longest chosen hypothesis.
        """
        b, v = start.shape[0], self.cfg.vocab_size
        dev = start.device
        memory = memory.repeat_interleave(k, dim=0)
        keep = None if keep is None else keep.repeat_interleave(k, dim=0)
        mem_kv = [block.cross_attn.project_kv(memory) for block in self.decoder]
        # Only beam 0 is alive at first, so the k initial candidates are distinct tokens.
        scores = torch.full((b, k), float("-inf"), device=dev)
        scores[:, 0] = 0.0
        seqs = start.new_full((b, k, max_new), pad_id)
        done = torch.zeros(b, k, dtype=torch.bool, device=dev)
        lengths = torch.zeros(b, k, dtype=torch.long, device=dev)
        # A finished hypothesis has exactly one continuation: pad, at no cost.
        finished_row = torch.full((v,), float("-inf"), device=dev)
        finished_row[pad_id] = 0.0
        rows = torch.arange(b, device=dev)[:, None] * k
        tok, past = start.repeat_interleave(k), None
        for t in range(max_new):
            logits, past = self._step(tok, t, past, mem_kv, keep)
            logp = F.log_softmax(logits.float(), dim=-1).view(b, k, v)
            logp = torch.where(done[..., None], finished_row, logp)
            scores, flat = (scores[..., None] + logp).view(b, k * v).topk(k, dim=-1)
            beam, word = flat // v, flat % v
            seqs = seqs.gather(1, beam[..., None].expand(-1, -1, max_new)).clone()
            seqs[:, :, t] = word
            prev_done = done.gather(1, beam)
            lengths = lengths.gather(1, beam) + (~prev_done).long()
            done = prev_done | (word == eos_id)
            src_rows = (rows + beam).view(-1)
            past = [(pk[src_rows], pv[src_rows]) for pk, pv in past]
            tok = word.view(-1)
            if bool(done.all()):
                break
        final = scores / lengths.clamp(min=1).float() ** length_penalty
        best = final.argmax(dim=-1)
        pick = torch.arange(b, device=dev)
        return seqs[pick, best, : int(lengths[pick, best].max())]
