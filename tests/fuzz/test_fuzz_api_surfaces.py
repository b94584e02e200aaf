"""Hostile fuzz of the surfaces added after the core: seeks, the token packer, streams, torch
``weighted_loss``, the loaders and collators. A sound result or one ConfigError, never a hang.

Each accepted input is judged against what the documentation promises (a step is in
[0, total_steps); a resumed state is the one saved, or is refused; a weighted loss equals the
float64 reduction of the same values), so "accepted but wrong" counts as ``silent``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from fuzz_harness import fuzzer, run_api
from fuzz_strategies import edge_floats, good_sizes, junk, numbers
from hypothesis import strategies as st

import coolmix as cm
from coolmix.packing import TokenPacker

torch = pytest.importorskip("torch")

# hostile steps: in range, the edges of the range, far past it, and not integers at all
hostile_steps = st.one_of(
    st.integers(0, 80),
    st.sampled_from([-1, -4, 2**40, 2**62, 2**63, 10**9, 1.5, "3", True, False, None, 3.0, math.nan]),
)


def _is_step(x, total, end_ok=False):
    """Whether ``x`` is a valid step: an int (not bool) in [0, total) (or [0, total] with end_ok)."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        return False
    return 0 <= int(x) < total + (1 if end_ok else 0)


# -- seeks: sample_at / global_batch / batch / cumulative_* in every composition ------------------

SEEK_SCHEDULES = {
    "tau5": 5.0,
    "cooldown": {"kind": "cooldown", "hot": 5, "cold": 1, "at": 0.5},
    "anneal": {"kind": "anneal", "start": 5, "end": 1, "shape": "cosine"},
}
seek_case = st.tuples(
    st.sampled_from(["exact", "iid", "seekable"]),
    st.sampled_from(sorted(SEEK_SCHEDULES)),
    st.integers(4, 60),
    st.integers(1, 8),
    st.sampled_from(["sample_at", "global_batch", "batch", "cumulative_counts", "cumulative_target"]),
    hostile_steps,
)


@fuzzer("api.seek", seek_case, fast=60, slow=300)
def _seek(case):
    comp, sched, total, batch, method, step = case
    s = cm.MixtureSampler({"en": 500, "it": 40, "sw": 3}, SEEK_SCHEDULES[sched], total, batch, 1, comp)
    if method == "sample_at":
        valid = not isinstance(step, bool) and isinstance(step, int) and 0 <= step < total * batch
    else:
        valid = _is_step(step, total, end_ok=method.startswith("cumulative"))

    def check(result):
        if not valid:
            return f"step/index {step!r} accepted for total_steps={total}, batch_size={batch}"
        if method in ("global_batch", "batch") and len(result[0]) != batch:
            return f"batch of {len(result[0])}"
        if method == "cumulative_counts" and sum(result.values()) != step * batch:
            return f"C({step}) sums to {sum(result.values())}, not {step * batch}"
        return None

    field = "index" if method == "sample_at" else "step"
    run_api(f"seek.{method}", getattr(s, method), step, check=check, expect_field=field)


test_seek_fast, test_seek_slow = _seek

# -- the token packer --------------------------------------------------------------------------------

DOC_KINDS = ("ok", "negative", "huge", "float", "none", "mapping", "nested", "bool")


def _doc(kind, rng):
    n = int(rng.integers(1, 9))
    if kind == "negative":
        return [5, -100, 7][:n]
    if kind == "huge":
        return [1, 2**63, 3]
    if kind == "float":
        return [1.5, 2.0]
    if kind == "none":
        return None
    if kind == "mapping":
        return {"input_ids": rng.integers(0, 50, n).tolist()}
    if kind == "nested":
        return [[1, 2], [3, 4]]
    if kind == "bool":
        return [True, False]
    return rng.integers(0, 50, n)


PACKER_KEYS = (
    "step", "target_tokens", "realised_tokens", "documents", "truncated_tokens", "longest",
    "next_doc_id", "pending", "events", "version", "shape", "total_steps", "schedule", "sizes",
)  # fmt: skip

packer_case = st.tuples(
    good_sizes,
    st.sampled_from(["tokens", "documents", "plain"]),
    st.integers(1, 4),  # rows
    st.integers(1, 12),  # seq_len
    st.sampled_from(DOC_KINDS),
    st.one_of(st.none(), hostile_steps),
    st.sampled_from(PACKER_KEYS),
    st.one_of(numbers, junk, st.sampled_from([-4, 1e18, -1e18, math.nan, 2**63])),
    st.booleans(),  # per-domain mutation
    st.integers(0, 2**16),
)


def _packer_value_ok(key, value, original, state):
    """Whether a mutated packer-state value is one the packer may accept (else it must refuse)."""
    if value == original and type(value) is type(original):
        return True
    if key in ("documents", "truncated_tokens", "next_doc_id", "longest"):  # only reports and bounds
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**62
    if key == "pending":
        return value is None
    return False  # step, targets, realised, longest, events, config: a change breaks the stream


@fuzzer("api.packer", packer_case, fast=60, slow=300)
def _packer(case):
    sizes, unit, rows, seq_len, doc_kind, step, key, value, per_domain, seed = case
    rng = np.random.default_rng(seed)
    total = 6
    mix = sizes if unit == "plain" else cm.Mixture(sizes, unit=unit)

    def build():
        return TokenPacker(mix, 2.0, total_steps=total, rows=rows, seq_len=seq_len)

    def build_checked():
        pk = build()
        return pk if unit != "documents" else ("accepted", pk)

    pk = run_api(
        "packer.build",
        build_checked,
        check=lambda r: "a document-count Mixture accepted" if isinstance(r, tuple) else None,
    )
    if pk is None or isinstance(pk, tuple):
        return
    bad_doc = doc_kind not in ("ok", "mapping")

    def sound(batch):
        if bad_doc:
            return f"a {doc_kind} document accepted"
        if step is not None and not _is_step(step, total):
            return f"pack(step={step!r}) accepted"
        ids, dom = batch["input_ids"], batch["domain_ids"]
        if ids.shape != (rows, seq_len) or (ids[dom >= 0] < 0).any():
            return "bad batch"
        return None

    run_api("packer.pack", pk.pack, lambda d: _doc(doc_kind, rng), step=step, check=sound)
    # a hostile state: one field of a real one changed
    good = build()
    for _ in range(2):
        good.pack(lambda d: rng.integers(0, 50, int(rng.integers(1, 9))))
    state = copy.deepcopy(good.state_dict())
    original = state.get(key)
    if per_domain and isinstance(original, dict) and original:
        name = next(iter(original))
        mutated, before = {**original, name: value}, original[name]
    else:
        mutated, before = value, original
    state[key] = mutated
    fresh = build()

    def load():
        fresh.load_state_dict(state)
        return fresh.pack(lambda d: rng.integers(0, 50, 4))

    ok = _packer_value_ok(key, value, before, state)
    run_api("packer.load_state_dict", load, check=lambda b: None if ok else f"{key}={value!r} accepted")


test_packer_fast, test_packer_slow = _packer

# -- streams: items, token ids, hostile states, a resume under another config -------------------------

ITEM_KINDS = ("ok", "domain_clash", "negative_ids", "huge_ids", "plain")
STREAM_KEYS = (
    "batches", "residuals", "realised", "streams", "version", "layout", "lane",
    "total_steps", "schedule", "batch_size", "seed", "sizes", "packer",
)  # fmt: skip
CHANGES = ("none", "total_steps", "batch_size", "seed", "schedule", "sizes")

stream_case = st.tuples(
    st.sampled_from(["examples", "packed"]),
    st.sampled_from(ITEM_KINDS),
    st.sampled_from(STREAM_KEYS),
    st.one_of(numbers, junk, st.sampled_from([-4, 1e18, -1e18, math.nan, {"pass": -1}])),
    st.booleans(),
    st.sampled_from(CHANGES),
)


def _source(kind, base):
    def items():
        for j in range(40):
            ids = [base + j % 7, 1, 2]
            if kind == "domain_clash":
                yield {"domain": 7, "input_ids": ids}
            elif kind == "negative_ids":
                yield {"input_ids": [ids[0], -100, 3]}
            elif kind == "huge_ids":
                yield {"input_ids": [ids[0], 2**63 + 5]}
            elif kind == "plain":
                yield ids
            else:
                yield {"input_ids": ids}

    return items


def _mixer(mode, kind, change="none"):
    sizes = {"en": 900, "sw": 100} if change != "sizes" else {"en": 800, "sw": 200}
    total = 8 if change != "total_steps" else 9
    sched = 2.0 if change != "schedule" else 3.0
    sources = {"en": _source(kind, 10), "sw": _source(kind, 30)}
    from coolmix.integrations.streams import PackedStreams, StreamMixture

    if mode == "examples":
        b = 4 if change != "batch_size" else 6
        return StreamMixture(sources, sizes, sched, total, b, seed=1 if change != "seed" else 2)
    rows = 2 if change != "batch_size" else 3
    return PackedStreams(sources, cm.Mixture(sizes, unit="tokens"), sched, total, rows=rows, seq_len=5)


def _stream_value_ok(key, value, before):
    """Only the saved value itself (a residual within float noise of it) may be accepted."""
    if key == "residuals" and all(isinstance(x, float) for x in (value, before)):
        return math.isfinite(value) and abs(value - before) <= 1e-9 * (1 + abs(before))
    return value == before and type(value) is type(before)


@fuzzer("api.streams", stream_case, fast=50, slow=250)
def _streams(case):
    mode, kind, key, value, per_domain, change = case
    if mode == "packed" and change == "seed":
        change = "none"  # a packed stream has no seed
    token_kinds = ("negative_ids", "huge_ids", "plain")
    bad_items = kind == "domain_clash" if mode == "examples" else kind in token_kinds
    bad_items = bad_items and not (mode == "packed" and kind == "plain")  # plain id lists are documents
    if mode == "packed" and kind == "domain_clash":
        bad_items = False  # the packer reads only input_ids; the tag is per token

    def first_batches():
        it = iter(_mixer(mode, kind))
        return [next(it) for _ in range(3)]

    run_api(
        f"streams.{mode}.items",
        first_batches,
        check=lambda r: f"{kind} items accepted" if bad_items else None,
    )
    # resume: hostile field, or a changed config
    mixer = _mixer(mode, "ok")
    it = iter(mixer)
    for _ in range(3):
        next(it)
    state = copy.deepcopy(mixer.state_dict())
    before = state.get(key)
    if per_domain and isinstance(before, dict) and before:
        name = next(iter(before))
        before = before[name]
        state[key] = {**state[key], name: value}
    else:
        state[key] = value
    target_change = change if change != "none" else None
    resumed = _mixer(mode, "ok", change)
    saved = copy.deepcopy(mixer.state_dict())

    def resume(st):
        resumed.load_state_dict(st)
        return [next(iter(resumed)) for _ in range(1)]

    if target_change is not None:
        run_api(
            f"streams.{mode}.resume_changed",
            resume,
            saved,
            check=lambda r: f"resume under another {change} accepted",
            expect_field="rows" if change == "batch_size" and mode == "packed" else change,
        )
        return
    ok = _stream_value_ok(key, value, before)
    resumed = _mixer(mode, "ok")
    run_api(
        f"streams.{mode}.load_state_dict",
        resume,
        state,
        check=lambda r: None if ok else f"{key}={value!r} accepted",
    )


test_streams_fast, test_streams_slow = _streams

# -- torch weighted_loss ------------------------------------------------------------------------------

torch_loss_case = st.tuples(
    st.sampled_from(["float16", "bfloat16", "float32", "float64", "int64"]),
    st.integers(0, 6),  # rows
    st.sampled_from([None, 1, 4, 512]),  # tokens per row
    st.lists(st.one_of(st.floats(0, 10), edge_floats), min_size=3, max_size=3),
    st.sampled_from(["tensor", "list"]),  # how the weights come
    st.sampled_from(["mean", "self_normalized", "sum"]),
    st.sampled_from([None, "ones", "random", "big", "negative", "nan"]),
    st.sampled_from([None, "random"]),  # mask
    st.sampled_from([1.0, 10.0, 300.0]),  # loss scale
    st.integers(0, 2**16),
)


def _reference(loss, ids, w, reduction, n_tok, mask):
    """The documented reduction in float64 on the same (already rounded) values."""
    counted = np.ones(loss.shape) if mask is None else mask.astype(np.float64)
    if loss.ndim == 2:
        wb = np.broadcast_to(w[ids][:, None], loss.shape)
    else:
        wb = w[ids]
        if n_tok is not None:
            counted = counted * n_tok
    num = float((wb * counted * loss).sum())
    sums = {"mean": counted.sum(), "self_normalized": (wb * counted).sum(), "sum": 1.0}
    den = float(sums[reduction])
    return num / den if den > 0 else 0.0


@fuzzer("api.weighted_loss_torch", torch_loss_case, fast=60, slow=300)
def _weighted_loss_torch(case):
    dtype_name, rows, tokens, weights, how, reduction, n_kind, mask_kind, scale, seed = case
    rng = np.random.default_rng(seed)
    dtype = getattr(torch, dtype_name)
    shape = (rows,) if tokens is None else (rows, tokens)
    raw = rng.uniform(0, 1, size=shape) * scale
    loss = torch.tensor(raw).round().to(dtype) if dtype_name == "int64" else torch.tensor(raw).to(dtype)
    ids_np = rng.integers(0, 3, size=rows)
    ids = torch.tensor(ids_np)
    w_np = np.array(weights, dtype=np.float64)
    w = torch.tensor(w_np) if how == "tensor" else weights
    n_tok = None
    if tokens is None and n_kind is not None:
        n_np = {
            "ones": np.ones(rows),
            "random": rng.integers(0, 8, rows).astype(np.float64),
            "big": np.full(rows, 4096.0),
            "negative": -np.ones(rows),
            "nan": np.full(rows, np.nan),
        }[n_kind]
        n_tok = torch.tensor(n_np)
    mask = None if mask_kind is None or tokens is None else rng.integers(0, 2, size=shape).astype(bool)
    kwargs = {"reduction": reduction}
    if n_tok is not None:
        kwargs["n_tokens"] = n_tok
    if mask is not None:
        kwargs["mask"] = torch.tensor(mask)
    values = loss.double().numpy()

    def sound(result):
        if not np.isfinite(w_np).all() or (w_np < 0).any():
            return f"weights {w_np.tolist()} accepted"
        if n_tok is not None and (not torch.isfinite(n_tok).all() or (n_tok < 0).any()):
            return "bad n_tokens accepted"
        got = float(result)
        expected = _reference(values, ids_np, w_np, reduction, None if n_tok is None else n_tok.numpy(), mask)
        if not math.isfinite(expected) or abs(expected) > 3e38:
            return None  # beyond float32: a refusal or an inf is fair
        if not math.isfinite(got):
            return f"{got} from {dtype_name} (float64 value {expected!r})"
        if not math.isclose(got, expected, rel_tol=2e-3, abs_tol=1e-6):
            return f"{got!r} != {expected!r} ({dtype_name})"
        return None

    run_api("weighted_loss.torch", cm.weighted_loss, loss, ids, w, check=sound, finite=False, **kwargs)


test_weighted_loss_torch_fast, test_weighted_loss_torch_slow = _weighted_loss_torch

# -- loaders and collators ---------------------------------------------------------------------------


def _ex(d, i, **kw):
    return {"domain": d, "domain_name": ("en", "sw")[d] if isinstance(d, int) else d, "index": i, **kw}


EXAMPLES = {
    "ok": [_ex(0, 0, x=1), _ex(1, 2, x=2)],
    "missing_tag": [{"x": 1}, {"x": 2}],
    "ragged": [_ex(0, 0, x=[1, 2]), _ex(0, 1, x=[1])],
    "mixed_keys": [_ex(0, 0, x=1), _ex(0, 1)],
    "none": [None, None],
    "pairs_bad": [(1,), (2,)],
    "strings": ["a", "b"],
    "str_domain": [_ex("en", 0, x=1)],
    "empty": [],
    "nested_ids": [{"input_ids": [[1, 2], [3]]}],
    "pad_missing": [{"input_ids": [1, 2]}, {"labels": [1]}],
    "pad_ragged_2d": [{"input_ids": [1, 2], "labels": [[1], [2]]}],
    "pad_none": [{"input_ids": None}],
}

loader_case = st.tuples(
    st.sampled_from(["mixture_collator", "pad_collator", "dataset_len", "iterable_len", "batch_sampler"]),
    st.sampled_from(sorted(EXAMPLES)),
    st.sampled_from([1, 2, 40]),  # declared size ÷ real length
    st.sampled_from(["examples", "tokens"]),
)


@fuzzer("api.loaders", loader_case, fast=50, slow=250)
def _loaders(case):
    from coolmix.integrations.collate import MixtureCollator, PadCollator
    from coolmix.integrations.torch import MixtureBatchSampler, MixtureDataset, MixtureIterableDataset

    kind, examples, factor, unit = case
    if kind == "mixture_collator":
        run_api("collate.mixture", MixtureCollator(), copy.deepcopy(EXAMPLES[examples]))
        return
    if kind == "pad_collator":
        run_api("collate.pad", PadCollator(0), copy.deepcopy(EXAMPLES[examples]))
        return
    data = {"en": [{"x": i} for i in range(30)], "sw": [{"x": 100 + i} for i in range(5)]}
    declared = {n: len(v) * factor for n, v in data.items()}
    sampler = cm.MixtureSampler(cm.Mixture(declared, unit=unit), 5.0, total_steps=6, batch_size=4, seed=0)
    lens = {n: len(v) for n, v in data.items()}

    def index_sound(batch_list):
        if factor != 1:
            return f"declared sizes {declared} ≠ dataset lengths {lens} accepted"
        return None

    if kind == "dataset_len":
        ds = MixtureDataset(data)
        run_api(
            "loader.examples",
            lambda: [ds.examples(*sampler.batch(t)) for t in range(6)],
            check=index_sound,
        )
    elif kind == "iterable_len":
        run_api(
            "loader.iterable",
            lambda: list(MixtureIterableDataset(data, sampler)),
            check=index_sound,
        )
    else:
        ds = MixtureDataset(data)
        run_api(
            "loader.batch_sampler",
            lambda: [ds[i] for b in MixtureBatchSampler(sampler, dataset=ds) for i in b],
            check=index_sound,
        )


test_loaders_fast, test_loaders_slow = _loaders
