"""Cooldown inside Megatron-core: a coolmix blend over per-language GPTDatasets, resumed by consumed_samples.

Run: python examples/megatron_example.py (needs ``pip install 'coolmix[engines]'``; CPU only). It
writes three tiny languages with Megatron's own IndexedDatasetBuilder, returns a
`CoolmixBlendedDataset` from a ``train_valid_test_datasets_provider`` (τ=5 for the first half,
τ=1 after, the paper's Cooldown, with scalarization weights towards τ=1), reads it the way
Megatron's training loop does (global samples [consumed, consumed + global batch) cut into
micro-batches per data-parallel rank), restarts at a consumed_samples under another DP size, and
reduces a loss with `loss_func`.
"""

import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
from megatron.core.datasets.indexed_dataset import DType, IndexedDataset, IndexedDatasetBuilder
from megatron.core.datasets.utils import Split

import coolmix as cm
from coolmix.integrations.megatron import CoolmixBlendedDataset, loss_func

DOCS = {"en": 400, "it": 60, "sw": 5}  # documents per language
SEQ, VOCAB, GLOBAL_BATCH, MICRO, TRAIN_ITERS = 32, 256, 16, 2, 60


class Tokenizer:  # what GPTDataset reads from a tokenizer
    vocab_size, eod, pad = VOCAB, VOCAB - 1, VOCAB - 2

    def __init__(self):
        self.unique_identifiers = {"class": "Tokenizer", "vocab_size": VOCAB}


def build_language(prefix: str, docs: int, rng: np.random.Generator) -> None:
    builder = IndexedDatasetBuilder(prefix + ".bin", dtype=DType.optimal_dtype(VOCAB))
    for _ in range(docs):
        n = int(rng.integers(16, 96))
        builder.add_document(rng.integers(0, VOCAB - 2, n), [n])
    builder.finalize(prefix + ".idx")


def train_valid_test_datasets_provider(train_val_test_num_samples, root: Path):
    """What a Megatron user passes to ``pretrain``: per-language GPTDatasets, blended by coolmix."""
    config = GPTDatasetConfig(
        random_seed=1234, sequence_length=SEQ, tokenizer=Tokenizer(), reset_position_ids=False,
        reset_attention_mask=False, eod_mask_loss=False, path_to_cache=str(root / "megatron_cache"),
    )
    per_language = {}
    for lang in DOCS:
        ix = IndexedDataset(str(root / lang))
        docs = np.arange(len(ix.document_indices) - 1, dtype=np.int32)
        per_language[lang] = GPTDataset(ix, str(root / lang), docs, None, Split.train, config)  # one epoch
    sampler = cm.MixtureSampler(
        {lang: len(ds) for lang, ds in per_language.items()},  # sizes in sequences (or tokens + items=)
        cm.Cooldown(hot=5.0, cold=1.0, at=0.5),
        total_steps=TRAIN_ITERS,
        batch_size=GLOBAL_BATCH,  # = --global-batch-size
    )
    train = CoolmixBlendedDataset(
        per_language, sampler, loss_target=1.0, num_samples=train_val_test_num_samples[0],
        cache_dir=root / "coolmix_index",
    )
    return train, None, None


def megatron_micro_batches(dataset, consumed: int, rank: int, dp: int):
    """Megatron's MegatronPretrainingSampler slicing: rank r reads [r·m, (r+1)·m) of each m·dp chunk."""
    chunk = MICRO * dp
    for start in range(consumed, len(dataset) - chunk + 1, chunk):
        yield list(range(start + rank * MICRO, start + (rank + 1) * MICRO))


def global_order(dataset, consumed: int, dp: int, iterations: int) -> list[tuple[int, int]]:
    """(dataset_id, first token) of every sample the dp ranks read in ``iterations`` iterations."""
    per_rank = []
    for rank in range(dp):
        micro_batches = iterations * GLOBAL_BATCH // (MICRO * dp)
        batches = list(megatron_micro_batches(dataset, consumed, rank, dp))[:micro_batches]
        per_rank.append(list(torch.utils.data.DataLoader(dataset, batch_sampler=batches)))
    out = []
    for chunk in zip(*per_rank, strict=True):
        for b in chunk:
            out += list(zip(b["dataset_id"].tolist(), b["tokens"][:, 0].tolist(), strict=True))
    return out


def main():
    with tempfile.TemporaryDirectory(prefix="coolmix-megatron-") as tmp:
        run(Path(tmp))


def run(root: Path):
    rng = np.random.default_rng(0)
    for lang, docs in DOCS.items():
        build_language(str(root / lang), docs, rng)
    train, _, _ = train_valid_test_datasets_provider([TRAIN_ITERS * GLOBAL_BATCH, 0, 0], root)
    print(f"{len(train)} training samples over {', '.join(train.names)}")

    # 1. shares per phase, read through Megatron's DP=2 slicing
    seen = global_order(train, consumed=0, dp=2, iterations=TRAIN_ITERS)
    ids = np.array([d for d, _ in seen])
    half = len(ids) // 2
    for label, part in (("τ=5 half", ids[:half]), ("τ=1 half", ids[half:])):
        share = np.bincount(part, minlength=3) / len(part)
        print(f"{label}: " + ", ".join(f"{n} {s:.3f}" for n, s in zip(train.names, share, strict=True)))
    assert np.bincount(ids[:half], minlength=3)[2] > np.bincount(ids[half:], minlength=3)[2]

    # 2. restart at iteration 20 (consumed_samples = 20 · global batch) under DP=4: the same samples
    k = 20 * GLOBAL_BATCH
    restarted, _, _ = train_valid_test_datasets_provider([TRAIN_ITERS * GLOBAL_BATCH, 0, 0], root)
    assert restarted.index.loaded_from_cache  # the index was mapped from the cache, not rebuilt
    assert global_order(restarted, consumed=k, dp=4, iterations=TRAIN_ITERS - 20) == seen[k:]
    print(f"restart at consumed_samples={k} with DP=4 continues the DP=2 run exactly")

    # 3. the unbiased scalarization loss on one micro-batch (per-token losses from your model)
    batch = torch.utils.data.default_collate([train[g] for g in range(MICRO)])
    per_token = torch.rand(MICRO, SEQ)
    loss_fn = partial(loss_func, batch["loss_mask"], loss_weight=batch["loss_weight"])
    loss, tokens, _ = loss_fn(per_token)
    weights = batch["loss_weight"].tolist()
    print(f"loss weights {weights}, Σ w·ℓ = {float(loss):.3f} over {int(tokens)} tokens")


if __name__ == "__main__":
    main()
