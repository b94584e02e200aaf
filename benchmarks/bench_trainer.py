"""Trainer throughput vs a bare PyTorch loop on the same model, data and batches.

    .venv/bin/python benchmarks/bench_trainer.py                 # LM, Bible en/it/zh/sw, ~3 min
    .venv/bin/python benchmarks/bench_trainer.py --steps 60 --reps 5 --bf16
    .venv/bin/python benchmarks/bench_trainer.py --smoke         # seconds: 6 steps, 1 rep, small data

Both loops start from the same seeded initial weights and consume the same batches. The bare
loop gets them pre-built: its step is forward + token-mean cross-entropy + backward + clip +
AdamW + LR step, nothing else. The trainer's step adds everything the library does: sampling the
batch (`MixtureSampler`), gathering it from the tokenised arrays, per-step dropout seeding,
per-example losses, loss weighting (scalarization, τ = 5 onto τ = 1 here), per-domain stats
and the progress hook. Evaluation and checkpointing happen only after the last step and are not
timed.

Timing is per step: the bare loop stamps each step; the trainer is stamped by a `MetricSink`
whose ``progress`` runs after every step (``run.log_every = 1``), so a trainer "step" is one full
loop iteration. Runs alternate (bare, trainer, trainer, bare, ...) in one process, for the full
model and for a ~20× cheaper one where the trainer's fixed per-step work is a larger share. On a
shared machine foreign load comes in bursts of seconds, so the report uses the median step time
over all repetitions, the first 3 steps of each run dropped as warm-up. Peak memory is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after each variant's first run (monotonic: the
trainer's figure includes the bare loop's).

Memory: the trainer tunes glibc's malloc by default (``run.tune_malloc``, see
`coolmix.train.loop.tune_malloc`), which is process-wide, so the bare loop gets it too and the
comparison is like for like. Untuned, where a step's largest buffers land depends on the heap's
history, and that moved either loop by 10-45% here. ``--default-malloc`` measures untuned.

Denormal floats are flushed to zero in both loops (``torch.set_flush_denormal``): the loops
optimise different losses (token mean vs weighted per-example mean), so their parameters, and
with them the number of denormals the CPU slows down on, drift apart; that alone moved a step by
3-6% here. ``--keep-denormals`` turns this off.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import torch
import torch.nn.functional as F

from coolmix.models import build_model
from coolmix.sampler import MixtureSampler
from coolmix.train import DataCache, load_config, train
from coolmix.train.loop import lr_factor, make_optimizer, tune_malloc
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
    "run": {"batch_size": 32, "eval_batches": 1, "test": False, "log_every": 1},
}
TINY = ["model.d_model=16", "model.n_layer=1", "model.d_ff=32", "model.n_head=2"]
WARMUP = 3


class StepTimer:
    """A `MetricSink` that stamps the end of every trainer step."""

    def __init__(self) -> None:
        self.stamps = [time.perf_counter()]

    def progress(self, step: int, status: dict) -> None:
        self.stamps.append(time.perf_counter())

    def write(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass

    def step_times(self) -> list[float]:
        return [b - a for a, b in pairwise(self.stamps)]


def bare_loop(cfg, data, batches) -> list[float]:
    """The minimal loop over pre-built batches; returns the wall time of each step."""
    torch.manual_seed(cfg.run.seed)
    model = build_model(data.task.kind, cfg.model, data.tok.vocab_size)
    model.train()
    opt = make_optimizer(model, cfg.optim)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg.optim, cfg.run.total_steps, s))
    pad, times = data.tok.pad_id, []
    for batch in batches:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.run.bf16):
            logits = model(*batch.inputs)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), batch.targets.flatten(), ignore_index=pad)
        del logits  # as the trainer does: holding them across the step costs ~10% on CPU (page faults)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip)
        opt.step()
        sched.step()
        times.append(time.perf_counter() - t0)
    return times


def trainer_run(cfg, cache: DataCache) -> list[float]:
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        # the first "step" also holds the trainer's setup; it goes with the warm-up steps
        train(cfg, Path(out), cache=cache, sinks=(timer,))
    return timer.step_times()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep-denormals", action="store_true", help="do not flush denormals to zero")
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc untuned")
    ap.add_argument("--smoke", action="store_true", help="seconds: 6 steps, 1 rep, 2,000 training verses")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.reps = WARMUP + 3, 1
    torch.set_flush_denormal(not args.keep_denormals)
    if not args.default_malloc:
        tune_malloc()  # what the trainer does on CPU; process-wide, so the bare loop gets it too

    overrides = [
        f"run.total_steps={args.steps}",
        f"run.eval_every={args.steps}",
        f"run.threads={args.threads}",
    ]
    overrides.append(f"run.bf16={'true' if args.bf16 else 'false'}")
    overrides.append(f"run.tune_malloc={'false' if args.default_malloc else 'true'}")
    if args.smoke:
        overrides.append("data.max_train=2000")
    configs = {"full": load_config(CONFIG, overrides), "tiny": load_config(CONFIG, overrides + TINY)}
    cache = DataCache()
    data = prepare(configs["full"], cache, ("train", "dev"))
    torch.set_num_threads(args.threads)
    train_split = data.splits["train"]
    cfg = configs["full"]
    sampler = MixtureSampler(
        train_split.sizes(), cfg.balance.schedule(), args.steps, cfg.run.batch_size, cfg.run.seed
    )
    batches = [
        data.task.batch(train_split, *sampler.batch(t), torch.device("cpu")) for t in range(args.steps)
    ]
    tokens = sum(int((b.targets != data.tok.pad_id).sum()) for b in batches) / args.steps

    times: dict[tuple[str, str], list[float]] = {}
    rss: dict[tuple[str, str], int] = {}
    for rep in range(args.reps):
        for model in ("full", "tiny"):
            for variant in ("bare", "trainer")[:: 1 if rep % 2 == 0 else -1]:  # alternate who goes first
                c = configs[model]
                run = bare_loop(c, data, batches) if variant == "bare" else trainer_run(c, cache)
                times.setdefault((model, variant), []).extend(run[WARMUP:])
                rss.setdefault((model, variant), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        print(f"rep {rep} done", file=sys.stderr)

    med = {k: statistics.median(v) for k, v in times.items()}
    params = {
        m: sum(p.numel() for p in build_model("lm", c.model, data.tok.vocab_size).parameters())
        for m, c in configs.items()
    }
    print(f"\n`{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"batch {cfg.run.batch_size} × ≤{cfg.task.seq_len} tokens ({tokens:.0f} targets), "
        f"{args.steps} steps × {args.reps} reps, bf16={args.bf16}, "
        f"denormals {'kept' if args.keep_denormals else 'flushed'}, "
        f"malloc {'default' if args.default_malloc else 'tuned'}\n"
    )
    print("| model | loop | median ms/step | tokens/s | overhead | peak RSS (MiB) |")
    print("|---|---|---:|---:|---:|---:|")
    for model in ("full", "tiny"):
        for variant, name in (("bare", "bare PyTorch"), ("trainer", "coolmix trainer")):
            m = med[(model, variant)]
            over = f"{100 * (m / med[(model, 'bare')] - 1):+.2f}%" if variant == "trainer" else ""
            print(
                f"| {params[model] / 1e6:.2f}M | {name} | {1e3 * m:.2f} | {tokens / m:,.0f} | {over} | "
                f"{rss[(model, variant)] / 1024:,.0f} |"
            )
    extra = med[("tiny", "trainer")] - med[("tiny", "bare")]
    print(
        f"\ntrainer's fixed work per step (from the tiny-model runs): {1e3 * extra:.2f} ms "
        f"= {100 * extra / med[('full', 'bare')]:.2f}% of a bare step of the full model"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
