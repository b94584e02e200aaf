"""Streaming per-domain sources, mixed in tokens under Cooldown and packed into fixed-length rows.

Two "languages" stream documents from generators (stand-ins for HF IterableDatasets or shard
directories); the schedule decides which domain's document fills each row next, by token deficit.
Every batch carries per-token domain ids (-1 at padding), so per-token loss weights are one call.
The state (per-domain positions plus the packer's half-placed document) is global: it resumes the
stream exactly, in process, through a 2-worker ``StatefulDataLoader`` (the second half: the RNG
order on resume, per-step loss weights w(t) and the realised tokens per domain read from the
loader's state), and under another layout (the 2 workers' state resumed by one process).
"""

import json

import numpy as np
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

import coolmix as cm
from coolmix.integrations.loader import realised_exposure, stream_states
from coolmix.integrations.streams import PackedStreams, latest_state


def docs(n: int, seed: int):
    """A re-iterable source: n documents of token ids with lengths 5..60 (a new pass restarts it)."""

    def factory():
        rng = np.random.default_rng(seed)
        for _ in range(n):
            yield rng.integers(10, 1000, size=int(rng.integers(5, 60))).tolist()

    return factory


sizes = {"en": 40_000, "sw": 600}  # declared token counts (approximate is fine)
sources = {"en": docs(1000, 0), "sw": docs(20, 1)}
make = lambda: PackedStreams(  # noqa: E731
    sources, sizes, cm.Cooldown(hot=5, cold=1, at=0.5), total_steps=40, rows=4, seq_len=64
)

stream = make()
it = stream.lane()  # one process, one worker; DataLoader workers and ranks each get their rows of it
batches = [next(it) for _ in range(20)]
state = json.loads(json.dumps(stream.state_dict()))  # small and JSON-able
rest = [next(it) for _ in range(20)]

b = batches[0]
print({k: v.shape for k, v in b.items()})
tok_share = {d: float((b["domain_ids"] == i).mean()) for i, d in enumerate(sizes)}
print("token shares in the first batch (τ=5 phase):", {k: round(v, 3) for k, v in tok_share.items()})

# per-token loss weights that turn the τ=5 sample into the proportional (τ=1) objective; padding ignored
w = cm.loss_weights(sizes, target=cm.Temperature(1), sample=cm.Temperature(5))
token_loss = np.ones(b["input_ids"].shape)  # stands in for the model's per-token cross-entropy
ids = np.where(b["loss_mask"], b["domain_ids"], -1)
print("weighted loss:", float(cm.weighted_loss(token_loss, ids, w, names=list(sizes), ignore_index=-1)))

# exact resume: a fresh object restored from the state continues with identical batches
again = make()
again.load_state_dict(state)
it2 = again.lane()
for want in rest:
    got = next(it2)
    assert all(np.array_equal(got[k], want[k]) for k in want), "resume must be exact"
print("resumed from step 20: the next 20 batches are identical")
print("realised tokens per domain:", again.realised())

# -- the same stream through a 2-worker StatefulDataLoader -------------------------------------------
# labels are already shifted (labels[t] = next token of the same document); rows=4 is the *global*
# row count per step (each data-parallel rank gets rows / world_size); batches arrive as int64 tensors.


sched = cm.Cooldown(hot=5, cold=1, at=0.5)


def train(it, start=0, steps=None):
    """(weighted loss, batch checksum, dropout draw) per step; torch.rand stands in for dropout."""
    out = []
    for step, b in enumerate(it, start=start):
        w = cm.weights_at(step, sizes, sched, 40, target=1.0)  # w(t): the τ=5 half optimises τ=1
        tok_loss = torch.ones(b["input_ids"].shape)  # stands in for per-token cross-entropy
        ids = b["domain_ids"]
        loss = cm.weighted_loss(tok_loss, ids, w, names=list(sizes), ignore_index=-1, mask=b["loss_mask"])
        out.append((round(float(loss), 6), b["input_ids"].sum().item(), torch.rand(()).item()))
        if len(out) == steps:
            break
    return out


torch.manual_seed(0)
whole = train(StatefulDataLoader(make().as_torch(), batch_size=None, num_workers=2))
torch.manual_seed(0)
loader = StatefulDataLoader(make().as_torch(), batch_size=None, num_workers=2)
done = train(loader, steps=25)
ckpt = {"data": loader.state_dict(), "rng": torch.get_rng_state()}
exposure = realised_exposure(ckpt["data"])  # the run's, as of step 25 (states are global)
print("realised tokens after 25 steps:", {d: c["tokens"] for d, c in exposure.items()})

resumed = StatefulDataLoader(make().as_torch(), batch_size=None, num_workers=2)
resumed.load_state_dict(ckpt["data"])
it = iter(resumed)  # 1. the iterator first: iter() draws the workers' seed from torch's global RNG
torch.set_rng_state(ckpt["rng"])  # 2. then torch's RNG, so that draw does not shift dropout
assert done + train(it, start=25) == whole, "loader resume must be exact"
print("StatefulDataLoader (2 workers) resumed at step 25: losses, batches and dropout draws identical")

# -- elastic: the 2 workers' state resumed by one process (any ranks × workers layout works) ---------
single = make()
single.load_state_dict(latest_state(stream_states(ckpt["data"])))  # the latest lane state: step 25
sums = [int(b["input_ids"].sum()) for b in single.lane()]
assert sums == [s for _, s, _ in whole[25:]], "a resume under another layout must be exact"
print("the 2-worker state resumed in 1 process at step 25: the same 15 batches")
