"""torchtitan 0.3.0 with a Cooldown mixture and scalarised per-token loss weights (CPU, tiny model).

Run: python examples/torchtitan_example.py (needs ``pip install torchtitan``). In a real job the two
configs go into the trainer's config, ``Trainer.Config(dataloader=..., loss=...)``, which builds
them with the same arguments as below; here a two-rank data-parallel run is simulated in one
process, driven the way torchtitan's ``train_step`` drives it (all microbatches of a step fetched,
then each one's loss divided by the step's global count of valid tokens).

Sampling follows Cooldown (τ=5, then τ=1); the loss is re-weighted towards τ=3 at every step,
w_i(t) = p_3,i / p_sample,i(t), carried into the loss as domain ids encoded in the labels.
"""

import numpy as np
import torch

import coolmix as cm
from coolmix.integrations.torchtitan import CoolmixDataLoader, DomainWeightedLoss, LossWeights

V, T, STEPS, MICRO, WORLD = 512, 32, 8, 2, 2
rng = np.random.default_rng(0)
sizes = {"en": 3000, "sw": 60}
sources = {n: [rng.integers(3, V, rng.integers(5, 40)).tolist() for _ in range(k)] for n, k in sizes.items()}
schedule = cm.Cooldown(hot=5, cold=1, at=0.5)
p_sample = cm.MixtureSampler(sizes, schedule, total_steps=STEPS)
p3 = np.array(list(cm.temperature_probs(sizes, tau=3).values()))
weights = LossWeights(lambda t: p3 / p_sample.probs_array(t), names=list(sizes))

dataloader = CoolmixDataLoader.Config(
    sources=sources, sizes=sizes, schedule=schedule, total_steps=STEPS, microbatches=MICRO,
    vocab_size=V, loss_weights=weights,
)
loss = DomainWeightedLoss.Config(vocab_size=V, weights=weights)


def build(rank):
    """What torchtitan's trainer calls: config.dataloader.build(dp_world_size=..., dp_rank=..., ...)."""
    return dataloader.build(dp_world_size=WORLD, dp_rank=rank, tokenizer=None, seq_len=T, local_batch_size=2)


def train(its, model, steps):
    """torchtitan's train_step, over simulated dp ranks (gradients summed as all-reduce would)."""
    loss_fn, opt = loss.build(), torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        batches = [[next(it) for _ in range(MICRO)] for it in its]  # weights are set for this step now
        gvt = sum((labels != -100).sum() for rank in batches for _, labels in rank)
        opt.zero_grad()
        total = 0.0
        for rank in batches:
            for inputs, labels in rank:
                out, _ = loss_fn(model(inputs["input"]), labels, gvt)
                out.backward()
                total += float(out)
        opt.step()
        print(f"step {weights.step}: loss {total:.4f}, weights {np.round(weights.current, 2).tolist()}")


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(V, 16), torch.nn.Linear(16, V))


def main():
    loaders, model = [build(r) for r in range(WORLD)], tiny_model()
    its = [iter(dl) for dl in loaders]
    train(its, model, 6)  # Cooldown switches to τ=1 at step 4: the weights follow
    states = [dl.state_dict() for dl in loaders]  # what torchtitan's checkpointer saves per dp rank
    print("checkpoint:", {k: v for k, v in states[0].items() if not k.startswith("dp_rank")})
    # the next step's batches from the running loaders ...
    want = [[next(it) for _ in range(MICRO)] for it in its]
    # ... and from fresh loaders restored from the checkpoint
    fresh = [build(r) for r in range(WORLD)]
    for dl, state in zip(fresh, states, strict=True):
        dl.load_state_dict(state)
    fresh_its = [iter(dl) for dl in fresh]
    got = [[next(it) for _ in range(MICRO)] for it in fresh_its]
    same = all(
        torch.equal(a[0]["input"], b[0]["input"]) and torch.equal(a[1], b[1])
        for w, g in zip(want, got, strict=True) for a, b in zip(w, g, strict=True)
    )
    assert same
    print("resumed exactly: the restored loaders continue with the same packed rows and labels")


if __name__ == "__main__":
    main()
