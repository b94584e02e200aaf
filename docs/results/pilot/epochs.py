"""Epochs per language per method for a preset (sampler's own counts; no training)."""

import sys

import coolmix as cm
from coolmix.reproduce.runner import _sizes, expand
from coolmix.reproduce.specs import preset
from coolmix.train import TrainConfig

name = sys.argv[1] if len(sys.argv) > 1 else "quick"
p = preset(name)
tot = 0
for exp in p.experiments:
    sizes = _sizes(exp)
    specs = expand(exp, sizes)
    run = exp.base["run"]
    print(f"## {exp.key}: {len(specs)} runs, sizes {sizes}, steps {run['total_steps']}x{run['batch_size']}")
    tot += len(specs)
    seen = set()
    for s in specs:
        key = (s.method, s.role)
        if key in seen:
            continue
        seen.add(key)
        cfg = s.config
        if s.role == "main" and s.method == "doremi":
            print(f"  {s.method:14s} (main: learned weights)")
            continue
        bal = cfg["balance"]
        if bal.get("sample") == "inf":
            sched = cm.Uniform()
        else:
            sched = TrainConfig.from_dict(
                {**cfg, "doremi": {}} if s.role == "proxy" else cfg
            ).balance.schedule()
        r = cfg["run"]
        smp = cm.MixtureSampler(
            sizes, sched, total_steps=r["total_steps"], batch_size=r["batch_size"], seed=0
        )
        for t in range(r["total_steps"]):
            smp.batch(t)
        ep = {k: smp.cursors[k] / sizes[k] for k in sizes}
        print(
            f"  {s.method + ('-' + s.role if s.role != 'main' else ''):14s} "
            + "  ".join(f"{k} {v:6.2f}" for k, v in ep.items())
        )
print("total runs", tot)
