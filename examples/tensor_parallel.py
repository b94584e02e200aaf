"""Data-parallel coordinates under tensor parallelism: TP peers read the same rows.

Run: python examples/tensor_parallel.py. Single process: it plays the 4 processes of a
TP=2 × DP=2 run by giving each one its explicit data-parallel rank, ``dp=DataParallel(dp_rank, 2)``.
Under torchrun you would pass ``dp=init_device_mesh("cuda", (2, 2), mesh_dim_names=("dp", "tp"))``
(or ``dp=`` the dp process group) instead; the rank is then read when iteration starts, so building
the sampler before ``init_process_group`` is fine.
"""

import coolmix as cm
from coolmix.integrations.torch import DataParallel, MixtureBatchSampler, MixtureDataset

domains = {"code": list(range(100)), "web": list(range(100, 1100)), "books": list(range(1100, 1130))}
dataset = MixtureDataset(domains)

rows = {}
for global_rank in range(4):
    dp_rank, tp_rank = divmod(global_rank, 2)  # mesh laid out (dp, tp): ranks 0,1 share dp rank 0
    sampler = cm.MixtureSampler(dataset.sizes, 2.0, total_steps=3, batch_size=8, seed=0)
    batches = MixtureBatchSampler(sampler, dp=DataParallel(dp_rank, 2), dataset=dataset)
    rows[global_rank] = list(batches)
    print(f"global rank {global_rank} (dp={dp_rank}, tp={tp_rank}) step 0 rows: {rows[global_rank][0]}")

assert rows[0] == rows[1] and rows[2] == rows[3], "TP peers must read identical rows"
whole = cm.MixtureSampler(dataset.sizes, 2.0, total_steps=3, batch_size=8, seed=0)
assert rows[0][0] + rows[2][0] == dataset.flat_index(*whole.global_batch(0)).tolist()
print("TP peers identical; the two dp slices concatenate to the global batch")
