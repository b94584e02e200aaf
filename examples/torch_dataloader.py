"""Mix three toy domains under a Cooldown schedule through a torch DataLoader with 2 workers.

Run: python examples/torch_dataloader.py. Prints the realised domain counts per phase, stops
half-way, checkpoints ``loader.state_dict()`` and resumes a fresh loader exactly where it stopped.
"""

import json

import torch

import coolmix as cm
from coolmix.integrations.collate import PadCollator
from coolmix.integrations.loader import MixtureLoader

# token ids reveal the domain: en rows are 1s, it rows 2s, sw rows 3s (lengths vary, so we pad)
domains = {
    name: [{"input_ids": [k + 1] * (2 + i % 5)} for i in range(size)]
    for k, (name, size) in enumerate({"en": 500, "it": 40, "sw": 5}.items())
}
sizes = {name: len(items) for name, items in domains.items()}
sampler = cm.MixtureSampler(sizes, cm.Cooldown(hot=5.0, cold=1.0, at=0.5), total_steps=20, batch_size=16)

# MixtureLoader counts the batches it hands to the loop, so prefetching workers cannot skew the state
loader = MixtureLoader.from_datasets(domains, sampler, collate_fn=PadCollator(), num_workers=2)
counts = [0, 0, 0]
for step, batch in enumerate(loader):
    for d in batch["domain"].tolist():
        counts[d] += 1
    if step == 9:  # the τ=5 phase is over: checkpoint and stop
        break
print("hot phase (τ=5) counts en/it/sw:", counts)
state = json.loads(json.dumps(loader.state_dict()))  # a few counters, JSON-able
rng = torch.get_rng_state()  # save torch's RNG with the model, as usual
print("checkpointed at step", state["step"])

# a new process would rebuild the loader and load the state: it continues with step 10
fresh = MixtureLoader.from_datasets(
    domains,
    cm.MixtureSampler(sizes, cm.Cooldown(hot=5.0, cold=1.0, at=0.5), total_steps=20, batch_size=16),
    collate_fn=PadCollator(),
    num_workers=2,
)
fresh.load_state_dict(state)
it = iter(fresh)  # make the iterator first: iter() draws the workers' seed from torch's global RNG ...
torch.set_rng_state(rng)  # ... then restore the RNG, or every later dropout mask shifts by one draw
cold = [0, 0, 0]
for batch in it:
    for d in batch["domain"].tolist():
        cold[d] += 1
print("cold phase (τ=1) counts en/it/sw:", cold, "over", 20 - state["step"], "steps")
