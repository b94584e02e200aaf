"""Trainer throughput vs a bare PyTorch loop on the same model, data and batches.

    .venv/bin/python benchmarks/bench_trainer.py                 # LM, Bible en/it/zh/sw, ~2 min
    .venv/bin/python benchmarks/bench_trainer.py --steps 100 --reps 3 --bf16

Both loops start from the same seeded initial weights and consume the same batches (the bare
loop gets them pre-built, so its time is forward + loss + backward + clip + AdamW + LR step and
nothing else). The trainer's time is its per-step training time (sampling, batching, loss
weighting, per-domain bookkeeping included; evaluation and checkpointing excluded), read from
its ``tokens_per_s`` metric. Repetitions alternate bare/trainer so drift hits both alike; the
median of each is reported. Peak memory is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after
each variant's first repetition (monotonic: the second number includes the first).
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from coolmix.models import build_model
from coolmix.sampler import MixtureSampler
from coolmix.train import DataCache, load_config, train
from coolmix.train.loop import lr_factor, make_optimizer
from coolmix.train.tasks import prepare

CONFIG = {
    "data": {
        "name": "bible",
        "langs": ["en", "it", "zh", "sw"],
        "ratios": {"en": 2733, "it": 162, "zh": 39, "sw": 1},
        "max_train": 20000,
        "dev_size": 64,
        "test_size": 64,
    },
    "tokenizer": {"vocab_size": 4000, "tau": 5.0},
    "model": {"d_model": 128, "n_layer": 4, "n_head": 4, "d_ff": 512, "max_len": 64, "dropout": 0.1},
    "task": {"seq_len": 64},
    "balance": {"sample": 1, "target": 5},  # scalarization: the weighting path is exercised
    "optim": {"lr": 1e-3, "warmup": 10},
    "run": {"batch_size": 32, "eval_batches": 1, "test": False, "threads": 2},
}


def bare_loop(cfg, data, batches) -> tuple[float, int]:
    """The minimal loop: pre-built batches, plain token-mean cross-entropy. Returns (seconds, tokens)."""
    torch.manual_seed(cfg.run.seed)
    model = build_model(data.task.kind, cfg.model, data.tok.vocab_size)
    model.train()
    opt = make_optimizer(model, cfg.optim)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg.optim, cfg.run.total_steps, s))
    pad, tokens = data.tok.pad_id, 0
    t0 = time.perf_counter()
    for batch in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.run.bf16):
            logits = model(*batch.inputs)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten(), ignore_index=pad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip)
        opt.step()
        sched.step()
        tokens += int((batch.targets != pad).sum())
    return time.perf_counter() - t0, tokens


def compare(cfg, data, cache, batches, reps: int, label: str) -> tuple[list[float], list[float], dict]:
    """Alternate bare and trainer runs ``reps`` times; tokens/s of each, and peak RSS after each."""
    bare, trainer, rss = [], [], {}
    for rep in range(reps):
        secs, tokens = bare_loop(cfg, data, batches)
        bare.append(tokens / secs)
        rss.setdefault("bare", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        with tempfile.TemporaryDirectory() as out:
            record = train(cfg, Path(out), cache=cache)
        trainer.append(record["tokens_per_s"])
        rss.setdefault("trainer", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        print(
            f"{label} rep {rep}: bare {bare[-1]:,.0f} tok/s, trainer {trainer[-1]:,.0f} tok/s",
            file=sys.stderr,
        )
    return bare, trainer, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    overrides = [
        f"run.total_steps={args.steps}",
        f"run.eval_every={args.steps}",
        f"run.threads={args.threads}",
    ]
    overrides.append(f"run.bf16={'true' if args.bf16 else 'false'}")
    cfg = load_config(CONFIG, overrides)
    # the same data with a ~16× cheaper model: the model's time shrinks, the trainer's extra work does not
    tiny = cfg.replace(overrides=["model.d_model=16", "model.n_layer=1", "model.d_ff=32", "model.n_head=2"])
    cache = DataCache()
    data = prepare(cfg, cache, ("train", "dev"))
    torch.set_num_threads(args.threads)
    sampler = MixtureSampler(
        data.splits["train"].sizes(),
        cfg.balance.schedule(),
        cfg.run.total_steps,
        cfg.run.batch_size,
        cfg.run.seed,
    )
    cpu = torch.device("cpu")
    batches = [data.task.batch(data.splits["train"], *sampler.batch(t), cpu) for t in range(args.steps)]
    n_big, n_tiny = (
        sum(p.numel() for p in build_model("lm", c.model, data.tok.vocab_size).parameters())
        for c in (cfg, tiny)
    )

    bare, trainer, rss = compare(cfg, data, cache, batches, args.reps, "model")
    tiny_bare, tiny_trainer, _ = compare(tiny, data, cache, batches, args.reps, "tiny")

    tokens = sum(int((b.targets != data.tok.pad_id).sum()) for b in batches)
    step_ms = lambda tps: 1e3 * tokens / tps / args.steps  # noqa: E731
    extra_ms = step_ms(max(tiny_trainer)) - step_ms(max(tiny_bare))
    print(f"\n`{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"{n_big / 1e6:.2f}M params, batch {cfg.run.batch_size} × ≤{cfg.task.seq_len} tokens, "
        f"{args.steps} steps × {args.reps} reps (alternating), bf16={args.bf16}\n"
    )
    print("| loop | tokens/s best | median | ms/step best | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, key, runs in (("bare PyTorch", "bare", bare), ("coolmix trainer", "trainer", trainer)):
        best = max(runs)
        print(
            f"| {name} | {best:,.0f} | {statistics.median(runs):,.0f} | {step_ms(best):.1f} | "
            f"{rss[key] / 1024:,.0f} |"
        )
    print(
        f"\noverhead, best vs best: {100 * (1 - max(trainer) / max(bare)):+.2f}%; "
        f"median vs median: {100 * (1 - statistics.median(trainer) / statistics.median(bare)):+.2f}%"
    )
    print(
        f"trainer's extra work per step, measured with a {n_tiny / 1e3:.0f}k-param model: "
        f"{extra_ms:.2f} ms = {100 * extra_ms / step_ms(max(bare)):.2f}% of a bare step of the real model"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
