"""TokenPacker: the token-deficit bound, per-token ids, truncation, exact resume mid-document."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coolmix import ConfigError, Cooldown, Explicit, Stages, Temperature, weighted_loss
from coolmix.packing import IGNORE_INDEX, PAD_DOMAIN, MapDocuments, TokenPacker, token_weights


class Docs:
    """Domain d's k-th document: tokens d*10_000 + k*10 + position mod 10, length from a seeded rng.

    Every token reveals its domain and document, and `made` records what was handed out, so
    the tests can rebuild documents from the packed rows independently of the packer.
    """

    def __init__(self, max_len: list[int], seed: int) -> None:
        self.max_len, self.rng = max_len, np.random.default_rng(seed)
        self.made: list[tuple[int, np.ndarray]] = []
        self.counts = [0] * len(max_len)

    def __call__(self, d: int) -> np.ndarray:
        k = self.counts[d]
        self.counts[d] += 1
        n = int(self.rng.integers(1, self.max_len[d] + 1))
        doc = d * 10_000 + (k % 100) * 10 + np.arange(n) % 10
        self.made.append((d, doc))
        return doc


def _sizes(k: int) -> dict[str, float]:
    return {f"d{i}": float(10 ** (k - i)) * 1.5 for i in range(k)}


@given(
    k=st.integers(2, 5),
    rows=st.integers(1, 3),
    seq_len=st.integers(1, 40),
    long_docs=st.sampled_from(["split", "truncate"]),
    hot=st.floats(1.0, 20.0),
    seed=st.integers(0, 2**16),
)
def test_deficit_bound_at_every_step(k, rows, seq_len, long_docs, hot, seed):
    """−ℓ_i ≤ Z_i − Y_i ≤ Σ_{j≠i} ℓ_j after every step; in split mode Z_i = Σ_s R·T·p_i(s)."""
    sizes, steps = _sizes(k), 30
    sched = Cooldown(hot=hot, cold=1.0, at=0.5)
    pk = TokenPacker(sizes, sched, steps, rows, seq_len, long_docs=long_docs)
    docs = Docs([int(x) for x in np.random.default_rng(seed).integers(1, 3 * seq_len + 2, size=k)], seed)
    seen_tokens = np.zeros(k)
    planned = np.zeros(k)
    for t in range(steps):
        b = pk.pack(docs)
        seen_tokens += np.bincount(b["domain_ids"][b["domain_ids"] >= 0], minlength=k)
        planned += rows * seq_len * np.array(list(sched.probs_at(t, sizes, steps).values()))
        real = np.array([v["tokens"] for v in pk.realised().values()], dtype=float)
        np.testing.assert_array_equal(real, seen_tokens)  # the ledger agrees with the rows
        z = np.array(list(pk.target().values()))
        deficit = z - real
        longest = np.array(list(pk.longest.values()), dtype=float)
        assert (deficit >= -longest - 1e-6).all()
        assert (deficit <= longest.sum() - longest + 1e-6).all()
        assert abs(deficit.sum()) < 1e-6 * (t + 1) * rows * seq_len
        if long_docs == "split":
            assert real.sum() == (t + 1) * rows * seq_len  # no padding, ever
            np.testing.assert_allclose(z, planned, rtol=1e-9, atol=1e-6)


@given(long_docs=st.sampled_from(["split", "truncate"]), seq_len=st.integers(2, 12), seed=st.integers(0, 999))
def test_per_token_ids_rebuild_every_document(long_docs, seq_len, seed):
    """Tokens with one doc id, read row by row, are exactly that document (cut to T if truncating)."""
    pk = TokenPacker(_sizes(3), 3.0, 20, 3, seq_len, pad_id=-7, long_docs=long_docs)
    docs = Docs([2 * seq_len + 3, seq_len, 3], seed)
    batches = [pk.pack(docs) for _ in range(20)]
    ids = np.concatenate([b["input_ids"] for b in batches])
    dom = np.concatenate([b["domain_ids"] for b in batches])
    doc = np.concatenate([b["doc_ids"] for b in batches])
    pos = np.concatenate([b["position_ids"] for b in batches])
    lab = np.concatenate([b["labels"] for b in batches])
    mask = np.concatenate([b["loss_mask"] for b in batches])
    pad = doc == PAD_DOMAIN
    assert (dom[pad] == PAD_DOMAIN).all() and (ids[pad] == -7).all() and not mask[pad].any()
    if long_docs == "split":
        assert not pad.any()
    finished = doc[~pad].max()  # the last document may still be pending
    for serial in range(finished):
        d, want = docs.made[serial]
        if long_docs == "truncate":
            want = want[:seq_len]
        where = doc == serial
        np.testing.assert_array_equal(ids[where], want)
        assert (dom[where] == d).all()
        rows_of = np.nonzero(where.any(axis=1))[0]
        if long_docs == "truncate":
            assert len(rows_of) == 1  # never crosses a row
        for r in rows_of:  # positions restart at each document and at each row
            np.testing.assert_array_equal(pos[r][where[r]], np.arange(where[r].sum()))
    # labels: the next token of the same document in the same row, else ignored
    same = (doc[:, 1:] == doc[:, :-1]) & (doc[:, :-1] >= 0)
    np.testing.assert_array_equal(lab[:, :-1][same], ids[:, 1:][same])
    assert (lab[:, :-1][~same] == IGNORE_INDEX).all() and (lab[:, -1] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(mask, lab != IGNORE_INDEX)


def test_truncate_counts_the_cut_tokens():
    pk = TokenPacker({"a": 1.0}, 1.0, 2, 1, 4, long_docs="truncate")
    b = pk.pack(lambda d: np.arange(10))
    assert b["input_ids"].tolist() == [[0, 1, 2, 3]] and pk.truncated == {"a": 6}


def _run(pk: TokenPacker, src: MapDocuments, n: int) -> list[dict[str, np.ndarray]]:
    return [pk.pack(src) for _ in range(n)]


@given(stop=st.integers(1, 12), long_docs=st.sampled_from(["split", "truncate"]))
def test_resume_is_exact_mid_document(stop, long_docs):
    """Save after `stop` steps (through JSON), restore into fresh objects: the next batches match."""
    rng = np.random.default_rng(5)
    data = {
        "en": [list(range(i, i + int(n))) for i, n in enumerate(rng.integers(1, 40, 50))],
        "sw": [[10_000 + i] * int(n) for i, n in enumerate(rng.integers(5, 90, 7))],
    }

    def fresh():
        pk = TokenPacker(
            {"en": 5000, "sw": 300}, Cooldown(hot=5.0, cold=1.0, at=0.5), 24, 2, 16, long_docs=long_docs
        )
        return pk, MapDocuments(data, seed=3)

    pk, src = fresh()
    whole = _run(pk, src, 24)
    pk, src = fresh()
    _run(pk, src, stop)
    state = json.loads(json.dumps({"packer": pk.state_dict(), "docs": src.state_dict()}))
    pk, src = fresh()
    pk.load_state_dict(state["packer"])
    src.load_state_dict(state["docs"])
    for want, got in zip(whole[stop:], _run(pk, src, 24 - stop), strict=True):
        for key in want:
            np.testing.assert_array_equal(want[key], got[key])


def test_resume_case_really_has_a_document_in_flight():
    """The resume property above covers a pending document (long docs across short rows)."""
    pk = TokenPacker({"a": 1.0}, 1.0, 4, 1, 8)
    pk.pack(lambda d: np.arange(20))
    assert pk.state_dict()["pending"]["tokens"] == list(range(8, 20))


def test_switched_off_domain_gets_nothing_and_forfeits_its_deficit():
    sched = Stages((0, 5), (Temperature(1.0), Explicit({"a": 1.0, "b": 0.0})))
    pk = TokenPacker({"a": 1.0, "b": 1.0}, sched, 10, 1, 7)
    docs = Docs([5, 5], 0)
    batches = [pk.pack(docs) for _ in range(10)]
    late = np.concatenate([b["domain_ids"] for b in batches[6:]])  # step 5 may finish a b document
    assert (late == 0).all()
    z = np.array(list(pk.target().values()))
    real = np.array([v["tokens"] for v in pk.realised().values()], dtype=float)
    assert z[1] == real[1]  # b's deficit was forfeited, not carried


def test_map_documents_reads_each_item_once_per_pass():
    data = {"a": [[i] for i in range(7)], "b": [[100]]}
    md = MapDocuments(data, seed=1)
    first = [int(md(0)[0]) for _ in range(7)]
    second = [int(md(0)[0]) for _ in range(7)]
    assert sorted(first) == sorted(second) == list(range(7)) and first != second
    assert md.item(0, 3) == first[3]  # a pure function of the draw number


def test_token_weights_zero_at_padding_and_match_weighted_loss():
    rng = np.random.default_rng(0)
    dom = np.array([[0, 0, 1, -1], [2, 2, 2, 1]])
    loss = rng.random((2, 4))
    w = {"a": 0.5, "b": 2.0, "c": 4.0}
    tw = token_weights(dom, w, names=("a", "b", "c"))
    np.testing.assert_array_equal(tw, [[0.5, 0.5, 2.0, 0.0], [4.0, 4.0, 4.0, 2.0]])
    mask = dom >= 0
    want = (tw * loss).sum() / mask.sum()
    got = weighted_loss(loss, dom, [0.5, 2.0, 4.0], ignore_index=PAD_DOMAIN)
    assert float(got) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"rows": 0}, "rows"), ({"seq_len": 1.5}, "seq_len"), ({"long_docs": "wrap"}, "long_docs")],
)
def test_bad_arguments_name_their_field(kwargs, field):
    args = {"rows": 2, "seq_len": 8, **kwargs}
    with pytest.raises(ConfigError) as e:
        TokenPacker({"a": 1.0}, 1.0, 4, args.pop("rows"), args.pop("seq_len"), **args)
    assert e.value.field == field


def test_state_from_another_shape_and_bad_documents_are_rejected():
    pk = TokenPacker({"a": 1.0}, 1.0, 4, 2, 8)
    with pytest.raises(ConfigError, match="shape"):
        pk.load_state_dict(TokenPacker({"a": 1.0}, 1.0, 4, 2, 9).state_dict())
    with pytest.raises(ConfigError, match="document"):
        pk.pack(lambda d: [[1, 2]])
    with pytest.raises(ConfigError, match="only empty"):
        pk.pack(lambda d: [])
