"""Exact resume with torchdata's StatefulDataLoader: its own ``state_dict()`` is all you save.

Run: python examples/stateful_dataloader.py (needs ``pip install torchdata``). The DataLoader's
state holds the coolmix batch sampler's state (a few counters) as of the last delivered batch,
so a fresh loader continues with exactly the next batch, whatever the workers had prefetched.
"""

from torchdata.stateful_dataloader import StatefulDataLoader

import coolmix as cm
from coolmix.integrations.torch import MixtureBatchSampler, MixtureCollator, MixtureDataset

domains = {"en": [{"x": 1000 + i} for i in range(300)], "sw": [{"x": 2000 + i} for i in range(9)]}


def make_loader():
    dataset = MixtureDataset(domains)
    sampler = cm.MixtureSampler(dataset.sizes, 3.0, total_steps=12, batch_size=8, seed=1)
    batches = MixtureBatchSampler(sampler, dataset=dataset)
    return StatefulDataLoader(dataset, batch_sampler=batches, collate_fn=MixtureCollator(), num_workers=2)


loader = make_loader()
seen = []
for batch in loader:
    seen.append(batch["x"].tolist())
    if len(seen) == 5:
        break
state = loader.state_dict()  # checkpoint this alone

resumed = make_loader()
resumed.load_state_dict(state)
rest = [batch["x"].tolist() for batch in resumed]
uninterrupted = [batch["x"].tolist() for batch in make_loader()]
assert seen + rest == uninterrupted, "resume was not exact"
print(f"resumed after {len(seen)} batches; the next {len(rest)} match the uninterrupted run exactly")
