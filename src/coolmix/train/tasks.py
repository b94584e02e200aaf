"""Task glue: corpus text -> pre-tokenised arrays (once) -> batches -> model inputs; evaluation.

One example is one line (LM) or one sentence pair (MT); nothing is packed, so every example's
loss belongs to exactly one domain.

- LM: ``<2xx> text <eos>``, at most ``seq_len + 1`` tokens; the model reads row[:-1] and predicts
  row[1:] (the language tag is given, never predicted).
- MT: source ``text <eos>`` (``src_len`` tokens); target row ``<2xx> text <eos>`` of
  ``tgt_len + 1`` tokens, so the decoder input starts with the target-language tag.

Each split is tokenised once into one int64 array for all domains (rows of domain k start at
``offsets[k]``), so a batch is a single fancy index, trimmed to its longest row.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coolmix.errors import ConfigError
from coolmix.train.config import TaskConfig, TrainConfig
from coolmix.train.distributed import Env, all_gather_objects, all_reduce_sum

__all__ = [
    "TASKS",
    "Batch",
    "DataCache",
    "LMTask",
    "MTTask",
    "SplitArrays",
    "TaskData",
    "check_config",
    "check_model",
    "prepare",
    "split_losses",
    "translate",
]


class DataCache:
    """Corpora, tokenizers and encoded splits shared by in-process runs (no module-level state).

    Pass one instance to several `train` calls (a reproduction grid) so each corpus is loaded,
    each tokenizer trained and each split tokenised once; entries are keyed by their config.
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key not in self._items:
            self._items[key] = make()
        return self._items[key]

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class SplitArrays:
    """One tokenised split, all domains in one array; rows of domain k are offsets[k]:offsets[k+1]."""

    names: tuple[str, ...]
    offsets: np.ndarray
    tgt: np.ndarray
    """LM: the token rows; MT: the target rows (tag, text, eos). Right-padded, int64."""
    tgt_len: np.ndarray
    src: np.ndarray | None = None
    src_len: np.ndarray | None = None
    refs: Mapping[str, Sequence[str]] | None = None
    """MT: reference target texts per domain (for chrF/BLEU)."""

    def size(self, k: int) -> int:
        return int(self.offsets[k + 1] - self.offsets[k])

    def sizes(self) -> dict[str, int]:
        return {n: self.size(k) for k, n in enumerate(self.names)}


@dataclass
class Batch:
    """Model inputs, next-token targets and the domain id of every example (all on device)."""

    inputs: tuple[torch.Tensor | None, ...]
    targets: torch.Tensor
    domains: torch.Tensor


def _pack(seqs: Sequence[Sequence[int]], width: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad/truncate token lists to ``width`` -> (int64 [n, width], lengths), vectorised."""
    lens = np.fromiter((min(len(s), width) for s in seqs), dtype=np.int64, count=len(seqs))
    flat = np.fromiter(
        itertools.chain.from_iterable(s[:width] for s in seqs), dtype=np.int64, count=int(lens.sum())
    )
    out = np.full((len(seqs), width), pad, dtype=np.int64)
    out[np.arange(width) < lens[:, None]] = flat  # row-major order matches the chained tokens
    return out, lens


def _concat(parts: Sequence[tuple[np.ndarray, np.ndarray]], width: int) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((0, width), dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate([a for a, _ in parts]), np.concatenate([n for _, n in parts])


class LMTask:
    """Decoder-only LM over lines of text; the model is called as ``model(tokens)``."""

    kind = "lm"

    def __init__(self, tok: Any, cfg: TaskConfig) -> None:
        self.tok = tok
        self.width = cfg.seq_len + 1
        self.key = ("lm", cfg.seq_len)

    def encode(self, split: Mapping[str, Sequence[str]]) -> SplitArrays:
        names = tuple(split)
        eos, parts = self.tok.eos_id, []
        for lang in names:
            tag = self.tok.lang_id(lang)
            ids = self.tok.encode_batch(list(split[lang])) if split[lang] else []
            parts.append(_pack([[tag, *x, eos] for x in ids], self.width, self.tok.pad_id))
        tgt, lens = _concat(parts, self.width)
        return SplitArrays(names, _offsets(parts), tgt, lens)

    def batch(self, data: SplitArrays, domains: np.ndarray, items: np.ndarray, device: torch.device) -> Batch:
        rows = data.offsets[domains] + items
        width = int(data.tgt_len[rows].max())
        tokens = torch.from_numpy(data.tgt[rows, :width]).to(device, non_blocking=True)
        return Batch((tokens[:, :-1],), tokens[:, 1:], torch.from_numpy(domains).to(device))


class MTTask:
    """One-to-many MT (source English); the model is called as ``model(src, tgt_in, src_pad_mask)``."""

    kind = "mt"

    def __init__(self, tok: Any, cfg: TaskConfig) -> None:
        self.tok = tok
        self.src_width, self.tgt_width = cfg.src_len, cfg.tgt_len + 1
        self.decode_len = cfg.decode_len or cfg.tgt_len
        self.beam_size = cfg.beam_size
        self.key = ("mt", cfg.src_len, cfg.tgt_len)

    def encode(self, split: Mapping[str, Sequence[tuple[str, str]]]) -> SplitArrays:
        names = tuple(split)
        eos, pad = self.tok.eos_id, self.tok.pad_id
        srcs, tgts, refs = [], [], {}
        for lang in names:
            pairs = list(split[lang])
            refs[lang] = [t for _, t in pairs]
            src_ids = self.tok.encode_batch([s for s, _ in pairs]) if pairs else []
            tgt_ids = self.tok.encode_batch(refs[lang]) if pairs else []
            # a truncated source still ends in <eos>, so the encoder always sees the boundary
            srcs.append(_pack([[*x[: self.src_width - 1], eos] for x in src_ids], self.src_width, pad))
            tag = self.tok.lang_id(lang)
            tgts.append(_pack([[tag, *x, eos] for x in tgt_ids], self.tgt_width, pad))
        src, src_len = _concat(srcs, self.src_width)
        tgt, tgt_len = _concat(tgts, self.tgt_width)
        return SplitArrays(names, _offsets(tgts), tgt, tgt_len, src, src_len, refs)

    def batch(self, data: SplitArrays, domains: np.ndarray, items: np.ndarray, device: torch.device) -> Batch:
        assert data.src is not None and data.src_len is not None
        rows = data.offsets[domains] + items
        s_w, t_w = int(data.src_len[rows].max()), int(data.tgt_len[rows].max())
        src = torch.from_numpy(data.src[rows, :s_w]).to(device, non_blocking=True)
        tgt = torch.from_numpy(data.tgt[rows, :t_w]).to(device, non_blocking=True)
        mask = src == self.tok.pad_id
        return Batch((src, tgt[:, :-1], mask), tgt[:, 1:], torch.from_numpy(domains).to(device))


def _offsets(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(n) for _, n in parts])]).astype(np.int64)


TASKS: dict[str, type[LMTask] | type[MTTask]] = {"lm": LMTask, "mt": MTTask}


@dataclass
class TaskData:
    """Everything the loop needs from the data layer, tokenised once."""

    corpus: Any
    tok: Any
    task: LMTask | MTTask
    splits: dict[str, SplitArrays]

    @property
    def names(self) -> tuple[str, ...]:
        return self.splits["train"].names


def check_model(cfg: TrainConfig, task: str) -> None:
    """Validate ``[model]`` for ``task`` without allocating it (built on the meta device), and
    check that its ``max_len`` holds the sequences ``[task]`` asks for."""
    from coolmix.models import build_model

    with torch.device("meta"):
        model = build_model(task, cfg.model, cfg.tokenizer.vocab_size)
    t = cfg.task
    field, need = (
        ("task.seq_len", t.seq_len) if task == "lm" else ("task.src_len/tgt_len", max(t.src_len, t.tgt_len))
    )
    if model.cfg.max_len < need:
        raise ConfigError("model.max_len", model.cfg.max_len, f"must be >= {field} = {need}")


def check_config(cfg: TrainConfig) -> None:
    """The checks that need no data: ``[model]`` against the task, when the corpus fixes the task
    (``bible`` is LM, ``gettext`` MT; for ``files``/``jsonl``/``hub`` `prepare` checks after loading)."""
    from coolmix.data import CORPORA

    task = CORPORA[cfg.data["name"]].task
    if task in TASKS:
        check_model(cfg, task)


def prepare(
    cfg: TrainConfig, cache: DataCache | None = None, splits: Sequence[str] = ("train", "dev", "test")
) -> TaskData:
    """Load the corpus, train (or reuse) the tokenizer and tokenise ``splits`` of it, via ``cache``."""
    from coolmix.data import CORPORA, load_corpus
    from coolmix.data.tokenizer import train_tokenizer

    cache = cache if cache is not None else DataCache()
    cache_dir = cfg.run.cache_dir or None
    data_key = json.dumps(cfg.data, sort_keys=True, default=str)
    spec = cfg.corpus_spec()
    corpus = cache.get(("corpus", data_key, cache_dir), lambda: load_corpus(spec, cache_dir=cache_dir))
    t = cfg.tokenizer
    tok_key = ("tokenizer", corpus.fingerprint, t.vocab_size, t.tau, t.seed, cache_dir)
    tok = cache.get(
        tok_key,
        lambda: train_tokenizer(corpus, vocab_size=t.vocab_size, tau=t.tau, seed=t.seed, cache_dir=cache_dir),
    )
    if CORPORA[spec.name].task not in TASKS:  # the data decided the task: check the model now
        check_model(cfg, corpus.task)
    task = TASKS[corpus.task](tok, cfg.task)
    arrays = {
        s: cache.get(("split", tok_key, task.key, s), lambda s=s: task.encode(corpus.split(s)))
        for s in splits
    }
    return TaskData(corpus, tok, task, arrays)


def _eval_items(data: SplitArrays, k: int, limit: int, env: Env) -> np.ndarray:
    """This rank's share (strided) of the first ``limit`` items of domain k (0: all)."""
    n = data.size(k) if limit == 0 else min(limit, data.size(k))
    return np.arange(env.rank, n, env.world_size, dtype=np.int64)


def _chunks(items: np.ndarray, size: int) -> list[np.ndarray]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@torch.no_grad()
def split_losses(
    model: torch.nn.Module,
    task: LMTask | MTTask,
    data: SplitArrays,
    loss_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    batch_size: int,
    max_items: int,
    env: Env,
    autocast: Any,
) -> dict[str, float]:
    """Per-domain token-level cross-entropy (Σ token losses / Σ tokens) on the first ``max_items``
    examples of each domain, split over ranks and summed with one all-reduce."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(2, len(data.names), dtype=torch.float64, device=env.device)
    for k in range(len(data.names)):
        items = _eval_items(data, k, max_items, env)
        for chunk in _chunks(items, batch_size):
            b = task.batch(data, np.full(len(chunk), k, dtype=np.int64), chunk, env.device)
            with autocast:
                loss, n_tok = loss_fn(model(*b.inputs), b.targets)
            sums[0, k] += (loss.double() * n_tok).sum()
            sums[1, k] += n_tok.sum()
    all_reduce_sum(sums, env)
    model.train(was_training)
    return dict(zip(data.names, (sums[0] / sums[1]).tolist(), strict=True))


@torch.no_grad()
def translate(
    model: torch.nn.Module,
    task: MTTask,
    data: SplitArrays,
    k: int,
    max_items: int,
    batch_size: int,
    env: Env,
    autocast: Any,
) -> tuple[list[str], list[str]]:
    """(hypotheses, references) for the first ``max_items`` sentences of domain k, decoded
    (greedy or beam) on all ranks in parallel and gathered in order on every rank."""
    assert data.src is not None and data.refs is not None
    was_training = model.training
    model.eval()
    tok, lang = task.tok, data.names[k]
    tag = tok.lang_id(lang)
    items = _eval_items(data, k, max_items, env)
    hyps: list[tuple[int, str]] = []
    for chunk in _chunks(items, batch_size):
        b = task.batch(data, np.full(len(chunk), k, dtype=np.int64), chunk, env.device)
        src = b.inputs[0]
        bos = torch.full((len(chunk),), tag, dtype=torch.long, device=env.device)
        with autocast:
            out = model.generate(
                src,
                max_new_tokens=task.decode_len,
                bos_id=bos,
                eos_id=tok.eos_id,
                pad_id=tok.pad_id,
                beam_size=task.beam_size,
            )
        for i, row in zip(chunk, out.tolist(), strict=True):
            hyps.append((int(i), tok.decode(_strip(row, tag, tok.eos_id, tok.pad_id))))
    model.train(was_training)
    ordered = sorted(itertools.chain.from_iterable(all_gather_objects(hyps, env)))
    refs = data.refs[lang]
    return [h for _, h in ordered], [refs[i] for i, _ in ordered]


def _strip(row: list[int], tag: int, eos: int, pad: int) -> list[int]:
    """Generated ids -> text ids: drop a leading language tag, stop at <eos>, drop padding."""
    if row and row[0] == tag:
        row = row[1:]
    out = []
    for t in row:
        if t == eos:
            break
        if t != pad:
            out.append(t)
    return out
