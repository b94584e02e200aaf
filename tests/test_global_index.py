"""GlobalIndex equals MixtureSampler.sample_at bit for bit, and its cache is safe to restart from."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coolmix.global_index as gi
from coolmix import ConfigError, Cooldown, MixtureSampler
from coolmix.global_index import GlobalIndex
from coolmix.permutation import permute, permute_rows

SCHEDULES = st.sampled_from(
    [1.0, 5.0, Cooldown(hot=5.0, cold=1.0, at=0.5), Cooldown(hot=1.0, cold=100.0, at=3)]
)


@st.composite
def samplers(draw, compositions=("exact", "seekable", "iid")):
    k = draw(st.integers(1, 20))
    sizes = {f"d{i}": draw(st.integers(1, 5000)) for i in range(k)}
    return MixtureSampler(
        sizes,
        draw(SCHEDULES),
        total_steps=draw(st.integers(4, 40)),
        batch_size=draw(st.integers(1, 70)),
        seed=draw(st.integers(0, 2**40)),
        composition=draw(st.sampled_from(compositions)),
    )


@given(samplers())
def test_every_entry_equals_sample_at(s: MixtureSampler):
    idx = GlobalIndex(s)
    n = len(idx)
    assert n == s.total_steps * s.batch_size
    ref_d, ref_i = s.sample_at(np.arange(n, dtype=np.int64))
    d, i = idx.build()
    np.testing.assert_array_equal(d, ref_d)
    np.testing.assert_array_equal(i, ref_i)
    fresh = GlobalIndex(s)  # lazy blocks, no build
    g = np.arange(n)[::-1]
    ld, li = fresh.lookup(g)
    np.testing.assert_array_equal(ld, ref_d[g])
    np.testing.assert_array_equal(li, ref_i[g])
    for x in (0, n // 3, n - 1):
        assert fresh[x] == (int(ref_d[x]), int(ref_i[x]))
    bd, bi = fresh.block(n // 4, n // 2)
    np.testing.assert_array_equal(bd, ref_d[n // 4 : n // 2])
    np.testing.assert_array_equal(bi, ref_i[n // 4 : n // 2])


@given(samplers(("exact", "seekable")), st.integers(1, 30), st.integers(1, 200))
def test_multi_block_builds_and_partial_prefixes(s: MixtureSampler, cut: int, per: int):
    """Build passes and lazy blocks of a few steps (many boundaries), a prefix built first, then the rest."""
    gi.BUILD_SAMPLES, saved = per, gi.BUILD_SAMPLES
    idx = GlobalIndex(s)
    idx.block_steps, idx.block_len = 2, 2 * s.batch_size
    lazy = idx.lookup(np.arange(len(idx))[::-1])[1][::-1]
    n = len(idx)
    ref_d, ref_i = s.sample_at(np.arange(n, dtype=np.int64))
    try:
        idx.build(min(cut, n))
        d, i = idx.build(n)
    finally:
        gi.BUILD_SAMPLES = saved
    np.testing.assert_array_equal(d, ref_d)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(lazy, ref_i)


def test_many_passes_and_many_domains_take_the_elementwise_path():
    """Domains of 1–3 items (hundreds of passes per block) and K > 16 (permute_each)."""
    s = MixtureSampler({f"x{i}": 1 + i % 3 for i in range(40)} | {"big": 10**9}, 1.0, 50, 64, seed=3)
    ref = s.sample_at(np.arange(50 * 64))
    d, i = GlobalIndex(s).build()
    np.testing.assert_array_equal(d, ref[0])
    np.testing.assert_array_equal(i, ref[1])
    small = MixtureSampler({"a": 1, "b": 2, "c": 10**12}, 0.01, 300, 40, seed=1)
    d, i = GlobalIndex(small).build()
    np.testing.assert_array_equal(i, small.sample_at(np.arange(300 * 40))[1])
    assert d.dtype == np.int16 and i.dtype == np.int64


def test_snapshot_sees_events_and_schedule_changes_but_never_moves_the_callers_sampler():
    s = MixtureSampler({"en": 500, "sw": 20, "yo": 3}, 5.0, 60, 16, seed=2)
    s.global_batch(9)
    s.set_schedule(1.0)
    s.record_event("cooldown", step=20)
    idx = GlobalIndex(s)
    assert s.step == 10
    ref = s.sample_at(np.arange(60 * 16))
    d, i = idx.build()
    np.testing.assert_array_equal(d, ref[0])
    np.testing.assert_array_equal(i, ref[1])
    assert s.step == 10


def test_cumulative_counts_rows_are_the_stacked_cursors():
    sizes = {f"d{i}": 10 + i for i in range(10)}
    for comp in ("exact", "seekable", "iid"):
        mine = MixtureSampler(sizes, Cooldown(at=7), 20, 9, seed=1, composition=comp)
        rows = mine.cumulative_counts_rows(3, 17)
        ref = MixtureSampler(sizes, Cooldown(at=7), 20, 9, seed=1, composition=comp)
        np.testing.assert_array_equal(rows, np.stack([ref.cumulative_counts_array(t) for t in range(3, 18)]))
    small = MixtureSampler({"a": 5, "b": 7}, 3.0, 30, 5, seed=1)  # the plain-Python walk (K < 8)
    ref = MixtureSampler({"a": 5, "b": 7}, 3.0, 30, 5, seed=1)
    np.testing.assert_array_equal(
        small.cumulative_counts_rows(0, 29), np.stack([ref.cumulative_counts_array(t) for t in range(30)])
    )
    with pytest.raises(ConfigError, match="hi"):
        small.cumulative_counts_rows(5, 4)


@given(st.integers(1, 3000), st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=5))
def test_permute_rows_is_permute_per_row(n: int, keys: list[int]):
    x = np.tile(np.arange(n, dtype=np.uint64), (len(keys), 1))
    out = permute_rows(x, n, np.array(keys, dtype=np.uint64))
    for r, k in enumerate(keys):
        np.testing.assert_array_equal(out[r], permute(x[r], n, k))


def test_bad_indices_are_config_errors():
    idx = GlobalIndex(MixtureSampler({"a": 10, "b": 5}, 2.0, total_steps=3, batch_size=4))
    for bad in (-1, 12, 1.5, True, "3"):
        with pytest.raises(ConfigError, match="index"):
            idx[bad]  # type: ignore[index]
    with pytest.raises(ConfigError, match="index"):
        idx.lookup(np.array([0, 12]))
    with pytest.raises(ConfigError, match="index"):
        idx.lookup(np.array([0.0]))
    with pytest.raises(ConfigError, match="n="):
        idx.build(13)
    with pytest.raises(ConfigError, match="sampler"):
        GlobalIndex({"a": 1})  # type: ignore[arg-type]


# -- cache -------------------------------------------------------------------------------------


def _sampler(**kw) -> MixtureSampler:
    args = {"sizes": {"en": 10_000, "it": 700, "sw": 9}, "schedule": Cooldown(at=0.5), "total_steps": 50,
            "batch_size": 32, "seed": 5} | kw
    return MixtureSampler(**args)


def test_restart_maps_the_cached_file_without_rebuilding(tmp_path, monkeypatch):
    s = _sampler()
    first = GlobalIndex(s, cache_dir=tmp_path)
    d0, i0 = first.build(1000)
    dpath, ipath = first.cache_paths(1000)
    assert dpath.is_file() and ipath.is_file()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    again = GlobalIndex(s, cache_dir=tmp_path)
    calls = []
    real = again._block
    monkeypatch.setattr(again, "_block", lambda b: calls.append(b) or real(b))
    d1, i1 = again.build(1000)
    assert isinstance(d1, np.memmap) and calls == [0]  # only the first block, as a check
    assert again.loaded_from_cache and not first.loaded_from_cache
    np.testing.assert_array_equal(d1, d0)
    np.testing.assert_array_equal(i1, i0)
    assert again[999] == s.sample_at(999)


def test_cache_key_sees_every_input(tmp_path):
    base = GlobalIndex(_sampler()).config_key()
    assert GlobalIndex(_sampler()).config_key() == base
    for kw in ({"seed": 6}, {"batch_size": 16}, {"total_steps": 51}, {"schedule": 5.0},
               {"sizes": {"en": 10_000, "it": 700, "sw": 8}}, {"composition": "seekable"}):
        assert GlobalIndex(_sampler(**kw)).config_key() != base, kw
    changed = _sampler()
    changed.set_schedule(Cooldown(at=0.5))  # same latest schedule; none in force changes
    assert GlobalIndex(changed).config_key() == base
    changed.global_batch(3)
    changed.set_schedule(1.0)
    replaced = _sampler(schedule=1.0)
    assert GlobalIndex(changed).config_key() not in (base, GlobalIndex(replaced).config_key())
    evented = _sampler()
    evented.record_event("x", step=4)
    assert GlobalIndex(evented).config_key() != base


def test_cache_refuses_symlinks_corrupt_and_foreign_files(tmp_path):
    s = _sampler()
    idx = GlobalIndex(s, cache_dir=tmp_path)
    idx.build(500)
    dpath, ipath = idx.cache_paths(500)
    # truncated
    data = ipath.read_bytes()
    ipath.write_bytes(data[:-8])
    with pytest.raises(ConfigError, match="truncated"):
        GlobalIndex(s, cache_dir=tmp_path).build(500)
    # wrong content, right shape
    ipath.write_bytes(data)
    raw = bytearray(dpath.read_bytes())
    raw[-1] ^= 1
    raw[-200] ^= 1
    raw[200] ^= 1
    dpath.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="does not match"):
        GlobalIndex(s, cache_dir=tmp_path).build(500)
    # garbage
    dpath.write_bytes(b"not an npy file at all")
    with pytest.raises(ConfigError, match="cache_dir"):
        GlobalIndex(s, cache_dir=tmp_path).build(500)
    # a symlink in place of the file is not followed
    target = tmp_path / "elsewhere.npy"
    target.write_bytes(data)
    dpath.unlink()
    os.symlink(target, dpath)
    with pytest.raises(ConfigError, match="cannot open"):
        GlobalIndex(s, cache_dir=tmp_path).build(500)
    # a symlinked or non-directory cache_dir is refused
    link = tmp_path / "link"
    os.symlink(tmp_path, link)
    with pytest.raises(ConfigError, match="directory"):
        GlobalIndex(s, cache_dir=link)
    with pytest.raises(ConfigError, match="directory"):
        GlobalIndex(s, cache_dir=target)


def test_scalar_path_after_build_uses_the_built_arrays():
    idx = GlobalIndex(_sampler())
    d, i = idx.build(100)
    assert idx._cur == -1 and idx[99] == (int(d[99]), int(i[99]))
    assert idx._cur == -1  # served from the built prefix, no block materialised
    assert idx[100] == _sampler().sample_at(100) and idx._cur == 0


def test_pickles_small_and_maps_the_cache_again(tmp_path):
    import pickle

    s = _sampler()
    plain = GlobalIndex(s)
    plain[5]
    plain.build(300)
    copy = pickle.loads(pickle.dumps(plain))
    assert copy[299] == plain[299] and copy[1000] == s.sample_at(1000)
    cached = GlobalIndex(s, cache_dir=tmp_path)
    cached.build(1200)
    blob = pickle.dumps(cached)
    assert len(blob) < len(pickle.dumps(plain)) + 2000  # the 1200 entries travel as the file's path
    back = pickle.loads(blob)
    ref = s.sample_at(np.arange(1200))
    assert [back[g] for g in (0, 777, 1199)] == [(int(ref[0][g]), int(ref[1][g])) for g in (0, 777, 1199)]
    np.testing.assert_array_equal(back.lookup(np.arange(1200))[1], ref[1])


def test_importing_coolmix_and_the_index_imports_no_engine_or_framework():
    import subprocess
    import sys

    code = (
        "import sys, coolmix, coolmix.global_index, coolmix.integrations.megatron\n"
        "bad = [m for m in ('torch', 'megatron', 'grain', 'torchtitan', 'jax') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@given(st.integers(2, 5000), st.integers(0, 2**64 - 1), st.sampled_from([3, 64, 2**14]))
def test_cache_sized_pieces_do_not_change_the_permutations(n: int, key: int, chunk: int):
    """Every vectorised path (pieces of any size, runs, rows, elementwise) is the same bijection."""
    import coolmix.permutation as pm

    x = np.arange(n, dtype=np.uint64)
    ref = pm.permute(x, n, key)
    assert sorted(ref.tolist()) == list(range(n))
    saved, pm._CHUNK = pm._CHUNK, chunk
    try:
        np.testing.assert_array_equal(pm.permute(x, n, key), ref)
        keys = np.full(n, key, dtype=np.uint64)
        bits = np.full(n, pm.width(n), dtype=np.uint64)
        each = pm.permute_each(x, np.full(n, n, dtype=np.uint64), bits, keys)
        np.testing.assert_array_equal(each, ref)
        rows = pm.permute_rows(np.vstack([x, x]), n, np.array([key, key ^ 1], dtype=np.uint64))
        np.testing.assert_array_equal(rows[0], ref)
        np.testing.assert_array_equal(rows[1], pm.permute(x, n, key ^ 1))
        half = n // 2
        runs = pm.permute_runs(np.concatenate([x[:half], x]), np.array([n, n]),
                               np.array([key ^ 1, key], dtype=np.uint64), np.array([half, n]))
        np.testing.assert_array_equal(runs[half:], ref)
        np.testing.assert_array_equal(runs[:half], pm.permute(x[:half], n, key ^ 1))
    finally:
        pm._CHUNK = saved


@given(st.binary(max_size=400), st.integers(0, 2))
def test_fuzzed_cache_files_give_a_config_error_or_the_right_index(tmp_path_factory, junk: bytes, which: int):
    """Whatever bytes sit in a cache file (garbage, a valid header with a wrong body, a truncation),
    a restart raises a one-line ConfigError or returns exactly the sampler's index."""
    s = _sampler(total_steps=4)
    root = tmp_path_factory.mktemp("fuzz")
    idx = GlobalIndex(s, cache_dir=root)
    d0, i0 = (a.copy() for a in idx.build(100))
    dpath, ipath = idx.cache_paths(100)
    target = (dpath, ipath, dpath)[which]
    good = target.read_bytes()
    target.write_bytes(junk if which < 2 else good[: 128] + junk)
    try:
        d, i = GlobalIndex(s, cache_dir=root).build(100)
    except ConfigError as e:
        assert "\n" not in str(e) and "cache_dir" in str(e)
    else:
        np.testing.assert_array_equal(d, d0)
        np.testing.assert_array_equal(i, i0)
