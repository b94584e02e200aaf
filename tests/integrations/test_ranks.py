"""Data-parallel coordinates: explicit, process group, device mesh, default group; resolved at iteration.

In-process tests simulate processes (a fake mesh, a patched torch.distributed); the torchrun tests
(slow) run real gloo process groups: TP=2 × DP=2 over a DeviceMesh and a batch sampler built
before ``init_process_group``.
"""

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

import coolmix as cm  # noqa: E402
from coolmix.errors import ConfigError  # noqa: E402
from coolmix.integrations.collate import MixtureCollator  # noqa: E402
from coolmix.integrations.ranks import DataParallel, as_data_parallel, env_int  # noqa: E402
from coolmix.integrations.streams import PackedStreams, StreamMixture  # noqa: E402
from coolmix.integrations.torch import (  # noqa: E402
    MixtureBatchSampler,
    MixtureDataset,
    MixtureIterableDataset,
)

SIZES = {"a": 40, "b": 7, "c": 3}
DOMAINS = {n: [{"x": 1000 * (k + 1) + j} for j in range(SIZES[n])] for k, n in enumerate(SIZES)}
STEPS, BATCH = 9, 8


def make_sampler():
    return cm.MixtureSampler(SIZES, 5.0, total_steps=STEPS, batch_size=BATCH, seed=3)


def flat_stream(rank=0, world_size=1):
    """Flat indices per step of this dp slice, straight from the core sampler."""
    s, ds = make_sampler(), MixtureDataset(DOMAINS)
    return [ds.flat_index(*s.batch(t, rank, world_size)).tolist() for t in range(STEPS)]


class FakeMesh:
    """The DeviceMesh surface the adapters read: dim names, local rank and size per dim."""

    def __init__(self, coords, shape, names=("dp", "tp")):
        self.coords, self.shape = dict(zip(names, coords, strict=True)), dict(zip(names, shape, strict=True))
        self.mesh_dim_names = names

    def get_local_rank(self, dim):
        return self.coords[dim]

    def size(self, dim):  # DeviceMesh.size takes the dimension's position
        return self.shape[self.mesh_dim_names[dim]]


@pytest.fixture
def no_dist(monkeypatch):
    """No process group joined and no torchrun environment (whatever the shell running pytest has)."""
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def join(monkeypatch, rank, world):
    """Pretend this process joined a default group as ``rank`` of ``world``."""
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: rank)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: world)


def test_explicit_coordinates_are_validated_at_construction():
    assert DataParallel(1, 4).resolve() == (1, 4)
    cases = [
        (dict(rank=1), "world_size"),
        (dict(world_size=2), "rank"),
        (dict(rank=2, world_size=2), "rank"),
        (dict(rank=-1, world_size=2), "rank"),
        (dict(rank=0, world_size=0), "world_size"),
        (dict(rank=True, world_size=2), "rank"),
        (dict(rank=0, world_size=2.0), "world_size"),
        (dict(rank=0, world_size=2, group=object()), "group"),
        (dict(mesh=FakeMesh((0, 0), (2, 2)), group=object()), "mesh"),
        (dict(mesh=FakeMesh((0, 0), (2, 2)), mesh_dim="data"), "mesh_dim"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ConfigError) as e:
            DataParallel(**kwargs)
        assert e.value.field == field, kwargs
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="does not divide"):
        MixtureBatchSampler(make_sampler(), dp=DataParallel(0, 3))


def test_dp_is_one_argument_read_in_one_place(no_dist):
    """``dp=`` takes None, a DataParallel, a process group or a mesh; anything else names ``dp``."""
    explicit = DataParallel(1, 2)
    assert as_data_parallel(explicit) is explicit
    assert as_data_parallel(None) == DataParallel() and as_data_parallel(None).resolve() == (0, 1)
    mesh = FakeMesh((1, 0), (2, 2), names=("tp", "dp"))
    assert as_data_parallel(mesh) == DataParallel(mesh=mesh, mesh_dim="dp")
    assert as_data_parallel(mesh).resolve() == (0, 2)  # the "dp" dimension, wherever it is
    shard = FakeMesh((3,), (4,), names=("dp_shard",))  # a 1-D slice (mesh["dp_shard"]): its only dimension
    assert as_data_parallel(shard).resolve() == (3, 4)
    with pytest.raises(ConfigError) as e:  # two dimensions, neither called "dp": ambiguous
        as_data_parallel(FakeMesh((0, 0), (2, 2), names=("data", "tp")))
    assert e.value.field == "dp" and "mesh['<name>']" in str(e.value) and "\n" not in str(e.value)
    group = torch.distributed.ProcessGroup.__new__(torch.distributed.ProcessGroup)  # no backend needed
    assert as_data_parallel(group).group is group
    for junk in ((1, 2), 3, "dp", [0, 2], object()):
        with pytest.raises(ConfigError) as e:
            as_data_parallel(junk)
        assert e.value.field == "dp" and "DataParallel(rank, world_size)" in str(e.value)
    with pytest.raises(ConfigError) as e:  # every adapter reads it the same way
        MixtureBatchSampler(make_sampler(), dp=(0, 2))
    assert e.value.field == "dp"
    with pytest.raises(TypeError):  # the five separate arguments are gone
        MixtureBatchSampler(make_sampler(), rank=0, world_size=2)


def test_tensor_parallel_peers_share_rows_and_dp_ranks_partition_the_batch(no_dist):
    """TP=2 × DP=2 as four fake mesh coordinates: TP peers identical, DP slices disjoint and complete."""
    ds = MixtureDataset(DOMAINS)
    seen = {}
    for dp in range(2):
        for tp in range(2):
            mesh = FakeMesh((dp, tp), (2, 2))
            bs = MixtureBatchSampler(make_sampler(), dp=mesh, dataset=ds)
            assert (bs.rank, bs.world_size, bs.batch_size) == (dp, 2, BATCH // 2)
            seen[dp, tp] = list(bs)
    for dp in range(2):
        assert seen[dp, 0] == seen[dp, 1] == flat_stream(dp, 2)
    for t in range(STEPS):
        assert seen[0, 0][t] + seen[1, 0][t] == flat_stream()[t]
    # the mesh dim is a name: a mesh laid out (tp, dp) reads the same coordinate
    flipped = FakeMesh((0, 1), (2, 2), names=("tp", "dp"))
    assert list(MixtureBatchSampler(make_sampler(), dp=flipped)) == flat_stream(1, 2)
    # a process group of the dp peers gives the same slices
    group = object()
    no_dist.setattr(torch.distributed, "is_initialized", lambda: True)
    no_dist.setattr(torch.distributed, "get_rank", lambda g=None: 1 if g is group else 3)
    no_dist.setattr(torch.distributed, "get_world_size", lambda g=None: 2 if g is group else 4)
    assert list(MixtureBatchSampler(make_sampler(), dp=DataParallel(group=group))) == flat_stream(1, 2)
    assert list(MixtureBatchSampler(make_sampler())) == flat_stream(3, 4)  # default group: global rank


def test_built_before_init_process_group_resolves_at_iteration(no_dist):
    no_dist.setenv("WORLD_SIZE", "2")
    no_dist.setenv("RANK", "1")
    bs = MixtureBatchSampler(make_sampler())  # under torchrun, before init_process_group: fine
    ids = MixtureIterableDataset(DOMAINS, make_sampler())
    with pytest.raises(ConfigError) as e:  # iterating now would give world size 1 on every rank
        next(iter(bs))
    assert e.value.field == "WORLD_SIZE" and "init_process_group" in str(e.value)
    with pytest.raises(ConfigError, match="init_process_group"):
        next(iter(ids))
    join(no_dist, 1, 2)
    assert list(bs) == flat_stream(1, 2)
    loader = DataLoader(ids, batch_size=ids.batch_size, collate_fn=MixtureCollator())
    got = [b["index"].tolist() for b in loader]
    assert got == [make_sampler().batch(t, 1, 2)[1].tolist() for t in range(STEPS)]


def test_single_process_without_torchrun_is_rank_0_of_1(no_dist):
    assert MixtureBatchSampler(make_sampler()).world_size == 1
    no_dist.setenv("WORLD_SIZE", "1")
    assert list(MixtureBatchSampler(make_sampler())) == flat_stream()


@pytest.mark.parametrize(("var", "value"), [("WORLD_SIZE", "two"), ("WORLD_SIZE", "2.0"), ("RANK", "x")])
def test_non_integer_environment_is_a_one_line_error(no_dist, var, value):
    no_dist.setenv(var, value)
    bs = MixtureBatchSampler(make_sampler())
    with pytest.raises(ConfigError) as e:
        list(bs)
    assert e.value.field == var and e.value.value == value


def test_a_pickled_spec_carries_the_coordinate_resolved_in_the_parent(no_dist):
    """Spawned DataLoader workers have no process group: they get the parent's answer."""
    lazy = DataParallel()
    join(no_dist, 2, 4)
    copy = pickle.loads(pickle.dumps(lazy))
    assert copy.explicit and copy.resolve() == (2, 4)
    assert not lazy.explicit  # the original stays lazy
    mesh_copy = pickle.loads(pickle.dumps(DataParallel(mesh=FakeMesh((1, 0), (2, 2)))))
    assert mesh_copy.mesh is None and mesh_copy.resolve() == (1, 2)
    no_dist.setattr(torch.distributed, "is_initialized", lambda: False)
    no_dist.setenv("WORLD_SIZE", "2")
    still_lazy = pickle.loads(pickle.dumps(lazy))  # not resolvable yet: stays lazy, no error
    assert not still_lazy.explicit


@pytest.mark.slow  # spawning workers re-imports torch: ~10 s
def test_iterable_dataset_with_spawned_workers_uses_the_parents_rank(no_dist):
    join(no_dist, 1, 2)
    ids = MixtureIterableDataset(DOMAINS, make_sampler())
    loader = DataLoader(
        ids,
        batch_size=ids.batch_size,
        collate_fn=MixtureCollator(),
        num_workers=2,
        multiprocessing_context="spawn",
    )
    got = [b["index"].tolist() for b in loader]
    assert got == [make_sampler().batch(t, 1, 2)[1].tolist() for t in range(STEPS)]


@pytest.mark.parametrize(
    ("var", "value", "lo"),
    [
        ("RANK", "x", 0),
        ("RANK", "1_0", 0),
        ("WORLD_SIZE", "2.0", 1),
        ("WORLD_SIZE", "0", 1),
        ("LOCAL_RANK", "-1", 0),
    ],
)
def test_env_int_is_one_line_naming_the_variable_and_value(no_dist, var, value, lo):
    no_dist.setenv(var, value)
    with pytest.raises(ConfigError) as e:
        env_int(var, 0, lo=lo)
    assert (e.value.field, e.value.value) == (var, value)
    assert str(e.value) == f"{var}={value!r}: environment variable must be an integer >= {lo}"
    no_dist.setenv(var, " 3 ")
    assert env_int(var, 0, lo=lo) == 3
    no_dist.setenv(var, "")
    assert env_int(var, 7, lo=lo) == 7 and env_int(var) is None


def test_trainer_adapters_and_cli_read_the_environment_through_env_int(no_dist, capsys):
    """One reader, one message: RANK=x fails alike in the adapters, `train.distributed` and the CLI."""
    from coolmix.cli.__main__ import main
    from coolmix.train import distributed

    no_dist.setenv("RANK", "x")
    want = "RANK='x': environment variable must be an integer >= 0"
    for fails in (DataParallel().resolve, lambda: distributed.setup("cpu")):
        with pytest.raises(ConfigError) as e:
            fails()
        assert str(e.value) == want
    assert main(["train", "never-read.toml"]) == 2  # RANK is read first: rank 0 alone prints
    assert capsys.readouterr().err == f"coolmix: error: {want}\n"


# -- streaming mixers take the same data-parallel coordinate -----------------------------------------

STREAM_SIZES = {"a": 40, "b": 7}


def streams(kind, **kw):
    """A small `StreamMixture` or `PackedStreams` whose items reveal their domain and position."""
    if kind == "mixture":
        sources = {n: [f"{n}-{j}" for j in range(k)] for n, k in STREAM_SIZES.items()}
        return StreamMixture(sources, STREAM_SIZES, 5.0, total_steps=6, batch_size=4, seed=1, **kw)
    sources = {
        n: [[100 * (i + 1) + j] * (1 + j % 3) for j in range(k)]
        for i, (n, k) in enumerate(STREAM_SIZES.items())
    }
    return PackedStreams(sources, STREAM_SIZES, 5.0, total_steps=6, rows=4, seq_len=5, **kw)


def stream_batches(mixer):
    """Batches as plain lists (packed batches are dicts of arrays)."""
    return [{k: v.tolist() for k, v in b.items()} if isinstance(b, dict) else b for b in mixer]


@pytest.mark.parametrize("kind", ["mixture", "packed"])
def test_streams_take_a_mesh_group_or_default_group_like_the_adapters(no_dist, kind):
    want = stream_batches(streams(kind, dp=DataParallel(1, 2)))
    assert want != stream_batches(streams(kind, dp=DataParallel(0, 2)))  # dp ranks read different lanes
    for tp in range(2):  # TP peers of dp rank 1 read identical batches
        mixer = streams(kind, dp=FakeMesh((1, tp), (2, 2)))
        assert (mixer.rank, mixer.world_size) == (1, 2)
        assert stream_batches(mixer) == want
    group = torch.distributed.ProcessGroup.__new__(torch.distributed.ProcessGroup)  # the dp peers' group
    no_dist.setattr(torch.distributed, "is_initialized", lambda: True)
    no_dist.setattr(torch.distributed, "get_rank", lambda g=None: 1 if g is group else 3)
    no_dist.setattr(torch.distributed, "get_world_size", lambda g=None: 2 if g is group else 4)
    assert stream_batches(streams(kind, dp=group)) == want
    join(no_dist, 1, 2)
    assert stream_batches(streams(kind)) == want  # the default group, resolved at iteration


@pytest.mark.parametrize("kind", ["mixture", "packed"])
def test_streams_built_before_init_process_group_resolve_when_iterated(no_dist, kind):
    no_dist.setenv("WORLD_SIZE", "2")
    no_dist.setenv("RANK", "1")
    mixer = streams(kind)  # under torchrun, before init_process_group: fine
    with pytest.raises(ConfigError) as e:  # iterating now would read lane 0 of 1 on every process
        next(iter(mixer))
    assert e.value.field == "WORLD_SIZE" and "init_process_group" in str(e.value)
    join(no_dist, 1, 2)
    assert stream_batches(mixer) == stream_batches(streams(kind, dp=DataParallel(1, 2)))
    no_dist.setenv("RANK", "x")
    no_dist.setattr(torch.distributed, "is_initialized", lambda: False)
    with pytest.raises(ConfigError) as e:
        next(iter(streams(kind)))
    assert (e.value.field, e.value.value) == ("RANK", "x")


def test_pickled_streams_carry_the_coordinate_resolved_in_the_parent(no_dist):
    """A spawned DataLoader worker has no process group: it must not fall back to rank 0 of 1."""
    join(no_dist, 1, 2)
    copy = pickle.loads(pickle.dumps(streams("mixture").as_torch()))
    no_dist.setattr(torch.distributed, "is_initialized", lambda: False)
    assert copy.inner.dp.resolve() == (1, 2)
    assert stream_batches(copy) == stream_batches(streams("mixture", dp=DataParallel(1, 2)))


def test_streams_check_their_arguments_once_for_both_mixers():
    for kind, field in (("mixture", "batch_size"), ("packed", "rows")):
        with pytest.raises(ConfigError) as e:  # an explicit dp size that does not divide: at once
            streams(kind, dp=DataParallel(0, 3))
        assert e.value.field == field and "world_size=3" in str(e.value)
        for junk in ((0, 2), FakeMesh((0, 0), (2, 2), names=("data", "tp"))):  # read like every adapter's
            with pytest.raises(ConfigError) as e:
                streams(kind, dp=junk)
            assert e.value.field == "dp" and "\n" not in str(e.value)
        for old in (dict(rank=0, world_size=2), dict(group=object()), dict(mesh=FakeMesh((0, 0), (2, 2)))):
            with pytest.raises(TypeError):  # the five separate arguments are gone: dp= only
                streams(kind, **old)
    with pytest.raises(ConfigError, match=r"^batch_size=0: must be an integer in"):
        StreamMixture({"a": [1]}, {"a": 1}, 1.0, total_steps=2, batch_size=0)
    with pytest.raises(ConfigError, match=r"^rows=0: must be an integer in"):
        PackedStreams({"a": [[1]]}, {"a": 1}, 1.0, total_steps=2, rows=0, seq_len=4)


# -- real process groups under torchrun (gloo, CPU) --------------------------------------------------

TORCHRUN_SCRIPT = """
import json, os, sys
import torch.distributed as dist
from torch.utils.data import DataLoader
sys.path.insert(0, sys.argv[3])
import test_ranks as T
from coolmix.integrations.collate import MixtureCollator
from coolmix.integrations.loader import MixtureLoader
from coolmix.integrations.torch import MixtureBatchSampler, MixtureDataset, MixtureIterableDataset

out, mode = sys.argv[1], sys.argv[2]
record = {}
if mode == "mesh":
    from torch.distributed.device_mesh import init_device_mesh
    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    record["coords"] = [mesh.get_local_rank("dp"), mesh.get_local_rank("tp")]
    ds = MixtureDataset(T.DOMAINS)
    record["mesh"] = list(MixtureBatchSampler(T.make_sampler(), dp=mesh, dataset=ds))
    record["group"] = list(MixtureBatchSampler(T.make_sampler(), dp=mesh.get_group("dp")))
    record["submesh"] = list(MixtureBatchSampler(T.make_sampler(), dp=mesh["dp"]))
    loader = MixtureLoader.from_datasets(T.DOMAINS, T.make_sampler(), dp=mesh, num_workers=1)
    record["loader"] = [ds.flat_index(b["domain"], b["index"]).tolist() for b in loader]
    ids = MixtureIterableDataset(T.DOMAINS, T.make_sampler(), dp=mesh)
    dl = DataLoader(ids, batch_size=ids.batch_size, collate_fn=MixtureCollator(), num_workers=2)
    record["iterable"] = [ds.flat_index(b["domain"], b["index"]).tolist() for b in dl]
    record["streams"] = T.stream_batches(T.streams("mixture", dp=mesh))
    record["streams_group"] = T.stream_batches(T.streams("packed", dp=mesh.get_group("dp")))
else:  # built before init_process_group, as a script that sets up data first would
    bs = MixtureBatchSampler(T.make_sampler())
    ids = MixtureIterableDataset(T.DOMAINS, T.make_sampler())
    mixer = T.streams("mixture")
    dist.init_process_group("gloo")
    record["coords"] = [dist.get_rank(), 0]
    record["sampler"] = list(bs)
    record["streams"] = T.stream_batches(mixer)
    dl = DataLoader(ids, batch_size=ids.batch_size, collate_fn=MixtureCollator())
    ds = MixtureDataset(T.DOMAINS)
    record["iterable"] = [ds.flat_index(b["domain"], b["index"]).tolist() for b in dl]
with open(f"{out}/rank{dist.get_rank()}.json", "w") as f:
    json.dump(record, f)
dist.barrier()
dist.destroy_process_group()
"""


def torchrun(tmp_path, nproc, mode):
    script = tmp_path / "dist.py"
    script.write_text(TORCHRUN_SCRIPT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nnodes=1", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1"]
    cmd += [f"--master_port={port}", str(script), str(tmp_path), mode, str(Path(__file__).parent)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(nproc)]


@pytest.mark.slow
def test_torchrun_tp2_dp2_mesh(tmp_path):
    """4 gloo processes as a (dp=2, tp=2) DeviceMesh: TP peers read identical rows, DP ranks partition."""
    ranks = torchrun(tmp_path, 4, "mesh")
    assert [r["coords"] for r in ranks] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    for key in ("mesh", "group", "submesh", "loader", "iterable"):
        for dp in range(2):
            peers = [r[key] for r in ranks if r["coords"][0] == dp]
            assert peers[0] == peers[1] == flat_stream(dp, 2), key
        union = [ranks[0][key][t] + ranks[2][key][t] for t in range(STEPS)]
        assert union == flat_stream(), key
    for key, kind in (("streams", "mixture"), ("streams_group", "packed")):
        for dp in range(2):
            peers = [r[key] for r in ranks if r["coords"][0] == dp]
            want = json.loads(json.dumps(stream_batches(streams(kind, dp=DataParallel(dp, 2)))))
            assert peers[0] == peers[1] == want, key


@pytest.mark.slow
def test_torchrun_sampler_built_before_init_process_group(tmp_path):
    ranks = torchrun(tmp_path, 2, "before")
    for r, rec in enumerate(ranks):
        assert rec["coords"][0] == r
        assert rec["sampler"] == rec["iterable"] == flat_stream(r, 2)
        want = json.loads(json.dumps(stream_batches(streams("mixture", dp=DataParallel(r, 2)))))
        assert rec["streams"] == want
