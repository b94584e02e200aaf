"""bf16 vs fp32 on this CPU with the reproduction's LM model (quick preset's lm base, τ=5).

Alternates fp32, bf16, fp32, bf16 (same seed, same batches), one thread each, in one process.
Reports CPU seconds per training step (time.process_time around each run, minus the same
run's evaluation share is not separated: eval is one pass at the end, identical work in both)
because wall time on this shared 2-core machine swings with other users' load, and the final
dev loss per language so that agreement can be checked.
"""

import json
import statistics
import sys
import tempfile
import time

from coolmix.reproduce.specs import preset
from coolmix.train import DataCache, TrainConfig, train

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
exp = next(e for e in preset("quick").experiments if e.key == "lm")
base = json.loads(json.dumps(exp.base))
base["balance"] = {"sample": 5.0}
base["run"].update(total_steps=steps, eval_every=steps, threads=1, test=False, eval_batches=1)
cache = DataCache()
res = {False: [], True: []}
for rep in range(reps):
    for bf16 in (False, True):
        cfg = dict(base)
        cfg["run"] = {**base["run"], "bf16": bf16}
        with tempfile.TemporaryDirectory() as d:
            c0, t0 = time.process_time(), time.perf_counter()
            rec = train(TrainConfig.from_dict(cfg), d, cache=cache)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        res[bf16].append(cpu / steps)
        print(
            "bf16" if bf16 else "fp32",
            rep,
            f"cpu/step {1000 * cpu / steps:.1f} ms wall {wall:.1f}s",
            {k: round(v, 3) for k, v in rec["dev"]["loss"].items()},
            flush=True,
        )
for bf16 in (False, True):
    print("bf16" if bf16 else "fp32", "median cpu ms/step", round(1000 * statistics.median(res[bf16]), 1))
