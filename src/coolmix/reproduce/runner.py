"""Run a preset's experiments: expand to runs, skip finished ones by config hash, run the rest.

Each run trains through `coolmix.train.train` into ``<out>/runs/<experiment>/<method>-s<seed>-<hash>``
and leaves ``result.json`` (its final metrics record) when it finishes; a rerun skips finished
runs and resumes unfinished ones from their last checkpoint (``force=True`` retrains).
Runs go to a pool of worker processes (one torch thread each: on 2 cores, two 1-thread runs
beat one 2-thread run), at most as many at once as there are workers, a run that others wait on
first; corpora and tokenizers are built once, before the pool starts.
A method's runs form a DAG declared in `methods.METHODS` (``needs``): `expand` adds every run a
method needs (DoReMi's reference and proxy; UniMax-on-dev's cap grid at every seed), a run starts
once its needs have finished, and its ``resolve`` fills in what it reads from them. A ``select``
run trains nothing: it is the member of its needs with the best dev score, copied into its own
folder with the choice under ``selected`` in its record (recomputed on every call).

A cached run is trusted only when its ``result.json`` is a JSON object with a step and its
``metrics.jsonl`` ends in that record; anything else (truncated, ``null``, zeroed) is rebuilt by
resuming the run, which returns the final record from its checkpoint and repairs the metrics.
Workers exit when the parent dies (SIGKILL included), so no run keeps training, or holds its
lock, for nobody; a `ConfigError` raised in a worker arrives here as the same one line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coolmix.errors import ConfigError
from coolmix.fileio import make_dir, regular_or_missing, write_atomic_text
from coolmix.reproduce.methods import METHODS, Method, Setting, high_resource
from coolmix.reproduce.specs import Experiment, Preset

__all__ = ["RunSpec", "by_priority", "chain_depth", "expand", "run_preset"]

RESULT_FILE = "result.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment; ``needs`` names runs whose results shape its config, ``key`` its
    `METHODS` entry (default: ``method``)."""

    experiment: str
    method: str
    seed: int
    config: Mapping[str, Any]
    role: str = "main"  # "main" | "proxy" (DoReMi's proxy)
    needs: tuple[str, ...] = ()
    key: str = ""

    @property
    def id(self) -> str:
        return f"{self.experiment}/{self.method}{'-proxy' if self.role == 'proxy' else ''}/s{self.seed}"

    @property
    def entry(self) -> Method:
        """Its `METHODS` entry."""
        return METHODS[self.key or self.method]


def _sizes(exp: Experiment) -> dict[str, int]:
    sizes = exp.base["data"].get("train_sizes")
    if sizes and set(sizes) >= set(exp.base["data"].get("langs") or ()):
        return dict(sizes)
    # natural sizes (gettext), or caps on some languages only: read from the built corpus
    from coolmix.data import CorpusSpec, load_corpus

    cache = exp.base.get("run", {}).get("cache_dir") or None
    return load_corpus(CorpusSpec.from_dict(exp.base["data"]), cache_dir=cache).sizes("train")


def expand(exp: Experiment, sizes: Mapping[str, int]) -> list[RunSpec]:
    """The runs of one experiment: one per (method, seed), plus every run those need (each once,
    needs before the runs that read them), from the `METHODS` DAG."""
    run = exp.base["run"]
    steps, batch = int(run["total_steps"]), int(run["batch_size"])
    high = high_resource(sizes)
    specs: dict[str, RunSpec] = {}

    def add(key: str, seed: int, path: tuple[str, ...] = ()) -> str:
        if key not in METHODS:
            raise ConfigError("method", key, f"unknown method of experiment '{exp.key}'")
        if key in path:
            raise ConfigError("method", key, f"needs itself: {' -> '.join((*path, key))}")
        m = METHODS[key]
        across = m.select is not None and m.select.across_seeds
        at = exp.seeds_for(key) if across else (seed,)  # a selection across seeds needs every seed
        needs = {d: tuple(add(d, s, (*path, key)) for s in at) for d in m.needs}
        setting = Setting(sizes, steps, batch, high, exp.proxy(), needs)
        config = _with(exp.base, seed, **m.sections(setting)) if m.kind == "train" else {}
        flat = tuple(i for ids in needs.values() for i in ids)
        spec = RunSpec(exp.key, m.run_name, seed, config, m.role, flat, key)
        specs.setdefault(spec.id, spec)
        return spec.id

    for method in exp.methods:
        for seed in exp.seeds_for(method):
            add(method, seed)
    return list(specs.values())


def _with(base: Mapping[str, Any], seed: int, **sections: Any) -> dict[str, Any]:
    """A copy of ``base`` with the seed set and each given section merged key by key (``model``
    is replaced whole: a proxy's architecture is not a patch of the main one)."""
    cfg = json.loads(json.dumps(base))
    cfg["run"]["seed"] = seed
    for name, table in json.loads(json.dumps(sections)).items():
        if name == "model" or not isinstance(cfg.get(name), dict):
            cfg[name] = table
        else:
            cfg[name].update(table)
    return cfg


@dataclass
class RunResult:
    spec: RunSpec
    dir: Path
    record: dict[str, Any]
    seconds: float
    cached: bool

    @property
    def seed(self) -> int:
        return self.spec.seed


@dataclass
class Progress:
    """Callbacks for the CLI's progress display (no-ops by default)."""

    start: Callable[[int], None] = lambda total: None
    done: Callable[[RunResult], None] = lambda result: None
    note: Callable[[str], None] = lambda text: None


def run_dir(out: Path, spec: RunSpec, cfg_hash: str) -> Path:
    tag = f"{spec.method}{'-proxy' if spec.role == 'proxy' else ''}-s{spec.seed}-{cfg_hash[:8]}"
    return out / "runs" / spec.experiment / tag


def run_preset(
    preset: Preset,
    out: Path,
    force: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> dict[str, RunResult]:
    """Run (or load) every run of the preset; returns results keyed by run id."""
    from coolmix.train import TrainConfig, config_hash
    from coolmix.train.tasks import check_config

    progress = progress or Progress()
    for exp in preset.experiments:  # a bad --set is one line before any work or output
        check_config(TrainConfig.from_dict(exp.base))
    make_dir(out, "out")
    specs: list[RunSpec] = []
    for exp in preset.experiments:
        progress.note(f"preparing data for {exp.key}")
        specs.extend(expand(exp, _sizes(exp)))
    specs = _unique(specs)
    # seed-major order (stable, so DoReMi's chain keeps its order): a part stopped early holds
    # whole seeds of every experiment, not every seed of a few methods; a rerun resumes the rest
    specs.sort(key=lambda s: s.seed)
    depth = chain_depth(specs)
    _warm_caches(specs, progress)
    progress.start(len(specs))
    results: dict[str, RunResult] = {}
    pending = list(specs)
    running: dict[Future, tuple[RunSpec, Path, dict[str, Any]]] = {}
    prepared: dict[str, tuple[dict[str, Any], Path, dict[str, Any] | None]] = {}
    n_workers = preset.workers if workers is None else workers
    capacity = max(n_workers, 1)
    failed: BaseException | None = None
    with make_pool(n_workers) as pool:
        while (pending and failed is None) or running:
            # submit no more than the pool runs at once, so a run whose dependents wait (DoReMi's
            # reference and proxy) goes ahead of queued independent runs instead of behind them
            ready = [s for s in pending if all(n in results for n in s.needs)] if failed is None else []
            for spec in by_priority(ready, depth):
                if spec.entry.kind == "select":  # no training: pick among the finished needs now
                    pending.remove(spec)
                    results[spec.id] = _select(out, spec, results)
                    progress.done(results[spec.id])
                    continue
                if spec.id not in prepared:  # a ready run's config is final: resolve, hash, check it once
                    cfg_dict = _resolve(spec, results)
                    d = run_dir(out, spec, config_hash(TrainConfig.from_dict(cfg_dict)))
                    make_dir(d, "out", root=out)  # no link on the way down from --out
                    prepared[spec.id] = (cfg_dict, d, None if force else cached_record(d, progress))
                cfg_dict, d, record = prepared[spec.id]
                if record is not None:
                    pending.remove(spec)
                    results[spec.id] = RunResult(spec, d, record, 0.0, True)
                    progress.done(results[spec.id])
                    continue
                if len(running) >= capacity:
                    continue  # cached runs further down the list are still picked up
                pending.remove(spec)
                if force:
                    shutil.rmtree(d)  # the trainer refuses to overwrite a run it was not asked to resume
                    make_dir(d, "out", root=out)
                running[pool.submit(_train_one, cfg_dict, str(d))] = (spec, d, cfg_dict)
            if not running:
                if failed is None and any(all(n in results for n in s.needs) for s in pending):
                    continue  # cached runs just satisfied these; submit them
                if pending and failed is None:  # dependencies that can never be met
                    raise RuntimeError(f"unsatisfiable run dependencies: {[s.id for s in pending]}")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                spec, d, cfg_dict = running.pop(fut)
                try:
                    record = fut.result()
                except ConfigError as e:  # one line, naming the run; the runs still going finish first
                    why = f"{e.why} (while training run {spec.id} in {d}; --force retrains from scratch)"
                    failed = failed or ConfigError(e.field, e.value, why)
                    continue
                except BaseException as e:
                    failed = failed or e
                    continue
                annotate = spec.entry.annotate
                if annotate is not None:
                    record.update(annotate(cfg_dict))
                write_result(d, record)
                results[spec.id] = RunResult(spec, d, record, float(record.get("time", 0.0)), False)
                progress.done(results[spec.id])
    if failed is not None:
        raise failed
    return results


def write_result(run: Path, record: Mapping[str, Any]) -> Path:
    """Write a finished run's ``result.json`` (atomically; the one writer of the file, so fields every
    result should carry are added here)."""
    path = run / RESULT_FILE
    write_atomic_text(path, json.dumps(record, indent=1, default=str), RESULT_FILE)
    return path


def cached_record(run: Path, progress: Progress | None = None) -> dict[str, Any] | None:
    """A finished run's final record, if its ``result.json`` and ``metrics.jsonl`` are sound; else None.

    Sound: ``result.json`` is a JSON object with an integer ``step``, and the last record of
    ``metrics.jsonl`` is a JSON object with that step (a zeroed, truncated or missing file is
    not). A damaged cache is said once (``progress.note`` and the ``coolmix`` logger) and the
    run is rebuilt. A link, FIFO or device in place of either file is a `ConfigError`.
    """
    from coolmix.diagnostics.ledger import read_metrics

    result, metrics = run / RESULT_FILE, run / "metrics.jsonl"
    if not regular_or_missing(result, RESULT_FILE):
        return None
    why = None
    try:
        record = json.loads(_read(result))
    except (ValueError, RecursionError):
        record, why = None, "result.json is not valid JSON (truncated?)"
    if why is None and not (isinstance(record, dict) and _is_step(record.get("step"))):
        why = f"result.json holds {_brief(record)}, not a run's final record"
    if why is None:
        assert isinstance(record, dict)
        if not regular_or_missing(metrics, "metrics.jsonl"):
            why = "metrics.jsonl is missing"
        else:
            read = read_metrics(metrics)
            last = read.records[-1] if read.records else None
            if read.skipped or last is None or last.get("step") != record["step"]:
                why = "metrics.jsonl is damaged or does not end in the final record"
    if why is None:
        return record
    note = f"rebuilding {run.parent.name}/{run.name}: {why}"
    log.warning(note)
    if progress is not None:
        progress.note(note)
    return None


def _read(path: Path) -> str:
    from coolmix.fileio import read_bytes

    try:
        return read_bytes(path, RESULT_FILE).decode("utf-8")
    except UnicodeDecodeError:
        return "\x00"  # not JSON either way


def _is_step(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unique(specs: list[RunSpec]) -> list[RunSpec]:
    """Each run once: a seed listed twice (``--seeds 0,0``) would train one folder in two workers."""
    seen: dict[str, RunSpec] = {}
    for s in specs:
        seen.setdefault(s.id, s)
    return list(seen.values())


def chain_depth(specs: list[RunSpec]) -> dict[str, int]:
    """Run id → length of the longest chain of runs waiting on it (0: nothing needs it)."""
    needed_by: dict[str, list[str]] = {s.id: [] for s in specs}
    for s in specs:
        for n in s.needs:
            needed_by.setdefault(n, []).append(s.id)
    depth: dict[str, int] = {}

    def of(i: str) -> int:
        if i not in depth:
            depth[i] = max((1 + of(j) for j in needed_by.get(i, [])), default=0)
        return depth[i]

    return {s.id: of(s.id) for s in specs}


def by_priority(ready: list[RunSpec], depth: Mapping[str, int]) -> list[RunSpec]:
    """Ready runs, longest dependent chain first; ties keep their (seed-major) order."""
    return sorted(ready, key=lambda s: -depth.get(s.id, 0))


def _done(spec: RunSpec, results: Mapping[str, RunResult]) -> dict[str, list[RunResult]]:
    """The finished runs ``spec`` needs, by registry key (each list in seed order)."""
    out: dict[str, list[RunResult]] = {}
    for n in spec.needs:
        r = results[n]
        out.setdefault(r.spec.key or r.spec.method, []).append(r)
    return {k: sorted(v, key=lambda r: r.seed) for k, v in out.items()}


def _resolve(spec: RunSpec, results: Mapping[str, RunResult]) -> dict[str, Any]:
    """Fill in what depends on earlier runs (the method's ``resolve``: DoReMi's reference
    checkpoint and learned weights)."""
    cfg = json.loads(json.dumps(spec.config))
    resolve = spec.entry.resolve
    if resolve is not None:
        resolve(cfg, _done(spec, results))
    return cfg


def _select(out: Path, spec: RunSpec, results: Mapping[str, RunResult]) -> RunResult:
    """A ``select`` run: the chosen member's record and metrics, copied into the run's own folder
    (named by a hash of the members' folders and the rule) with the choice under ``selected``."""
    import hashlib

    from coolmix.fileio import read_bytes, write_atomic

    done = _done(spec, results)
    rule = spec.entry.select
    assert rule is not None
    chosen, info = rule.choose(done, spec.seed)
    src = next(r for r in done[chosen] if r.seed == spec.seed)
    members = [r.dir.relative_to(out).as_posix() for rs in done.values() for r in rs]
    blob = json.dumps({"select": members, "rule": repr(rule)}, sort_keys=True)
    d = run_dir(out, spec, hashlib.sha256(blob.encode()).hexdigest())
    make_dir(d, "out", root=out)
    metrics = read_bytes(src.dir / "metrics.jsonl", "metrics.jsonl")
    write_atomic(d / "metrics.jsonl", metrics, "metrics.jsonl")
    record = {**src.record, "selected": {**info, "run": src.dir.relative_to(out).as_posix()}}
    write_result(d, record)
    return RunResult(spec, d, record, 0.0, True)


def _warm_caches(specs: list[RunSpec], progress: Progress) -> None:
    """Build each distinct corpus and tokenizer once in this process, before workers need them."""
    from coolmix.data import CorpusSpec, load_corpus
    from coolmix.data.tokenizer import train_tokenizer
    from coolmix.train import TrainConfig

    seen = set()
    for spec in specs:
        if spec.entry.kind != "train":
            continue
        cfg = TrainConfig.from_dict(spec.config)
        key = json.dumps(
            [cfg.data, cfg.tokenizer.vocab_size, cfg.tokenizer.tau, cfg.tokenizer.seed], sort_keys=True
        )
        if key in seen:
            continue
        seen.add(key)
        progress.note(f"building corpus {cfg.data.get('name')} and its tokenizer")
        cache = cfg.run.cache_dir or None
        corpus = load_corpus(CorpusSpec.from_dict(cfg.data), cache_dir=cache)
        train_tokenizer(
            corpus,
            vocab_size=cfg.tokenizer.vocab_size,
            tau=cfg.tokenizer.tau,
            seed=cfg.tokenizer.seed,
            cache_dir=cache,
        )


def _mp_context():
    import multiprocessing

    return multiprocessing.get_context("spawn")


def make_pool(n_workers: int) -> Any:
    """A process pool of ``n_workers`` spawned workers (``0``: train in this process) whose workers
    exit when this process dies, however it dies (see `_die_with_parent`)."""
    if n_workers <= 0:
        return _InProcess()
    return ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=_mp_context(),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )


PDEATHSIG_POLL_S = 0.5
"""How often a worker checks that its parent is alive where the kernel cannot be asked to tell it."""


def _die_with_parent(parent: int) -> None:
    """Worker initializer: exit as soon as ``parent`` is gone, so a SIGKILLed ``reproduce`` leaves no
    worker training (and holding its run's lock) for nobody.

    On Linux the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``); everywhere,
    a daemon thread also polls ``os.getppid()`` (re-parenting changes it) and exits the process.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # died before the watch started
        os._exit(1)

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(PDEATHSIG_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="coolmix-parent-watch", daemon=True).start()


_CACHE: Any = None


class _InProcess:
    """A stand-in executor that trains in this process (``workers=0``: tests, debugging)."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as e:  # delivered through the future, as a worker's would be
            fut.set_exception(e)
        return fut


def _train_one(cfg_dict: Mapping[str, Any], out_dir: str) -> dict[str, Any]:
    """Worker: train one run (resuming a partial one) and return its final record."""
    global _CACHE
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from coolmix.train import DataCache, TrainConfig, train

    if _CACHE is None:
        _CACHE = DataCache()  # per worker process: corpora and tokenizers load once per worker
    cfg = TrainConfig.from_dict(cfg_dict)
    return train(cfg, out_dir, resume=True, cache=_CACHE)
