"""CoolmixBlendedDataset against the real megatron-core (0.16.1) on CPU: GPTDatasets built from tiny
.bin/.idx files by Megatron's own IndexedDatasetBuilder, Megatron's consumed-samples slicing,
Megatron's own BlendedDataset index as the reference for prefix counts."""

from __future__ import annotations

import numpy as np
import pytest

from coolmix import ConfigError, Cooldown, MixtureSampler, temperature_probs

pytest.importorskip("megatron.core", reason="megatron-core not installed (pip install 'coolmix[engines]')")
torch = pytest.importorskip("torch")

from megatron.core.datasets.blended_dataset import BlendedDataset  # noqa: E402
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig  # noqa: E402
from megatron.core.datasets.indexed_dataset import DType, IndexedDataset, IndexedDatasetBuilder  # noqa: E402
from megatron.core.datasets.utils import Split  # noqa: E402

from coolmix.integrations.megatron import CoolmixBlendedDataset, loss_func  # noqa: E402

DOCS = {"en": 300, "it": 60, "sw": 6}  # documents per language
SEQ, VOCAB = 16, 128
GBS = 16  # Megatron's --global-batch-size = the sampler's batch_size
STEPS = 40


class _Tokenizer:
    """What GPTDataset reads from a tokenizer (vocab size, eod, pad, identifiers)."""

    vocab_size, eod, pad = VOCAB, VOCAB - 1, VOCAB - 2

    def __init__(self) -> None:
        self.unique_identifiers = {"class": "_Tokenizer", "vocab_size": VOCAB}


def _config() -> GPTDatasetConfig:
    return GPTDatasetConfig(
        random_seed=1234,
        sequence_length=SEQ,
        tokenizer=_Tokenizer(),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        path_to_cache=None,
    )


def _gpt(prefix: str, num_samples: int | None) -> GPTDataset:
    ix = IndexedDataset(prefix)
    docs = np.arange(len(ix.document_indices) - 1, dtype=np.int32)
    return GPTDataset(ix, prefix, docs, num_samples, Split.train, _config())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, str]:
    """One .bin/.idx per language, written by Megatron's IndexedDatasetBuilder."""
    root = tmp_path_factory.mktemp("megatron")
    rng = np.random.default_rng(0)
    prefixes = {}
    for lang, docs in DOCS.items():
        prefix = str(root / lang)
        builder = IndexedDatasetBuilder(prefix + ".bin", dtype=DType.optimal_dtype(VOCAB))
        for _ in range(docs):
            n = int(rng.integers(8, 40))
            builder.add_document(rng.integers(0, VOCAB - 2, n), [n])
        builder.finalize(prefix + ".idx")
        prefixes[lang] = prefix
    return prefixes


@pytest.fixture(scope="module")
def datasets(corpus) -> dict[str, GPTDataset]:
    return {lang: _gpt(prefix, None) for lang, prefix in corpus.items()}  # one epoch each


def _sampler(datasets, schedule=3.0, steps=STEPS) -> MixtureSampler:
    return MixtureSampler({k: len(v) for k, v in datasets.items()}, schedule, steps, GBS, seed=7)


def megatron_slices(total: int, consumed: int, micro: int, rank: int, dp: int):
    """MegatronPretrainingSampler (megatron/training/datasets/data_samplers.py), from its documented
    behaviour: global indices consumed, consumed+1, ... are cut into chunks of micro·dp; rank r gets
    [r·micro, (r+1)·micro) of each full chunk, one micro-batch per chunk; a partial chunk is dropped."""
    chunk = micro * dp
    for start in range(consumed, total - chunk + 1, chunk):
        yield list(range(start + rank * micro, start + (rank + 1) * micro))


def _fingerprint(sample: dict) -> tuple:
    return int(sample["dataset_id"]), tuple(np.asarray(sample["tokens"]).tolist())


def _global_stream(ds, consumed: int, dp: int, micro: int = 2) -> list[tuple]:
    """Every rank's micro-batches through a real torch DataLoader, put back in global order."""
    per_rank = []
    for rank in range(dp):
        batches = list(megatron_slices(len(ds), consumed, micro, rank, dp))
        loader = torch.utils.data.DataLoader(ds, batch_sampler=batches)
        per_rank.append(list(loader))
    out = []
    for chunk in zip(*per_rank, strict=True):  # chunk c: rank 0's micro-batch, rank 1's, ...
        for batch in chunk:
            for j in range(len(batch["dataset_id"])):
                out.append((int(batch["dataset_id"][j]), tuple(batch["tokens"][j].tolist())))
    return out


def test_samples_are_the_sampler_stream_over_the_megatron_datasets(datasets):
    s = _sampler(datasets)
    ds = CoolmixBlendedDataset(datasets, s)
    assert len(ds) == STEPS * GBS
    names = list(datasets)
    for g in (0, 1, 17, 333, len(ds) - 1):
        d, item = s.sample_at(g)
        got = ds[g]
        assert got["dataset_id"] == d
        ref = datasets[names[d]][item]
        assert set(ref) <= set(got)
        for key in ref:
            assert torch.equal(got[key], ref[key]), key
        assert "loss_weight" not in got


@pytest.mark.parametrize("k", [0, 48, 200])
def test_consumed_samples_slicing_gives_one_global_sequence_at_dp_1_2_4(datasets, tmp_path, k):
    s = _sampler(datasets)
    reference = [_fingerprint(CoolmixBlendedDataset(datasets, s, build=False)[g]) for g in range(STEPS * GBS)]
    cached = CoolmixBlendedDataset(datasets, s, cache_dir=tmp_path)
    for dp in (1, 2, 4):
        # a fresh process resuming at consumed_samples=k: the dataset is rebuilt (mapped from the cache)
        restarted = CoolmixBlendedDataset(datasets, _sampler(datasets), cache_dir=tmp_path)
        stream = _global_stream(restarted, consumed=k, dp=dp)
        assert stream == reference[k:], dp
    # the restart mapped the file written by the first build
    d_path, _ = cached.index.cache_paths(len(cached))
    assert d_path.is_file() and restarted.index.loaded_from_cache and not cached.index.loaded_from_cache


def test_restart_at_k_continues_the_uninterrupted_run_across_a_dp_change(datasets, tmp_path):
    s = _sampler(datasets)
    whole = _global_stream(CoolmixBlendedDataset(datasets, s), consumed=0, dp=2)
    k = 7 * GBS  # Megatron's checkpoint holds consumed_train_samples = iteration · global batch
    first = _global_stream(CoolmixBlendedDataset(datasets, s, cache_dir=tmp_path), consumed=0, dp=2)[:k]
    second = _global_stream(CoolmixBlendedDataset(datasets, _sampler(datasets), cache_dir=tmp_path), k, dp=4)
    assert first + second == whole


def _prefix_errors(domains: np.ndarray, p: np.ndarray, every: int) -> float:
    """max over prefixes n (multiples of ``every``) and domains of |count_d(n) − n·p_d|."""
    onehot = np.zeros((len(domains), len(p)))
    onehot[np.arange(len(domains)), domains] = 1
    counts = np.cumsum(onehot, axis=0)[every - 1 :: every]
    n = np.arange(every, len(domains) + 1, every)[:, None]
    return float(np.abs(counts - n * p).max())


def test_prefix_counts_at_constant_tau_against_megatrons_blended_dataset(corpus, datasets):
    tau, steps = 3.0, 200
    s = _sampler(datasets, tau, steps)
    sizes = {k: len(v) for k, v in datasets.items()}
    p = np.array(list(temperature_probs(sizes, tau).values()))
    n = steps * GBS
    ours = CoolmixBlendedDataset(datasets, s)
    dom = ours.index.build()[0].astype(np.int64)
    big = [_gpt(prefix, n) for prefix in corpus.values()]  # enough epochs for Megatron's blend
    theirs = BlendedDataset(big, p.tolist(), n, _config())
    mdom = np.asarray(theirs.dataset_index, dtype=np.int64)
    assert len(mdom) == len(dom) == n
    cool_batch, meg_batch = _prefix_errors(dom, p, GBS), _prefix_errors(mdom, p, GBS)
    cool_any, meg_any = _prefix_errors(dom, p, 1), _prefix_errors(mdom, p, 1)
    print(
        f"\nworst |count − n·p| over prefixes, τ={tau}, {n} samples: coolmix {cool_batch:.3f} at batch "
        f"boundaries ({cool_any:.3f} inside batches, order shuffled), Megatron BlendedDataset "
        f"{meg_batch:.3f} at batch boundaries ({meg_any:.3f} at every sample)"
    )
    assert cool_batch < 1.0  # the exact composition's guarantee, at every optimizer step
    assert theirs[5]["dataset_id"] == mdom[5]  # the reference really is Megatron's dataset


def test_cooldown_shares_per_window_follow_tau_of_t(datasets):
    sched = Cooldown(hot=5.0, cold=1.0, at=0.5)
    s = _sampler(datasets, sched)
    ds = CoolmixBlendedDataset(datasets, s)
    dom = np.array([ds[g]["dataset_id"] for g in range(len(ds))])
    window = 5  # steps
    shares = []
    for w0 in range(0, STEPS, window):
        got = np.bincount(dom[w0 * GBS : (w0 + window) * GBS], minlength=3)
        want = sum(GBS * s.probs_array(t) for t in range(w0, w0 + window))
        assert np.abs(got - want).max() < 2.0, (w0, got, want)  # cumulative within 1 at both ends
        shares.append(got / got.sum())
    hot, cold = np.mean(shares[: len(shares) // 2], axis=0), np.mean(shares[len(shares) // 2 :], axis=0)
    p5, p1 = s.probs_array(0), s.probs_array(STEPS - 1)
    np.testing.assert_allclose(hot, p5, atol=0.03)
    np.testing.assert_allclose(cold, p1, atol=0.03)
    assert hot[2] > 3 * cold[2]  # the rare language is upsampled only before the cooldown


def test_loss_weight_and_the_two_estimators(datasets):
    sched = Cooldown(hot=5.0, cold=1.0, at=0.5)
    s = _sampler(datasets, sched)
    ds = CoolmixBlendedDataset(datasets, s, loss_target=1.0)
    sizes = np.array([len(v) for v in datasets.values()], dtype=float)
    p1 = sizes / sizes.sum()
    for g in (0, 100, STEPS * GBS - 1):
        d = ds[g]["dataset_id"]
        want = p1[d] / s.probs_array(g // GBS)[d]
        assert ds[g]["loss_weight"] == pytest.approx(want, rel=1e-6)
        assert ds[g]["loss_weight"].dtype == np.float32
    assert ds[STEPS * GBS - 1]["loss_weight"] == pytest.approx(1.0)  # τ=1 half samples the target
    batch = torch.utils.data.default_collate([ds[g] for g in range(4)])
    losses = torch.rand(4, SEQ, dtype=torch.float64) + 0.5
    mask = batch["loss_mask"].clone()
    mask[0, :3] = 0
    losses[0, 0] = float("nan")  # a masked NaN never reaches the loss
    w = batch["loss_weight"].double()
    num, tokens, report = loss_func(mask, losses, batch["loss_weight"])
    m = mask.double()
    clean = torch.nan_to_num(losses)
    assert tokens.dtype == torch.int32 and int(tokens) == int(m.sum())
    assert float(num) == pytest.approx(float((clean * m * w[:, None]).sum()), rel=1e-6)
    assert report["lm loss"].shape == (2,)
    # self-normalised = Megatron's own loss with the mask scaled by w, after its division by the count
    sn, tokens2, _ = loss_func(mask, losses, batch["loss_weight"], reduction="self_normalized")
    scaled = m * w[:, None]
    megatron_scaled_mask = float((clean * scaled).sum() / scaled.sum())
    assert float(sn) / int(tokens2) == pytest.approx(megatron_scaled_mask, rel=1e-6)
    assert float(num) / int(tokens) != pytest.approx(megatron_scaled_mask, rel=1e-3)
    with pytest.raises(ConfigError, match="reduction"):
        loss_func(mask, losses, w, reduction="avg")


def test_sizes_names_and_num_samples_are_checked(datasets):
    s = _sampler(datasets)
    wrong = MixtureSampler({k: len(v) + (k == "sw") for k, v in datasets.items()}, 3.0, STEPS, GBS)
    with pytest.raises(ConfigError, match=r"datasets\['sw'\]"):
        CoolmixBlendedDataset(datasets, wrong)
    with pytest.raises(ConfigError, match="datasets"):
        CoolmixBlendedDataset({"en": datasets["en"], "it": datasets["it"]}, s)
    with pytest.raises(ConfigError, match="datasets"):
        CoolmixBlendedDataset([datasets["en"]], s)
    with pytest.raises(ConfigError, match="num_samples"):
        CoolmixBlendedDataset(datasets, s, num_samples=STEPS * GBS + 1)
    ok = CoolmixBlendedDataset(list(datasets.values()), s, num_samples=STEPS * GBS, build=False)
    assert len(ok) == STEPS * GBS
    with pytest.raises(ConfigError, match="loss_target"):
        ok.weights_at(0)


class _Docs:
    """Any dataset with __len__/__getitem__ works (here: n documents, sample i = {"doc": i})."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"doc": i}


def test_a_language_below_5e_5_keeps_its_exact_share():
    """MaxText rounds such a weight to 0 (and Grain refuses it); the coolmix blend gives it X ± 1."""
    sizes = {"en": 2_000_000, "it": 300_000, "yo": 90}
    p = np.array(list(temperature_probs(sizes, 1.0).values()))
    assert p[2] < 5e-5
    steps, b = 1024, 512
    ds = CoolmixBlendedDataset({k: _Docs(v) for k, v in sizes.items()}, MixtureSampler(sizes, 1.0, steps, b))
    dom = ds.index.build()[0].astype(np.int64)
    got = np.bincount(dom, minlength=3)
    assert abs(got[2] - steps * b * p[2]) < 1.0 and got[2] >= 20
    yo = [ds[int(g)] for g in np.flatnonzero(dom == 2)]
    assert all(x["dataset_id"] == 2 and 0 <= x["doc"] < 90 for x in yo)
    assert len({x["doc"] for x in yo}) == len(yo)  # without replacement within a pass over the 90 documents
