"""The Grain adapter against the real ``grain`` package (skipped, with the reason, where it is missing).

What is checked with Grain's own code: ``select_from_datasets`` with our map, its iterator state
(``get_state`` / ``set_state``) and exact continuation, pickling into spawned ``mp_prefetch``
workers, rank slices (ours and Grain's ``ds[r::W]``) partitioning the global stream, window counts
under Cooldown, a weight below 5e-5 (MaxText's rounding turns it into 0 and Grain refuses it).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

grain = pytest.importorskip("grain", reason="grain not installed (pip install 'coolmix[engines]')")

import coolmix as cm  # noqa: E402
from coolmix import ConfigError  # noqa: E402
from coolmix.integrations import grain as cg  # noqa: E402
from coolmix.integrations.ranks import DataParallel  # noqa: E402

SIZES = {"en": 900, "it": 80, "zh": 19, "sw": 1}
B = 16
ROOT = Path(__file__).resolve().parents[2]


def _sampler(steps: int = 40, schedule: object = None, composition: str = "exact") -> cm.MixtureSampler:
    sched = cm.Cooldown(hot=5, cold=1, at=0.5) if schedule is None else schedule
    return cm.MixtureSampler(SIZES, sched, total_steps=steps, batch_size=B, seed=3, composition=composition)


def _tagged(sampler: cm.MixtureSampler) -> dict[str, object]:
    """Per-domain MapDatasets whose elements say where they come from: (domain id, item)."""
    items = sampler.items
    return {
        n: grain.MapDataset.range(items[n]).map(lambda x, d=d: (d, x)) for d, n in enumerate(sampler.names)
    }


def _pairs(batches) -> np.ndarray:
    """Grain batches of (domain, item) tuples -> an (N, 2) int array in stream order."""
    return np.concatenate([np.stack([np.asarray(b[0]), np.asarray(b[1])], axis=1) for b in batches])


def _expected(sampler: cm.MixtureSampler, lo: int, hi: int) -> np.ndarray:
    d, i = sampler.sample_at(np.arange(lo, hi, dtype=np.int64))
    return np.stack([d, i], axis=1)


@pytest.mark.parametrize("composition", ["exact", "seekable"])
def test_map_is_sample_at_and_a_grain_selection_map(composition):
    s = _sampler(composition=composition)
    m = cg.selection_map(s)
    assert isinstance(m, grain.transforms.DatasetSelectionMap)
    assert len(m) == 40 * B
    g = np.arange(len(m))
    d, i = s.sample_at(g)
    assert [m[int(x)] for x in g] == list(zip(d.tolist(), i.tolist(), strict=True))
    ld, li = m.lookup(g[::-1])
    assert np.array_equal(ld, d[::-1]) and np.array_equal(li, i[::-1])


def test_mix_reads_the_stream_through_grain():
    s = _sampler()
    ds = cg.mix(_tagged(s), s)
    assert isinstance(ds, grain.MapDataset) and len(ds) == 40 * B
    got = _pairs(ds.to_iter_dataset().batch(B))
    assert np.array_equal(got, _expected(s, 0, 40 * B))


def test_state_round_trip_continues_exactly():
    s = _sampler()
    ds = cg.mix(_tagged(s), s).to_iter_dataset().batch(B)
    it = iter(ds)
    for _ in range(7):
        next(it)
    state = it.get_state()
    rest = _pairs(list(it))
    again = iter(ds)
    again.set_state(state)
    resumed = _pairs(list(again))
    assert np.array_equal(resumed, rest)
    assert np.array_equal(rest, _expected(s, 7 * B, 40 * B))


def test_pickled_into_grain_worker_processes_and_resumed():
    """mp_prefetch spawns workers and cloudpickles the dataset (our map included) into them."""
    s = _sampler(steps=12)
    ds = cg.mix(_tagged(s), s).to_iter_dataset().batch(B)
    opts = grain.MultiprocessingOptions(num_workers=1)
    it = iter(ds.mp_prefetch(opts))
    first = [next(it) for _ in range(5)]
    state = it.get_state()
    it.close()
    it2 = iter(ds.mp_prefetch(opts))
    it2.set_state(state)
    rest = list(it2)
    it2.close()
    assert np.array_equal(_pairs(first + rest), _expected(s, 0, 12 * B))


def test_grain_dataloader_with_a_worker_process_resumes():
    """MaxText's path: ``grain.DataLoader(data_source=..., sampler=IndexSampler, worker_count=1)``
    on one rank's view; its (JSON) state restores a second loader to the same continuation."""
    s = _sampler(steps=12)
    items = s.items
    parents = {n: [(d, x) for x in range(items[n])] for d, n in enumerate(s.names)}
    ds = cg.mix(parents, s, dp=DataParallel(1, 2))
    one = grain.sharding.ShardOptions(shard_index=0, shard_count=1)  # the rank view is the shard
    sampler = grain.samplers.IndexSampler(len(ds), one, shuffle=False, num_epochs=1, seed=0)
    loader = grain.DataLoader(data_source=ds, sampler=sampler, worker_count=1)
    it = iter(loader)
    head = [next(it) for _ in range(30)]
    state = it.get_state()
    rest = list(it)
    it2 = iter(grain.DataLoader(data_source=ds, sampler=sampler, worker_count=1))
    it2.set_state(state)
    assert list(it2) == rest
    got = np.array(head + rest)
    want = np.concatenate([np.stack(s.batch(t, 1, 2), axis=1) for t in range(12)])
    assert np.array_equal(got, want)


def test_pickle_carries_the_config_not_the_arrays(tmp_path):
    s = _sampler(steps=5000)
    m = cg.selection_map(s, build=True, cache_dir=tmp_path)
    blob = pickle.dumps(m)
    assert len(blob) < 20_000 < 5000 * B * 6  # the arrays (6 bytes an entry) stay behind
    back = pickle.loads(blob)
    g = np.arange(0, 5000 * B, 37)
    assert np.array_equal(np.stack(back.lookup(g)), np.stack(m.lookup(g)))
    assert back[123] == m[123]
    r = pickle.loads(pickle.dumps(m.shard(DataParallel(1, 4))))
    assert (r.rank, r.world_size, r[5]) == (1, 4, m.shard(DataParallel(1, 4))[5])


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_rank_slices_partition_the_global_stream(world_size):
    s = _sampler(steps=10)
    per = B // world_size
    ours = [_pairs(cg.mix(_tagged(s), s, dp=DataParallel(r, world_size)).to_iter_dataset().batch(per))
            for r in range(world_size)]
    native = cg.mix(_tagged(s), s)  # Grain's own strided slicing of the full map
    strided = [_pairs(native[r::world_size].to_iter_dataset().batch(per)) for r in range(world_size)]
    for step in range(10):
        rows = slice(step * per, (step + 1) * per)
        glob = _expected(s, step * B, (step + 1) * B)
        assert np.array_equal(np.concatenate([o[rows] for o in ours]), glob)  # contiguous slots
        for r in range(world_size):  # the sampler's own rank slice, and Grain's strided one
            d, i = s.batch(step, r, world_size)
            assert np.array_equal(ours[r][rows], np.stack([d, i], axis=1))
            assert np.array_equal(strided[r][rows], glob[r::world_size])


def test_resume_under_another_world_size():
    s = _sampler(steps=10)
    k = 4  # global steps consumed under W = 2
    states = []
    for r in range(2):
        it = iter(cg.mix(_tagged(s), s, dp=DataParallel(r, 2)).to_iter_dataset().batch(B // 2))
        for _ in range(k):
            next(it)
        states.append(it.get_state())
    assert states[0] == states[1]
    new = cg.rescale_state(states[0], 2, 4)
    assert new == {"next_index": k * B // 4}
    parts = []
    for r in range(4):
        it = iter(cg.mix(_tagged(s), s, dp=DataParallel(r, 4)).to_iter_dataset().batch(B // 4))
        it.set_state(new)
        parts.append(_pairs([next(it)]))
    assert np.array_equal(np.concatenate(parts), _expected(s, k * B, (k + 1) * B))
    with pytest.raises(ConfigError, match="next_index"):
        cg.rescale_state({"next_index": 3}, 1, 4)  # not a global-batch boundary
    with pytest.raises(ConfigError, match="state"):
        cg.rescale_state({"next_index": 4, "workers": 2}, 1, 4)


def test_window_counts_follow_cooldown():
    steps, window = 200, 20
    sched = cm.Cooldown(hot=5, cold=1, at=0.5)
    s = _sampler(steps=steps, schedule=sched)
    got = _pairs(cg.mix(_tagged(s), s).to_iter_dataset().batch(B))
    dom = got[:, 0].reshape(steps, B)
    k = len(SIZES)
    for lo in range(0, steps, window):
        counts = np.bincount(dom[lo : lo + window].ravel(), minlength=k)
        target = s.cumulative_target_array(lo + window) - s.cumulative_target_array(lo)
        assert np.abs(counts - target).max() <= 2, (lo, counts, target)  # within 1 at each end
        p = s.probs_array(lo)
        assert np.allclose(target, window * B * p)  # the window's τ is one phase's
    hot = np.bincount(dom[:window].ravel(), minlength=k)
    cold = np.bincount(dom[-window:].ravel(), minlength=k)
    assert hot[3] > cold[3] and hot[0] < cold[0]  # τ=5 upsamples the rare language, τ=1 does not


def test_rare_domain_below_maxtext_rounding_keeps_its_exact_share():
    sizes = {"en": 999_980, "rare": 20}
    p_rare = cm.temperature_probs(sizes, tau=1.0)["rare"]
    assert p_rare < 5e-5 and round(p_rare, 4) == 0.0  # MaxText's "path,weight" rounding
    with pytest.raises(ValueError):  # ... and Grain refuses a zero weight
        grain.MapDataset.mix([grain.MapDataset.range(10), grain.MapDataset.range(10)], [1.0, 0.0])
    steps, b = 2000, 128
    s = cm.MixtureSampler(sizes, 1.0, total_steps=steps, batch_size=b, seed=1)
    m = cg.selection_map(s, build=True)
    d, _ = m.block(0, steps * b)
    per_step = np.bincount(np.repeat(np.arange(steps), b)[d == 1], minlength=steps)
    c = np.concatenate([[0], np.cumsum(per_step)])
    x = np.arange(steps + 1) * b * p_rare
    assert np.abs(c - x).max() <= 1  # at every prefix of whole batches
    assert c[-1] == round(steps * b * p_rare) == 5


def test_scalar_and_batched_paths_agree_on_random_access():
    s = _sampler(steps=3000)
    m = cg.selection_map(s)
    g = np.random.default_rng(0).integers(0, len(m), 500)
    scalar = np.array([m[int(x)] for x in g])
    assert np.array_equal(scalar, np.stack(m.lookup(g), axis=1))
    r = m.shard(DataParallel(2, 4))
    i = np.arange(0, len(r), 97)
    assert np.array_equal(np.array([r[int(x)] for x in i]), np.stack(r.lookup(i), axis=1))


@given(
    st.integers(1, 6).map(lambda e: 2**e),
    st.sampled_from([1, 2, 4]),
    st.integers(0, 10_000),
)
def test_rank_entry_is_the_global_sample(b, w, i):
    if b % w:
        return
    s = cm.MixtureSampler({"a": 7, "b": 3, "c": 1}, 2.0, total_steps=200, batch_size=b, seed=5)
    full = cg.selection_map(s)
    for r in range(w):
        view = full.shard(DataParallel(r, w))
        j = i % len(view)
        step, k = divmod(j, b // w)
        assert view[j] == s.sample_at(step * b + r * (b // w) + k)


def test_bad_input_is_one_config_error():
    s = _sampler()
    with pytest.raises(ConfigError, match="datasets"):
        cg.mix({"en": [0] * 900}, s)
    with pytest.raises(ConfigError, match=r"datasets\.sw"):
        cg.mix({**{n: [0] * c for n, c in SIZES.items()}, "sw": [0, 1]}, s)
    with pytest.raises(ConfigError, match="sampler"):
        cg.mix({}, "not a sampler")
    with pytest.raises(ConfigError, match="world_size"):
        cg.selection_map(s, dp=DataParallel(0, 3))
    with pytest.raises(ConfigError, match="rank"):
        cg.selection_map(s, dp=DataParallel(4, 4))
    with pytest.raises(ConfigError, match="index"):
        cg.selection_map(s, dp=DataParallel(1, 2))[10**6]
    with pytest.raises(ConfigError, match="index"):
        cg.selection_map(s)[-1]


def test_import_coolmix_imports_no_engine():
    code = (
        "import sys, coolmix, coolmix.integrations.grain, coolmix.global_index\n"
        "bad = [m for m in ('grain', 'torch', 'torchtitan', 'megatron') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.slow  # a fresh interpreter plus one spawned Grain worker
def test_grain_example_runs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "grain_example.py")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resumed exactly" in p.stdout
