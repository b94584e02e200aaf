"""Packed streams through a DataLoader: by-value transfer, what the loop receives, the public exposure
reader for StatefulDataLoader states, and the RNG order that makes resume exact."""

from __future__ import annotations

import numpy as np
import pytest

from coolmix import ConfigError, Cooldown
from coolmix.integrations.streams import PackedStreams
from coolmix.integrations.transfer import ByValueBatch

torch = pytest.importorskip("torch")
stateful = pytest.importorskip("torchdata.stateful_dataloader")
from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.data._utils.collate import default_convert  # noqa: E402

from coolmix.integrations.loader import realised_exposure, stream_states  # noqa: E402

KEYS = {"input_ids", "labels", "loss_mask", "domain_ids", "doc_ids", "position_ids"}
STEPS, ROWS, SEQ = 24, 4, 16


def docs(seed: int, n: int):
    def factory():
        rng = np.random.default_rng(seed)
        for _ in range(n):
            yield rng.integers(1, 500, int(rng.integers(3, 30))).tolist()

    return factory


def packed() -> PackedStreams:
    sources = {"en": docs(0, 200), "sw": docs(1, 15)}
    return PackedStreams(
        sources, {"en": 3000.0, "sw": 200.0}, Cooldown(hot=5, cold=1, at=0.5), STEPS, ROWS, SEQ
    )


def check_batch(b, want) -> None:
    """The documented batch: a dict of six (R, T) CPU tensors, int64 except the bool loss mask."""
    assert set(b) == KEYS
    for k, v in b.items():
        assert isinstance(v, torch.Tensor) and tuple(v.shape) == (ROWS, SEQ)
        assert v.dtype == (torch.bool if k == "loss_mask" else torch.int64)
        np.testing.assert_array_equal(v.numpy(), want[k])


def test_worker_batches_cross_by_value_and_arrive_as_tensors():
    """What a worker sends: one pickle of numpy rows, no shared-memory handle per tensor."""
    from multiprocessing.reduction import ForkingPickler

    want = next(packed().lane())
    sent = default_convert(next(iter(packed().as_torch())))  # what the DataLoader worker does
    assert isinstance(sent, ByValueBatch)
    payload = bytes(ForkingPickler.dumps(sent))
    assert b"rebuild_storage" not in payload and b"reductions" not in payload
    plain = bytes(ForkingPickler.dumps(dict(sent)))  # a plain dict of tensors goes by handle
    assert b"rebuild_storage" in plain
    got = ForkingPickler.loads(payload)
    assert type(got) is dict
    check_batch(got, want)


def test_labels_are_shifted_inputs():
    """``labels[t]`` is the next token of the same document: already shifted, do not shift again."""
    b = next(packed().lane())
    same_doc = (b["doc_ids"][:, 1:] == b["doc_ids"][:, :-1]) & b["loss_mask"][:, :-1]
    np.testing.assert_array_equal(b["labels"][:, :-1][same_doc], b["input_ids"][:, 1:][same_doc])


@pytest.mark.slow
def test_two_workers_yield_the_documented_batches_in_lane_order():
    lanes = [list(packed().lane(0, 1, w, 2)) for w in range(2)]
    got = list(DataLoader(packed().as_torch(), batch_size=None, num_workers=2))
    assert len(got) == STEPS
    for t, b in enumerate(got):
        assert type(b) is dict
        check_batch(b, lanes[t % 2][t // 2])


def delivered_tokens(batches) -> dict[str, int]:
    dom = np.concatenate([b["domain_ids"].numpy().ravel() for b in batches])
    return {"en": int((dom == 0).sum()), "sw": int((dom == 1).sum())}


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_realised_exposure_reads_a_stateful_dataloader_state(workers):
    """Tokens per domain as of the last delivered batch, whatever the workers prefetched."""
    loader = stateful.StatefulDataLoader(packed().as_torch(), batch_size=None, num_workers=workers)
    seen = []
    for b in loader:
        seen.append(b)
        if len(seen) == 7:
            break
    state = loader.state_dict()
    assert len(stream_states(state)) == max(workers, 1)
    got = realised_exposure(state)
    assert {d: c["tokens"] for d, c in got.items()} == delivered_tokens(seen)
    assert got["sw"]["documents"] > 0
    twice = realised_exposure(state, state)  # e.g. two ranks' states: global states, not summed
    assert twice == got


def test_realised_exposure_refuses_what_is_not_a_stream_loader_state():
    with pytest.raises(ConfigError, match=r"^loader_state="):
        realised_exposure({"step": 3})
    with pytest.raises(ConfigError, match=r"^loader_state\.dataset_state="):
        realised_exposure({"dataset_state": {"step": 3}})
    with pytest.raises(ConfigError, match=r"^loader_states=0"):
        realised_exposure()


class TinyLM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(500, 8)
        self.drop = torch.nn.Dropout(0.5)  # draws from torch's global RNG every step
        self.out = torch.nn.Linear(8, 500)

    def forward(self, ids):
        return self.out(self.drop(self.emb(ids)))


def train(loader, steps, model, opt, it=None) -> list[float]:
    losses = []
    it = iter(loader) if it is None else it
    for _ in range(steps):
        b = next(it)
        logits = model(b["input_ids"])
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), b["labels"].flatten(), reduction="none"
        )
        loss = (loss * b["loss_mask"].flatten()).sum() / b["loss_mask"].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_resume_is_exact_when_the_iterator_is_made_before_the_rng_is_restored(workers):
    """The README's order: ``it = iter(loader)`` then ``torch.set_rng_state``; the other order diverges."""

    def fresh():
        torch.manual_seed(0)
        model = TinyLM()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        loader = stateful.StatefulDataLoader(packed().as_torch(), batch_size=None, num_workers=workers)
        return model, opt, loader

    model, opt, loader = fresh()
    whole = train(loader, STEPS, model, opt)

    model, opt, loader = fresh()
    it = iter(loader)
    first = train(loader, 10, model, opt, it)
    ckpt = {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "opt": opt.state_dict(),
        "data": loader.state_dict(),
        "rng": torch.get_rng_state(),
    }
    assert first == whole[:10]

    def resume(right_order: bool) -> list[float]:
        model, opt, loader = fresh()
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        loader.load_state_dict(ckpt["data"])
        if right_order:
            it = iter(loader)  # draws the loader's base seed from the global RNG ...
            torch.set_rng_state(ckpt["rng"])  # ... which this then overwrites
        else:
            torch.set_rng_state(ckpt["rng"])
            it = iter(loader)  # the draw shifts every later dropout mask
        return train(loader, STEPS - 10, model, opt, it)

    assert resume(right_order=True) == whole[10:]
    assert resume(right_order=False) != whole[10:]
