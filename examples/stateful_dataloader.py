"""Exact resume with torchdata's StatefulDataLoader: its own ``state_dict()`` is all you save for the data.

Run: python examples/stateful_dataloader.py (needs ``pip install torchdata``). The DataLoader's
state holds the coolmix batch sampler's state (a few counters) as of the last delivered batch,
so a fresh loader continues with exactly the next batch, whatever the workers had prefetched.

RNG order: ``iter(loader)`` draws the workers' base seed from torch's global RNG, so on resume make
the iterator first and restore torch's RNG state after it; the other order shifts every later
random draw (dropout) by one. ``torch.rand`` below stands in for dropout.
"""

import torch
from torchdata.stateful_dataloader import StatefulDataLoader

import coolmix as cm
from coolmix.integrations.torch import MixtureBatchSampler, MixtureCollator, MixtureDataset

domains = {"en": [{"x": 1000 + i} for i in range(300)], "sw": [{"x": 2000 + i} for i in range(9)]}


def make_loader():
    dataset = MixtureDataset(domains)
    sampler = cm.MixtureSampler(dataset.sizes, 3.0, total_steps=12, batch_size=8, seed=1)
    batches = MixtureBatchSampler(sampler, dataset=dataset)
    return StatefulDataLoader(dataset, batch_sampler=batches, collate_fn=MixtureCollator(), num_workers=2)


def run(it, steps=None):
    """(batch, dropout draw) per step: what a training loop consumes."""
    out = []
    for batch in it:
        out.append((batch["x"].tolist(), torch.rand(()).item()))
        if len(out) == steps:
            break
    return out


torch.manual_seed(0)
uninterrupted = run(iter(make_loader()))

torch.manual_seed(0)
loader = make_loader()
seen = run(iter(loader), steps=5)
ckpt = {"data": loader.state_dict(), "rng": torch.get_rng_state()}  # the loader's state is all the data needs

resumed = make_loader()
resumed.load_state_dict(ckpt["data"])
it = iter(resumed)  # 1. the iterator (it draws a seed from the global RNG) ...
torch.set_rng_state(ckpt["rng"])  # 2. ... then the RNG, so the draw does not shift the run
rest = run(it)
assert seen + rest == uninterrupted, "resume was not exact"
print(f"resumed after {len(seen)} batches; the next {len(rest)} batches and dropout draws match exactly")
