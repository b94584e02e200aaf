"""Packed-token pipelines side by side: coolmix streams vs HF interleave + packing vs torchdata.nodes.

Same synthetic documents for every system: 4 domains with Zipf document counts (n_i = 40000 / i²)
and lognormal lengths whose mean differs per domain (≈ 200, 370, 140, 560 tokens), token ids
drawn from a generator keyed by (domain, document). Target: ``Cooldown(hot=5, cold=1, at=0.5)``
over declared token sizes (documents × mean length), a batch is R × T = 8 × 512 tokens.

- **coolmix**: ``PackedStreams`` (per-domain sources, token-deficit packing, one lane per worker)
  through ``torch.utils.data.DataLoader(batch_size=None, num_workers=2)``;
- **HF**: ``datasets.interleave_datasets(probabilities=p)`` + a ``group_texts``-style packing
  ``map`` (concatenate a map batch, cut rows of T, drop the remainder), DataLoader with 2 workers;
  probabilities are per *document* and fixed, so the Cooldown switch is a second pipeline for the
  second half of the batches (how a user has to do it);
- **torchdata**: ``nodes.MultiNodeWeightedSampler(weights=p)`` + a greedy packing step, inside a
  DataLoader with 2 workers (each worker samples its own shard), also restarted for the second half.

Reported: packed tokens/s (wall time including DataLoader start-up), the realised token-share error
against the token target Σ_t R·T·p(t) (final, in percentage points, and the worst cumulative
|Y_i − X_i| over steps, in tokens), and the tracemalloc peak at two stream lengths (in-process,
no workers) to show memory is flat in stream length.

"coolmix, per-tensor transfer" is the same stream with its batches sent as six tensors (what
``as_torch()`` gave before): it isolates the DataLoader transfer. Rounds run every system once, in
rotated order, so foreign load on a shared machine hits all of them; ratios are paired per round.

Run (from the repository root; about 2 minutes; the table goes to benchmarks/results_pipeline.md)::

    .venv/bin/python benchmarks/bench_pipeline.py [--steps 400] [--repeats 3] [--out PATH]
    .venv/bin/python benchmarks/bench_pipeline.py --smoke     # seconds: 16 batches, no file written
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, IterableDataset, get_worker_info  # noqa: E402

from coolmix import Cooldown  # noqa: E402
from coolmix.integrations.streams import PackedStreams  # noqa: E402

torch.set_num_threads(1)
NAMES = ("en", "de", "sw", "yo")
DOCS = [40000 // (i + 1) ** 2 for i in range(4)]
MU, SIGMA = np.array([5.0, 5.6, 4.6, 6.0]), 0.8
MEAN_LEN = np.exp(MU + SIGMA**2 / 2)
SIZES = {n: float(d * m) for n, d, m in zip(NAMES, DOCS, MEAN_LEN, strict=True)}  # declared tokens
ROWS, SEQ = 8, 512
SCHED = Cooldown(hot=5.0, cold=1.0, at=0.5)
DEFAULT_OUT = Path(__file__).resolve().parent / "results_pipeline.md"


def make_doc(d: int, k: int) -> np.ndarray:
    rng = np.random.default_rng([d, k])
    n = max(1, int(rng.lognormal(MU[d], SIGMA)))
    return rng.integers(1, 50_000, n)


class Docs:
    """Domain d's documents (k = index, index + shards, …): re-iterable, shardable, O(1) memory."""

    def __init__(self, d: int, index: int = 0, shards: int = 1) -> None:
        self.d, self.index, self.shards = d, index, shards

    def shard(self, num_shards: int, index: int) -> Docs:
        return Docs(self.d, self.index + index * self.shards, self.shards * num_shards)

    def __iter__(self) -> Iterator[dict]:
        for k in range(self.index, DOCS[self.d], self.shards):
            yield {"input_ids": make_doc(self.d, k), "domain": self.d}


def probs(step: int, steps: int) -> np.ndarray:
    """The token target p(step) of the schedule."""
    return np.array(list(SCHED.probs_at(step, SIZES, steps).values()))


def doc_probs(step: int, steps: int) -> np.ndarray:
    """Document probabilities giving token shares p in expectation: p_doc ∝ p / mean length."""
    q = probs(step, steps) / MEAN_LEN
    return q / q.sum()


def greedy_rows(docs: Iterator[dict]) -> Iterator[dict]:
    """Concatenate documents and cut rows of SEQ tokens (the peers' packing step)."""
    ids, dom, have = [], [], 0
    for doc in docs:
        ids.append(np.asarray(doc["input_ids"]))
        dom.append(np.full(len(doc["input_ids"]), doc["domain"]))
        have += len(doc["input_ids"])
        while have >= SEQ:
            flat_i, flat_d = np.concatenate(ids), np.concatenate(dom)
            yield {"input_ids": flat_i[:SEQ], "domain_ids": flat_d[:SEQ]}
            ids, dom, have = [flat_i[SEQ:]], [flat_d[SEQ:]], have - SEQ


# -- the three systems: each yields (R, T) domain-id tensors for `steps` batches -------------------


def coolmix_batches(steps: int, workers: int) -> Iterator[torch.Tensor]:
    ps = PackedStreams({n: Docs(i) for i, n in enumerate(NAMES)}, SIZES, SCHED, steps, ROWS, SEQ)
    if workers == 0:
        for b in ps:
            yield torch.from_numpy(b["domain_ids"])
        return
    for b in DataLoader(ps.as_torch(), batch_size=None, num_workers=workers):
        yield b["domain_ids"]


class PerTensor(IterableDataset):
    """The stream's plain numpy dicts: the DataLoader turns each array into a tensor in the worker and
    sends each through its own shared-memory file descriptor (what ``as_torch()`` did before)."""

    def __init__(self, inner: PackedStreams) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[dict]:
        return iter(self.inner)


def coolmix_per_tensor_batches(steps: int, workers: int) -> Iterator[torch.Tensor]:
    ps = PackedStreams({n: Docs(i) for i, n in enumerate(NAMES)}, SIZES, SCHED, steps, ROWS, SEQ)
    if workers == 0:
        yield from coolmix_batches(steps, 0)
        return
    for b in DataLoader(PerTensor(ps), batch_size=None, num_workers=workers):
        yield b["domain_ids"]


def _hf_phase(p: np.ndarray) -> object:
    import datasets

    def gen(d: int, shards: list[int]) -> Iterator[dict]:
        for s in shards:
            for doc in Docs(d, s, 2):
                yield {"input_ids": doc["input_ids"].tolist(), "domain": d}

    srcs = [
        datasets.IterableDataset.from_generator(gen, gen_kwargs={"d": d, "shards": [0, 1]}) for d in range(4)
    ]
    mixed = datasets.interleave_datasets(
        srcs, probabilities=p.tolist(), seed=0, stopping_strategy="all_exhausted"
    )

    def group_texts(batch: dict) -> dict:
        ids = np.concatenate([np.asarray(x) for x in batch["input_ids"]])
        dom = np.concatenate(
            [np.full(len(x), d) for x, d in zip(batch["input_ids"], batch["domain"], strict=True)]
        )
        n = len(ids) // SEQ * SEQ
        return {
            "input_ids": ids[:n].reshape(-1, SEQ).tolist(),
            "domain_ids": dom[:n].reshape(-1, SEQ).tolist(),
        }

    packed = mixed.map(group_texts, batched=True, batch_size=64, remove_columns=["input_ids", "domain"])
    return packed  # plain rows; HF's torch formatter tensorises every int separately (50x slower)


def collate_rows(rows: list[dict]) -> dict:
    return {k: torch.as_tensor(np.array([r[k] for r in rows])) for k in ("input_ids", "domain_ids")}


def hf_batches(steps: int, workers: int) -> Iterator[torch.Tensor]:
    for phase, n in ((0, steps // 2), (steps // 2, steps - steps // 2)):
        ds = _hf_phase(doc_probs(phase, steps))
        loader = DataLoader(ds, batch_size=ROWS, num_workers=workers, collate_fn=collate_rows)
        it = iter(loader) if workers else _rows_to_batches(ds)
        for _ in range(n):
            yield next(it)["domain_ids"]


def _rows_to_batches(rows: object) -> Iterator[dict]:
    buf = []
    for r in rows:
        buf.append(r)
        if len(buf) == ROWS:
            yield collate_rows(buf)
            buf = []


class TorchdataRows(IterableDataset):
    """MultiNodeWeightedSampler over this worker's shard of every domain, then greedy packing."""

    def __init__(self, p: np.ndarray) -> None:
        self.weights = {n: float(x) for n, x in zip(NAMES, p, strict=True)}

    def __iter__(self) -> Iterator[dict]:
        from torchdata.nodes import IterableWrapper, MultiNodeWeightedSampler

        info = get_worker_info()
        w, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        nodes = {n: IterableWrapper(Docs(i, w, nw)) for i, n in enumerate(NAMES)}
        sampler = MultiNodeWeightedSampler(nodes, self.weights, stop_criteria="CYCLE_FOREVER", seed=w)
        return greedy_rows(iter(sampler))


def torchdata_batches(steps: int, workers: int) -> Iterator[torch.Tensor]:
    for phase, n in ((0, steps // 2), (steps // 2, steps - steps // 2)):
        ds = TorchdataRows(doc_probs(phase, steps))
        loader = DataLoader(ds, batch_size=ROWS, num_workers=workers, collate_fn=collate_rows)
        it = iter(loader) if workers else _rows_to_batches(ds)
        for _ in range(n):
            yield next(it)["domain_ids"]


SYSTEMS = {
    "coolmix `PackedStreams` (token deficit)": coolmix_batches,
    "coolmix, per-tensor transfer (`as_torch()` before 2026-12-06)": coolmix_per_tensor_batches,
    "HF `interleave_datasets` + packing map": hf_batches,
    "torchdata `MultiNodeWeightedSampler` + packing": torchdata_batches,
}
TORCHDATA = "torchdata `MultiNodeWeightedSampler` + packing"


def run_throughput(fn, steps: int) -> dict:
    target = np.zeros(4)
    real = np.zeros(4)
    worst = 0.0
    t0 = time.perf_counter()
    for t, dom in enumerate(fn(steps, 2)):
        target += ROWS * SEQ * probs(t, steps)
        real += _count(dom)
        worst = max(worst, float(np.abs(real - target).max()))
    wall = time.perf_counter() - t0
    share = np.abs(real / real.sum() - target / target.sum()).max()
    return {"tok_s": real.sum() / wall, "share_pp": 100 * share, "worst": worst, "wall": wall}


def _count(dom: torch.Tensor) -> np.ndarray:
    d = dom.numpy().ravel()
    return np.bincount(d[d >= 0], minlength=4)[:4]


def run_memory(fn, steps: int) -> float:
    tracemalloc.start()
    for _ in fn(steps, 0):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def packing_cost(steps: int) -> dict[str, float]:
    """In-process seconds per batch of packing alone, on pre-built documents (no DataLoader, no source cost):
    coolmix's deficit packer (`PackedStreams`, one lane) vs the peers' greedy concatenation + collation."""
    pre = {n: [make_doc(i, k) for k in range(min(DOCS[i], 2000))] for i, n in enumerate(NAMES)}
    it = iter(PackedStreams(pre, SIZES, SCHED, steps + 1, ROWS, SEQ))
    next(it)  # set-up and first batch are not timed, for either
    t0 = time.perf_counter()
    for _ in it:
        pass
    ours = (time.perf_counter() - t0) / steps
    docs = (
        {"input_ids": pre[n][k % len(pre[n])], "domain": i} for k in range(2**62) for i, n in enumerate(NAMES)
    )
    rows = greedy_rows(docs)
    collate_rows([next(rows) for _ in range(ROWS)])
    t0 = time.perf_counter()
    for _ in range(steps):
        collate_rows([next(rows) for _ in range(ROWS)])
    return {"coolmix": ours, "greedy": (time.perf_counter() - t0) / steps}


def _range(xs: list[float], fmt: str) -> str:
    """Median and [min–max] of repeated measurements."""
    med = format(float(np.median(xs)), fmt)
    return med if len(xs) == 1 else f"{med} [{min(xs):{fmt}}–{max(xs):{fmt}}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400, help="batches per throughput run")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each runs every system once, rotated")
    ap.add_argument("--mem-steps", type=int, default=40, help="shorter memory run; the long one is 4×")
    ap.add_argument("--out", type=Path, default=None, help=f"markdown file (default {DEFAULT_OUT.name})")
    ap.add_argument("--smoke", action="store_true", help="seconds: 16 batches, one round, no file written")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.repeats, args.mem_steps = 16, 1, 4
    elif args.out is None:
        args.out = DEFAULT_OUT
    names = list(SYSTEMS)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    load = [os.getloadavg()[0]]
    for rep in range(args.repeats):  # rotate the order: a burst of foreign load hits every system
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            r = run_throughput(SYSTEMS[name], args.steps)
            runs[name].append(r)
            print(
                f"round {rep}: {name}: {r['tok_s'] / 1e6:.2f} M tok/s, share err {r['share_pp']:.3f} pp",
                flush=True,
            )
        load.append(os.getloadavg()[0])
    pack = [packing_cost(args.steps) for _ in range(args.repeats)]
    mem = {
        n: (run_memory(SYSTEMS[n], args.mem_steps), run_memory(SYSTEMS[n], 4 * args.mem_steps)) for n in names
    }
    base = runs[names[0]]
    lines = [
        f"`{' '.join(['python', 'benchmarks/bench_pipeline.py', *sys.argv[1:]])}`, "
        f"{time.strftime('%Y-%m-%d')}, load average {min(load):.1f}–{max(load):.1f} "
        f"on {os.cpu_count()} cores.",
        "",
        f"{args.steps} batches of {ROWS}×{SEQ} tokens, DataLoader 2 workers; 4 domains (Zipf counts "
        f"{DOCS}, mean lengths {[int(m) for m in MEAN_LEN]}); Cooldown(hot=5, cold=1, at=0.5) in tokens. "
        f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}. "
        "Peers get length-corrected document probabilities p_doc,i ∝ p_i / mean_len_i (their best case); "
        f"packed rows never pad. {args.repeats} rounds, each running every system once (order rotated); "
        "median [min–max] over rounds; ratios are paired within a round.",
        "",
        "| system | packed tok/s | × coolmix | × torchdata | token-share error (pp) "
        "| worst cumulative error (tokens) "
        f"| traced peak MB ({args.mem_steps} → {4 * args.mem_steps} batches) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        rs = runs[name]
        tok = [r["tok_s"] / 1e6 for r in rs]
        vs_base = [r["tok_s"] / b["tok_s"] for r, b in zip(rs, base, strict=True)]
        vs_td = [r["tok_s"] / t["tok_s"] for r, t in zip(rs, runs[TORCHDATA], strict=True)]
        lines.append(
            f"| {name} | {_range(tok, '.2f')} M | {_range(vs_base, '.2f')} | {_range(vs_td, '.2f')} "
            f"| {max(r['share_pp'] for r in rs):.3f} | {max(r['worst'] for r in rs):.0f} "
            f"| {mem[name][0]:.1f} → {mem[name][1]:.1f} |"
        )
    ours, greedy = [1e3 * c["coolmix"] for c in pack], [1e3 * c["greedy"] for c in pack]
    lines += [
        "",
        "Packing alone, in process, on pre-built documents (ms per batch; no DataLoader, no source cost): "
        f"coolmix deficit packer {_range(ours, '.3f')}, peers' greedy concatenation + collation "
        f"{_range(greedy, '.3f')}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
