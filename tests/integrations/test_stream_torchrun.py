"""Elastic streams under real torchrun (gloo, CPU): save under one (ranks × DataLoader workers) layout,
resume under another, for HF streaming, shard-directory and generator sources (and packed rows).

Each layout runs twice: ``save`` iterates STOP batches per rank through a ``StatefulDataLoader`` and
writes the latest of all lanes' stream states (gathered from every rank); ``resume`` loads it into
a fresh mixer and iterates the rest. What the ranks saw before and after, stacked per step, must be
the uninterrupted single-process stream: each domain in its global order, nothing duplicated or
skipped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coolmix import Cooldown
from coolmix.integrations.streams import PackedStreams, StreamMixture

datasets = pytest.importorskip("datasets")
pytest.importorskip("torch")
pytest.importorskip("torchdata")

SIZES = {"en": 23, "sw": 9}
STEPS, BATCH, STOP = 12, 4, 5
KINDS = ("hf", "dir", "generator", "packed")


def _gen(domain, n):
    for i in range(n):
        yield {"text": f"{domain}-{i}", "input_ids": [1 + i % 7] * (1 + i % 4)}


def _hf_gen(domain, n, parts):
    for part in parts:
        yield from (x for i, x in enumerate(_gen(domain, n)) if i % 3 == part)


def sources(kind: str, root: Path):
    if kind == "hf":  # 3 shards: the global order is shard by shard
        return {
            d: datasets.IterableDataset.from_generator(
                _hf_gen, gen_kwargs={"domain": d, "n": n, "parts": [0, 1, 2]}
            )
            for d, n in SIZES.items()
        }
    if kind == "dir":  # written once by the test (`write_shards`), never by the ranks
        return {d: str(root / d) for d in SIZES}
    return {d: (lambda d=d, n=n: _gen(d, n)) for d, n in SIZES.items()}


def write_shards(root: Path) -> None:
    """Two JSONL shards per domain, items alternating between them."""
    for d, n in SIZES.items():
        (root / d).mkdir(parents=True)
        items = list(_gen(d, n))
        for f in range(2):
            lines = [json.dumps(x) for x in items[f::2]]
            (root / d / f"part-{f}.jsonl").write_text("\n".join(lines) + "\n")


def mixer(kind: str, root: Path):
    sched = Cooldown(hot=5.0, cold=1.0, at=0.5)
    if kind == "packed":
        return PackedStreams(sources("generator", root), SIZES, sched, STEPS, rows=BATCH, seq_len=6)
    return StreamMixture(sources(kind, root), SIZES, sched, STEPS, BATCH, seed=1)


def plain(batch):
    """A batch as JSON-able rows: [domain, text], or a packed row's [domain ids, token ids, doc ids]."""
    if isinstance(batch, dict):
        cols = [np.asarray(batch[k]).tolist() for k in ("domain_ids", "input_ids", "doc_ids")]
        return [list(r) for r in zip(*cols, strict=True)]
    return [[ex["domain_name"], ex["text"]] for ex in batch]


SCRIPT = """
import json, sys
from pathlib import Path
import torch.distributed as dist
from torchdata.stateful_dataloader import StatefulDataLoader
sys.path.insert(0, sys.argv[5])
import test_stream_torchrun as T
from coolmix.integrations.loader import stream_states
from coolmix.integrations.streams import latest_state

out, phase, workers, root = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
dist.init_process_group("gloo")
rank = dist.get_rank()
record = {}
for kind in T.KINDS:
    mix = T.mixer(kind, root)
    if phase == "resume":
        mix.load_state_dict(json.loads((out / f"state-{kind}.json").read_text()))
    loader = StatefulDataLoader(mix.as_torch(), batch_size=None, num_workers=workers if workers > 1 else 0)
    got = []
    for b in loader:
        got.append(T.plain(b))
        if phase == "save" and len(got) == T.STOP:
            break
    record[kind] = got
    if phase == "save":
        lanes = [None] * dist.get_world_size()
        dist.all_gather_object(lanes, stream_states(loader.state_dict()))
        if rank == 0:
            state = latest_state([lane for rank_lanes in lanes for lane in rank_lanes])
            (out / f"state-{kind}.json").write_text(json.dumps(state))
    dist.barrier()
(out / f"{phase}-rank{rank}.json").write_text(json.dumps(record))
dist.barrier()
dist.destroy_process_group()
"""


def run(tmp_path: Path, phase: str, ranks: int, workers: int) -> list[dict]:
    script = tmp_path / "elastic.py"
    script.write_text(SCRIPT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nnodes=1", f"--nproc_per_node={ranks}", "--master_addr=127.0.0.1"]
    cmd += [f"--master_port={port}", str(script), str(tmp_path), phase, str(workers)]
    cmd += [str(tmp_path / "data"), str(Path(__file__).parent)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return [json.loads((tmp_path / f"{phase}-rank{r}.json").read_text()) for r in range(ranks)]


def stacked(per_rank: list[list], step: int) -> list:
    """The global batch at ``step``: the ranks' rows in rank order."""
    return [row for rows in per_rank for row in rows[step]]


@pytest.mark.slow
@pytest.mark.parametrize(("saved", "resumed"), [((2, 2), (1, 2)), ((1, 1), (2, 2)), ((2, 2), (4, 1))])
def test_torchrun_state_saved_under_one_layout_resumes_under_another(tmp_path, saved, resumed):
    write_shards(tmp_path / "data")
    before = run(tmp_path, "save", *saved)
    after = run(tmp_path, "resume", *resumed)
    for kind in KINDS:
        whole = [plain(b) for b in mixer(kind, tmp_path / "data")]
        state = json.loads((tmp_path / f"state-{kind}.json").read_text())
        assert state["step"] == STOP, kind
        got = [stacked([r[kind] for r in before], s) for s in range(STOP)]
        got += [stacked([r[kind] for r in after], s) for s in range(STEPS - STOP)]
        assert got == whole, kind
        if kind != "packed":  # each domain read in its global order, none duplicated or skipped
            for d in SIZES:
                seq = [t for batch in got for name, t in batch if name == d]
                order = [x["text"] for x in _domain_order(kind, d, tmp_path)]
                assert len(seq) > SIZES[d] and seq == order[: len(seq)], (kind, d)


def _domain_order(kind: str, domain: str, tmp_path: Path) -> list[dict]:
    from coolmix.integrations.readers import reader_for

    reader = reader_for(sources(kind, tmp_path / "data")[domain], domain)
    return [next(reader) for _ in range(STEPS * BATCH)]
