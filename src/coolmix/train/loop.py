"""The training loop: one engine for LM and MT, one process or DDP under torchrun.

It reads top to bottom like nanoGPT's ``train.py``: batch → forward → per-example loss →
`weighted_loss` → backward → step → log → eval → atomic checkpoint. Setup of the process group,
evaluation and checkpointing are called functions; balancing is nothing but the sampler's
schedule and the loss weights, so temperature sampling, scalarization and Cooldown differ only
in ``[balance]``.

    from coolmix.train import train, load_config
    result = train(load_config("configs/train/lm_bible_cooldown.toml"), "runs/lm")
    result["dev"]["loss"]        # per-domain dev loss at the end: {"en": ..., "sw": ...}
"""

from __future__ import annotations

import ctypes
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from coolmix.distributions import Distribution
from coolmix.errors import ConfigError
from coolmix.fileio import make_dir, write_atomic_text
from coolmix.permutation import derive_key
from coolmix.sampler import MixtureSampler
from coolmix.train import checkpoint, distributed, preflight, rundir, tasks
from coolmix.train.config import OptimConfig, TrainConfig, config_hash
from coolmix.train.distributed import Env
from coolmix.train.extensions import Extras
from coolmix.train.item_scores import ITEMS_KEY, test_items
from coolmix.train.metrics import (
    METRICS_FILE,
    ConsoleSink,
    DomainStats,
    GradLog,
    JsonlSink,
    MetricSink,
    TensorBoardSink,
    jsonable,
)
from coolmix.train.provenance import provenance
from coolmix.weighting import step_weights, weighted_loss

__all__ = [
    "CONFIG_FILE",
    "LossWeights",
    "lr_factor",
    "make_optimizer",
    "train",
    "tune_malloc",
]

CONFIG_FILE = "config.toml"

log = logging.getLogger(__name__)


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    *,
    cache: tasks.DataCache | None = None,
    console: bool = False,
    sinks: tuple[MetricSink, ...] = (),
) -> dict[str, Any]:
    """Train one run into ``out_dir``; return its final metrics record (see `coolmix.train.metrics`).

    ``resume=True`` continues from the newest good checkpoint in ``out_dir`` (or starts afresh if
    there is none); a finished run returns its final record at once. Pass one `DataCache` to many
    in-process runs so corpora, tokenizers and encoded splits are built once. ``console`` shows a
    progress bar; ``sinks`` receive every record too (rank 0 only, like all output). Torch's
    thread count and RNG state are restored on return; under torchrun (``WORLD_SIZE`` > 1) the
    process group is joined and left here.

    Rank 0 holds a lock on ``out_dir`` for the whole run: a second run into it is refused with
    a `ConfigError`. Warnings (a skipped corrupt checkpoint, a repaired metrics file, a resume
    that is no longer bit-exact) go to the ``coolmix`` logger. An `OSError` on ``out_dir`` (full
    disk, read-only, a name too long) becomes a one-line `ConfigError`; checkpoints and metrics
    on disk stay as they were (every write is atomic or a whole line).
    """
    out = Path(out_dir)
    tasks.check_config(cfg)  # fail on a bad [model] before the directory is touched or data built
    env = distributed.setup(cfg.run.device)
    if cfg.run.tune_malloc and env.device.type == "cpu":
        tune_malloc()
    threads = torch.get_num_threads()
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    cuda = [env.device.index or 0] if env.device.type == "cuda" else []
    lock = rundir.RunLock(out) if env.is_main else None
    try:
        if lock is not None:
            lock.acquire()
            rundir.clean_temps(out)
        with torch.random.fork_rng(devices=cuda):
            return _train(cfg, out, resume, cache, console, sinks, env)
    except OSError as e:
        raise _os_error(e, out) from None
    finally:
        if lock is not None:
            lock.release()
        torch.set_num_threads(threads)
        distributed.teardown(env)


def _os_error(e: OSError, out: Path) -> ConfigError:
    """An OSError as one line naming the path: ``out`` when it is in the run directory."""
    name = e.filename if e.filename is not None else out
    try:
        inside = Path(name).resolve().is_relative_to(out.resolve())
    except (OSError, ValueError):
        inside = True
    why = e.strerror or type(e).__name__
    if inside:
        return ConfigError("out", str(name), f"cannot write: {why}")
    return ConfigError("path", str(name), why)


def _train(
    cfg: TrainConfig,
    out: Path,
    resume: bool,
    cache: tasks.DataCache | None,
    console: bool,
    extra_sinks: tuple[MetricSink, ...],
    env: Env,
) -> dict[str, Any]:
    from coolmix.models import build_model, per_example_loss

    run, optim = cfg.run, cfg.optim
    owned: list[tuple[int, Path]] = []  # the checkpoints this run may prune
    state = _load_state(out, cfg, resume, env, owned)
    if state is not None and state["step"] >= run.total_steps:
        return preflight.finished_record(out, state, env)
    data = tasks.prepare(cfg, cache, ("train", "dev", "test") if run.test else ("train", "dev"))
    train_split, pad = data.splits["train"], data.tok.pad_id
    vocab = preflight.check_vocab(cfg, data.tok)

    # Same seed on every rank, so the replicas start equal (DDP would broadcast rank 0's anyway).
    torch.manual_seed(run.seed)
    model = build_model(data.task.kind, cfg.model, vocab).to(env.device)
    ddp_model = distributed.wrap(model, env)
    optimizer = make_optimizer(model, optim)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(optim, run.total_steps, s))
    sampler = MixtureSampler(
        train_split.sizes(),
        cfg.balance.schedule(),
        run.total_steps,
        run.batch_size,
        run.seed,
        cfg.balance.composition,
    )
    target = cfg.balance.target_dist()
    preflight.check_target_reachable(
        sampler.schedule, target, train_split.sizes(), run.total_steps, run.batch_size
    )
    weights = LossWeights(sampler, target, cfg.balance.reduction, env.device)
    stats = DomainStats(data.names, env.device)
    grads = GradLog(optim.clip)
    params = list(model.parameters())
    extras = Extras(cfg, sampler, data, lambda lg, t: per_example_loss(lg, t, pad_id=pad), env)

    def amp() -> torch.autocast:
        return torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=run.bf16)

    if state is not None:
        checkpoint.restore(state, model, optimizer, scheduler, sampler, stats, env)
        extras.load_state_dict(state.get("extras"))
        grads.load_state_dict(state.get("grads"))
        preflight.warn_if_not_exact(state, env)
    start = state["step"] if state is not None else 0
    jsonl, sinks = _open_sinks(out, cfg, state, console, extra_sinks, start, env)
    clock = _Clock(state["elapsed"] if state is not None else 0.0, stats)
    ctx = _Run(
        cfg=cfg,
        out=out,
        env=env,
        data=data,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=sampler,
        weights=weights,
        stats=stats,
        grads=grads,
        extras=extras,
        clock=clock,
        jsonl=jsonl,
        owned=owned,
        amp=amp,
    )
    record: dict[str, Any] = {}
    try:
        for step in range(start, run.total_steps):
            t0 = time.perf_counter()
            # Dropout masks are a pure function of (seed, step, rank): exact after resume, no RNG replay.
            _seed_dropout(derive_key(run.seed, "dropout", step, env.rank) >> 1, env.device)
            domains, items = sampler.batch(step, env.rank, env.world_size)
            batch = data.task.batch(train_split, domains, items, env.device)
            w, norm = weights.at(step)
            with amp():
                logits = ddp_model(*batch.inputs)
                loss_b, n_tok = per_example_loss(
                    logits, batch.targets, pad_id=pad, label_smoothing=optim.label_smoothing
                )
            # DoReMi's proxy weights (per-token excess needs the logits)
            w, norm = extras.loss_weights(step, batch, logits) or (w, norm)
            # Free the B·T·V logits now (autograd keeps what backward needs): held until the next
            # forward, they made glibc map fresh pages for its largest buffers, ~10% of a CPU step.
            del logits
            # Σ_b w_b ℓ_b over this rank's slice, over the global batch's normaliser per rank: DDP
            # averages gradients over ranks, so the update is the single-process one for the batch.
            loss = weighted_loss(loss_b, batch.domains, w, reduction="sum") / (norm / env.world_size)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # the pre-clip global norm, logged (no sync here) so clipping is measured, not guessed
            if optim.clip > 0:
                grads.add(torch.nn.utils.clip_grad_norm_(model.parameters(), optim.clip))
            else:
                grads.add(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
            optimizer.step()
            scheduler.step()
            stats.update(batch.domains, loss_b, n_tok)
            extras.after_step(step)
            clock.train_s += time.perf_counter() - t0
            done = step + 1

            if sinks and done % run.log_every == 0:
                status = {"tau": sampler.tau_at(step), "loss": stats.running_losses()}
                for s in sinks:
                    s.progress(done, status)
            last = done == run.total_steps
            if done % run.eval_every == 0 or last:
                record = _evaluate(ctx, step, last)
                record.update(grads.pop())
                extras.after_eval(done, record, model)  # ledger, overfit flags, adaptive switch, ...
                for s in sinks:
                    s.write(record)
            if done % run.checkpoint_interval == 0 or last:
                _save_checkpoint(ctx, done)
    finally:
        for s in sinks:
            s.close()
    return record


# -- pieces the loop calls --------------------------------------------------------------------


def lr_factor(optim: OptimConfig, total_steps: int, step: int) -> float:
    """Multiplier of ``optim.lr`` at ``step`` (0-based): linear warmup, then the configured decay.

    >>> o = OptimConfig(warmup=4, schedule="inverse_sqrt")
    >>> [round(lr_factor(o, 100, s), 3) for s in (0, 3, 15)]
    [0.25, 1.0, 0.5]
    """
    if step < optim.warmup:
        return (step + 1) / optim.warmup
    if optim.schedule == "inverse_sqrt":
        return math.sqrt(max(optim.warmup, 1) / (step + 1))
    if optim.schedule == "cosine":
        progress = (step - optim.warmup) / max(1, total_steps - optim.warmup)
        return optim.final_lr + (1 - optim.final_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return 1.0


def make_optimizer(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only (biases and norms are not decayed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)


class LossWeights:
    """Per-domain loss weights in force at a step, and the normaliser of the *global* batch.

    Both come from the core helper `coolmix.step_weights` (the one the HF Trainer uses too):
    w_i = p_target,i / p_sample,i(t) (Li et al. 2025, Thm. 1; all 1 without a target), with
    p_sample(t) the sampler's own probabilities, so every schedule is handled alike. A domain
    the sampler skips at a step (p = 0) is not in the batch and gets weight 0. The normaliser is
    B (``mean``), Σ_b w_b over the global batch (``self_normalized``) or 1 (``sum``); every rank
    computes it from the sampler's global batch, with no communication. The weights (device
    tensor and logged mapping) are recomputed only when p(t) changes (a Cooldown switch, an
    anneal step); so is the normaliser, except ``self_normalized``'s, which is per batch.
    """

    def __init__(
        self, sampler: MixtureSampler, target: Distribution | None, reduction: str, device: torch.device
    ) -> None:
        self.sampler, self.reduction, self.device = sampler, reduction, device
        self.target = None if target is None else target.array(sampler.names, sampler.sizes)
        self._key: bytes | None = None  # p(t) the cached weights were computed for
        self.mapping: dict[str, float] = {}
        self._w_t = torch.ones(len(sampler.names), device=device)
        self._norm = 1.0

    def at(self, step: int) -> tuple[torch.Tensor, float]:
        p = self.sampler.probs_array(step)
        key = p.tobytes()
        # B (mean) and 1 (sum) do not depend on which domains were drawn, so they are cached with
        # the weights; Σ_b w_b (self_normalized) changes with every batch. The global batch is
        # the sampler's cached one: the loop has just sliced it.
        if key != self._key or self.reduction == "self_normalized":
            domains = None if self.reduction == "sum" else self.sampler.global_batch(step)[0]
            sw = step_weights(p, self.target, domains, reduction=self.reduction)
            self._norm = sw.normaliser
            if key != self._key:  # a new p(t): one host -> device copy, not one per step
                self._key = key
                self.mapping = dict(zip(self.sampler.names, sw.weights.tolist(), strict=True))
                self._w_t = torch.tensor(sw.weights, dtype=torch.float32, device=self.device)
        return self._w_t, self._norm


def tune_malloc(keep_bytes: int = 1 << 30) -> bool:
    """glibc only: serve allocations up to ``keep_bytes`` from the heap and keep freed memory there.

    By default glibc maps each buffer above a (moving) threshold afresh and returns freed heap
    tops to the OS, so the B·T·V logits and their gradients page-fault in every step; measured
    10–45% of a CPU step here. Returns False where there is no glibc ``mallopt``.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, keep_bytes)) and bool(mallopt(m_trim_threshold, keep_bytes))


def _seed_dropout(seed: int, device: torch.device) -> None:
    """Seed the generator dropout draws from (torch.manual_seed would cost ~60 µs a step)."""
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


class _Clock:
    """Wall time (cumulative over resumes) and training throughput since the last record."""

    def __init__(self, elapsed: float, stats: DomainStats) -> None:
        self.start, self.before = time.perf_counter(), elapsed
        self.train_s, self.tokens_mark = 0.0, float(stats.tokens.sum())

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.start

    def tokens_per_s(self, tokens_now: float) -> float | None:
        rate = (tokens_now - self.tokens_mark) / self.train_s if self.train_s > 0 else None
        self.tokens_mark, self.train_s = tokens_now, 0.0
        return rate


@dataclass(frozen=True)
class _Run:
    """One run's pieces, built once by `_train` and handed to the helpers the loop calls
    (`_evaluate`, `_save_checkpoint`) instead of a dozen positional arguments."""

    cfg: TrainConfig
    out: Path
    env: Env
    data: tasks.TaskData
    model: torch.nn.Module  # the bare model (not the DDP wrapper): evaluated and checkpointed
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: MixtureSampler
    weights: LossWeights
    stats: DomainStats
    grads: GradLog
    extras: Extras
    clock: _Clock
    jsonl: JsonlSink | None  # rank 0's metrics file; None on other ranks
    owned: list[tuple[int, Path]]  # the checkpoints this run may prune (rank 0 fills it)
    amp: Callable[[], torch.autocast]  # the autocast context of the forward passes


def _load_state(
    out: Path, cfg: TrainConfig, resume: bool, env: Env, owned: list[tuple[int, Path]]
) -> dict[str, Any] | None:
    """The checkpoint to continue from; refuses to overwrite a run that was not asked to resume.

    Fills ``owned`` with the checkpoints that verify under this config (the ones pruning counts).
    """
    if not resume:
        if checkpoint.list_checkpoints(out):
            raise ConfigError("out", str(out), "has checkpoints already: pass --resume or use another --out")
        return None
    warn = log.warning if env.is_main else (lambda msg: None)
    ours = owned if env.is_main else None  # only rank 0 prunes
    return checkpoint.load_latest(out, config_hash(cfg), map_location=env.device, warn=warn, owned=ours)


def _open_sinks(
    out: Path,
    cfg: TrainConfig,
    state: Mapping[str, Any] | None,
    console: bool,
    extra: tuple[MetricSink, ...],
    start: int,
    env: Env,
) -> tuple[JsonlSink | None, list[MetricSink]]:
    """Rank 0 writes ``config.toml`` and ``metrics.jsonl`` (put back to the checkpoint on resume)."""
    if not env.is_main:
        return None, []
    out.mkdir(parents=True, exist_ok=True)
    header = f"# resolved config; config_hash = {config_hash(cfg)}\n"
    write_atomic_text(out / CONFIG_FILE, header + cfg.to_toml())
    if state is None:
        jsonl = JsonlSink(out / METRICS_FILE)
    else:
        jsonl = JsonlSink.resume(out / METRICS_FILE, state.get("metrics"), start, log.warning)
    sinks: list[MetricSink] = [jsonl, *extra]
    if cfg.run.tensorboard:
        try:
            sinks.append(TensorBoardSink(make_dir(out / "tb", "out"), purge_step=start))
        except ImportError:
            raise ConfigError("run.tensorboard", True, "needs the tensorboard package") from None
    if console:
        sinks.append(ConsoleSink(cfg.run.total_steps, start))
    return jsonl, sinks


def _evaluate(ctx: _Run, step: int, last: bool) -> dict[str, Any]:
    """One metrics record after ``step``: exposure, running train loss, dev (and test at the end)."""
    from coolmix.models import per_example_loss

    cfg, data, model, sampler, stats, clock, env = (
        ctx.cfg, ctx.data, ctx.model, ctx.sampler, ctx.stats, ctx.clock, ctx.env
    )
    stats.reduce(env)
    tokens = stats.token_counts()
    sizes = sampler.sizes
    record: dict[str, Any] = {
        "step": step + 1,
        "time": round(clock.elapsed(), 3),
        "lr": cfg.optim.lr * lr_factor(cfg.optim, cfg.run.total_steps, step),
        "tau": sampler.tau_at(step),
        "probs": sampler.probs_at(step),
        "weights": dict(ctx.weights.mapping),
        "sizes": {n: int(s) for n, s in zip(sampler.names, sizes.tolist(), strict=True)},
        "examples": sampler.cursors,
        "tokens": tokens,
        "epochs": {
            n: c / float(s) for (n, c), s in zip(sampler.cursors.items(), sizes.tolist(), strict=True)
        },
        "tokens_per_s": clock.tokens_per_s(float(sum(tokens.values()))),
        "train": {"loss": stats.pop_losses()},
    }
    loss_fn = lambda logits, targets: per_example_loss(logits, targets, pad_id=data.tok.pad_id)  # noqa: E731
    for split in ("dev", "test") if last and cfg.run.test else ("dev",):
        arrays = data.splits[split]
        bs, limit = cfg.run.batch_size, cfg.run.eval_batches * cfg.run.batch_size
        table: dict[str, Any] = {
            "loss": tasks.split_losses(model, data.task, arrays, loss_fn, bs, limit, env, ctx.amp())
        }
        if isinstance(data.task, tasks.MTTask) and cfg.run.max_decode > 0:
            table.update(_mt_scores(model, data.task, arrays, cfg, env, ctx.amp))
        record[split] = table
    if last and cfg.run.test:  # every test item, for the reports' bootstrap over the test set
        mt = isinstance(data.task, tasks.MTTask) and cfg.run.max_decode > 0
        record[ITEMS_KEY] = test_items(model, data, loss_fn, cfg.run.batch_size, env, ctx.amp, mt)
    if last:
        record["final"] = True
        record["provenance"] = provenance(torch.get_num_threads())
    return jsonable(record)


def _mt_scores(
    model: torch.nn.Module,
    task: tasks.MTTask,
    arrays: tasks.SplitArrays,
    cfg: TrainConfig,
    env: Env,
    amp: Any,
) -> dict[str, dict[str, float]]:
    """Per-language chrF, chrF++ and BLEU of greedy/beam translations of the first ``max_decode``."""
    from coolmix.train.evaluate import mt_scores

    out: dict[str, dict[str, float]] = {"chrf": {}, "chrf++": {}, "bleu": {}}
    for k, lang in enumerate(arrays.names):
        run = cfg.run
        hyps, refs = tasks.translate(model, task, arrays, k, run.max_decode, run.batch_size, env, amp())
        scores = mt_scores(hyps, refs, lang) if refs else {}  # an empty split has no score
        for metric in out:
            out[metric][lang] = float(scores.get(metric, math.nan))
    return out


def _save_checkpoint(ctx: _Run, done: int) -> None:
    """Everything needed to continue exactly; rank 0 writes (after the metrics are on disk)."""
    ctx.stats.reduce(ctx.env)  # collective: every rank, so rank 0 holds the totals it saves
    grads_state = ctx.grads.state_dict()  # every rank: it moves the pending norms off the device
    if ctx.jsonl is None:
        return
    ctx.jsonl.sync()
    payload = checkpoint.snapshot(
        done,
        config_hash(ctx.cfg),
        ctx.model,
        ctx.optimizer,
        ctx.scheduler,
        ctx.sampler,
        ctx.stats,
        ctx.env.world_size,
    )
    payload["elapsed"] = ctx.clock.elapsed()
    payload["extras"] = ctx.extras.state_dict()
    payload["metrics"] = ctx.jsonl.state()  # with its text: the checkpoint can rebuild the file
    payload["grads"] = grads_state
    payload["threads"], payload["device"] = torch.get_num_threads(), ctx.env.device.type
    checkpoint.save(ctx.out, done, payload, ctx.cfg.run.keep, ctx.owned)
