"""Hostile fuzz of every ``coolmix`` subcommand, in-process through ``main(argv)``.

Each case must end in exit 0 with sound output, or exit 2 with exactly one line on stderr (no
traceback). Training never starts: ``train`` and ``reproduce`` run with stubs that raise
`WouldTrain` where the trainer would begin (after every check the command itself makes).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from fuzz_harness import WouldTrain, fuzzer, record, run_cli
from fuzz_strategies import DOMAINS, hostile, override_values
from hypothesis import strategies as st

PLAN = """\
[mixture]
sizes = { en = 2733, it = 162, zh = 39, sw = 1 }
[schedule]
kind = "cooldown"
hot = 5
cold = 1
at = 0.5
[run]
total_steps = 40
batch_size = 8
"""

PLAN_KEYS = [
    "mixture.sizes.en", "mixture.sizes.sw", "mixture.unit", "mixture.tokens_per_example", "schedule.kind",
    "schedule.hot", "schedule.cold", "schedule.at", "schedule.tau", "schedule.dist", "run.total_steps",
    "run.batch_size", "run.seed", "run.world_size", "run.composition", "run.max_epochs", "name",
]  # fmt: skip
TRAIN_KEYS = [
    "run.total_steps", "run.batch_size", "run.seed", "run.lr", "run.eval_every", "run.keep", "run.threads",
    "run.device", "balance.sample", "balance.target", "balance.reduction", "data.max_train",
    "data.dev_size", "model.n_layer", "model.d_model", "schedule.kind", "data.name",
]  # fmt: skip


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v is None:
        return '"none"'
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="coolmix-fuzz-") as d:
        yield Path(d)


# -- plan: hostile config files and paths ---------------------------------------------------------

plan_file_case = st.one_of(
    st.tuples(st.just("mutate"), st.sampled_from(PLAN_KEYS), hostile),
    st.tuples(st.just("text"), st.sampled_from([".toml", ".yaml", ".json"]), st.text(max_size=80)),
    st.tuples(st.just("bytes"), st.sampled_from([".toml", ".yaml"]), st.binary(min_size=1, max_size=40)),
    st.tuples(
        st.just("path"),
        st.sampled_from(["dir", "missing", "long_config", "long_out", "out_is_file", "alias_bomb", "deep"]),
        st.none(),
    ),
)


def _mutated_plan(key: str, value) -> str:
    """PLAN with field ``key`` (dotted) set to ``value``, written as TOML."""
    table, _, leaf = key.rpartition(".")
    if table == "mixture.sizes":
        return re.sub(rf"\b{leaf} = [0-9]+", f"{leaf} = {_toml_value(value)}", PLAN, count=1)
    if not table:
        return f"{leaf} = {_toml_value(value)}\n{PLAN}"
    out, inside = [], False
    for line in PLAN.splitlines():
        if line.startswith("["):
            inside = line == f"[{table}]"
        if inside and line.startswith(f"{leaf} ="):
            continue
        out.append(line)
        if line == f"[{table}]":
            out.append(f"{leaf} = {_toml_value(value)}")
    return "\n".join(out) + "\n"


def _alias_bomb(levels: int, key: str) -> str:
    """YAML with ``levels`` nested anchors, each ten aliases of the one before (10**levels leaves)."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{key}: *a{levels - 1}\n"


@fuzzer("cli.plan_file", plan_file_case, fast=40, slow=200)
def _plan_file(case):
    kind, a, b = case
    with _workdir() as d:
        out = d / "out"
        cfg = d / "p.toml"
        expect = None
        if kind == "mutate":
            cfg.write_text(_mutated_plan(a, b), encoding="utf-8")
            expect = a.rpartition(".")[2]
        elif kind == "text":
            cfg = d / f"p{a}"
            cfg.write_text(b, encoding="utf-8", errors="surrogatepass")
        elif kind == "bytes":
            cfg = d / f"p{a}"
            cfg.write_bytes(b"\xff\xfe" + b + b"\x80")
        elif a == "dir":
            cfg = d / "adir.toml"
            cfg.mkdir()
        elif a == "missing":
            cfg = d / "nope.toml"
        elif a == "long_config":
            cfg = d / ("c" * 300 + ".toml")
        elif a == "long_out":
            cfg.write_text(PLAN)
            out = d / ("o" * 300)
        elif a == "out_is_file":
            cfg.write_text(PLAN)
            (d / "file").write_text("")
            out = d / "file" / "sub"
        elif a == "alias_bomb":
            cfg = d / "bomb.yaml"
            cfg.write_text(_alias_bomb(6, "mixture"))
        else:
            cfg = d / "deep.json"
            cfg.write_text("[" * 100_000 + "]" * 100_000)
        run_cli(
            "cli.plan_file", ["plan", str(cfg), "--out", str(out), "--no-plot", "--json"], expect_field=expect
        )


test_plan_file_fast, test_plan_file_slow = _plan_file

# -- plan: --set overrides --------------------------------------------------------------------------

plan_set_case = st.lists(st.tuples(st.sampled_from(PLAN_KEYS), override_values), min_size=1, max_size=2)


def _not_slow(key: str, value: str) -> str:
    """A valid but long run (plan replays every step) costs seconds and finds nothing: cap it."""
    if key == "run.total_steps" and value.strip().isdigit() and 2_000 < int(value) <= 2**62:
        return "2000"
    return value


@fuzzer("cli.plan_set", plan_set_case, fast=40, slow=200)
def _plan_set(case):
    with _workdir() as d:
        cfg = d / "p.toml"
        cfg.write_text(PLAN)
        sets = [x for k, v in case for x in ("--set", f"{k}={_not_slow(k, v)}")]
        leaves = [k.rpartition(".")[2] for k, _ in case]
        argv = ["plan", str(cfg), "--out", str(d / "o"), "--no-plot", "--json", *sets]
        run_cli("cli.plan_set", argv, expect_field=leaves[0] if len(leaves) == 1 else None)


test_plan_set_fast, test_plan_set_slow = _plan_set

# -- plan --moments: a list, or a run directory with metrics ---------------------------------------

moment_values = st.one_of(
    st.floats(0.01, 100.0),
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308, 1e-320]),
)
moments_case = st.one_of(
    st.tuples(
        st.just("text"), st.dictionaries(st.sampled_from(DOMAINS), moment_values, min_size=4), st.none()
    ),
    st.tuples(st.just("text"), st.none(), override_values),
    st.tuples(
        st.just("dir"), st.dictionaries(st.sampled_from(DOMAINS), moment_values), st.sampled_from(range(6))
    ),
)


@fuzzer("cli.plan_moments", moments_case, fast=30, slow=150)
def _plan_moments(case):
    kind, moments, extra = case
    with _workdir() as d:
        cfg = d / "p.toml"
        cfg.write_text(PLAN)
        bad = moments is not None and any(not (math.isfinite(v) and v >= 0) for v in moments.values())
        if kind == "text":
            arg = ",".join(f"{k}={v!r}" for k, v in moments.items()) if moments is not None else str(extra)
        else:
            run = d / "run"
            run.mkdir()
            record = {"step": 3, "variance": {"s": moments}}
            lines = [
                json.dumps(record),
                "{trunc",
                "\x00\x00\x00",
                json.dumps({"step": 4, "variance": None}),
                json.dumps({"step": 5, "variance": {"s": [1, 2]}}),
                json.dumps([1, 2]),
            ][: extra + 1]
            (run / "metrics.jsonl").write_text("\n".join(lines))
            arg = str(run)

        def sound(stdout: str) -> str | None:
            return "invalid moments accepted" if bad else None

        argv = ["plan", str(cfg), "--out", str(d / "o"), "--no-plot", "--moments", arg]
        run_cli("cli.plan_moments", argv, check=sound)


test_plan_moments_fast, test_plan_moments_slow = _plan_moments

# -- ledger: damaged metrics files ---------------------------------------------------------------------

_ROW = {
    "examples": 12, "tokens": 120, "share": 0.75, "target_share": 0.7, "target_examples": 11.2,
    "epochs": 0.12, "max_repeats": 1,
}  # fmt: skip
GOOD_LINE = json.dumps({"step": 4, "ledger": {"en": _ROW, "sw": {**_ROW, "examples": 4, "share": 0.25}}})
DAMAGE = {
    "empty": "",
    "blank": "\n\n  \n",
    "garbage": "this is not json\n",
    "truncated_last": GOOD_LINE + "\n" + GOOD_LINE[: len(GOOD_LINE) // 2],
    "nul_bytes": "\x00" * 64,
    "nul_prefix": "\x00" * 8 + GOOD_LINE,
    "list": "[1, 2, 3]\n",
    "scalar": "42\n",
    "null": "null\n",
    "ledger_null": json.dumps({"step": 1, "ledger": None}),
    "row_null": json.dumps({"step": 1, "ledger": {"en": None}}),
    "field_null": json.dumps({"step": 1, "ledger": {"en": {**_ROW, "examples": None}}}),
    "missing_key": json.dumps({"step": 1, "ledger": {"en": {"examples": 3}}}),
    "nan_string": json.dumps({"step": 1, "ledger": {"en": {**_ROW, "share": "NaN"}}}),
    "nan_literal": GOOD_LINE.replace("0.75", "NaN"),
    "wrong_types": json.dumps({"step": "x", "ledger": {"en": {**_ROW, "examples": "many"}}}),
    "no_step": json.dumps({"ledger": {"en": _ROW}}),
    "ledger_list": json.dumps({"step": 1, "ledger": [1, 2]}),
    "huge": GOOD_LINE.replace("120", "1e400"),
    "non_utf8": "\udcff",
}  # fmt: skip

ledger_case = st.tuples(
    st.lists(st.sampled_from([*DAMAGE, "good", "good", "good"]), min_size=1, max_size=4),
    st.sampled_from(["file"] * 8 + ["dir_is_metrics", "missing"]),
)


@fuzzer("cli.ledger", ledger_case, fast=40, slow=200)
def _ledger(case):
    kinds, where = case
    with _workdir() as d:
        metrics = d / "metrics.jsonl"
        if where == "dir_is_metrics":
            metrics.mkdir()
        elif where == "file":
            text = "\n".join(GOOD_LINE if k == "good" else DAMAGE[k] for k in kinds)
            metrics.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        run_cli("cli.ledger", ["ledger", str(d), "--no-plot"])


test_ledger_fast, test_ledger_slow = _ledger

# -- report: hostile runs.json / theory.json / preset.json ------------------------------------------------

json_docs = st.one_of(
    st.sampled_from(
        ["", "null", "garbage", "[", "{}", "[]", "[1, 2]", '["runs/x/y"]', '{"a": 1}', "\x00", "NaN"]
    ),
    hostile.map(json.dumps),
)
_ROW_OK = {"experiment": "lm", "method": "tau1", "role": "main", "seed": 0, "dir": "runs/lm/x", "final": {}}
metrics_docs = st.one_of(
    json_docs,
    st.sampled_from(["theory", "meta", "runs"]).flatmap(
        lambda k: hostile.map(lambda v: json.dumps({k: v}, allow_nan=True))
    ),
    st.sampled_from([*_ROW_OK, "curve"]).flatmap(
        lambda k: hostile.map(lambda v: json.dumps({"runs": [{**_ROW_OK, k: v}]}, allow_nan=True))
    ),
)
report_case = st.one_of(
    st.tuples(
        st.sampled_from(["runs.json", "theory.json", "preset.json"]),
        json_docs,
        st.sampled_from(["dir", "file", "none"]),
    ),
    st.tuples(st.just("metrics.json"), metrics_docs, st.just("dir")),
)


@fuzzer("cli.report", report_case, fast=15, slow=100)
def _report(case):
    name, doc, where = case
    with _workdir() as d:
        target = d / "rep"
        if where == "dir":
            target.mkdir()
            (target / name).write_text(doc)
        elif where == "file":
            target.write_text(doc)
        run_cli("cli.report", ["report", str(target)])


test_report_fast, test_report_slow = _report

# -- reproduce and train: bad flags, with the training stubbed out ---------------------------------------


@contextlib.contextmanager
def no_training() -> Iterator[None]:
    """Stub every place where ``reproduce``/``train`` would start training (or build a corpus)."""
    import coolmix.reproduce.pipeline as pipeline
    import coolmix.reproduce.runner as runner
    import coolmix.train as train_pkg
    from coolmix.train import TrainConfig

    real_sizes = runner._sizes
    real_run_preset = runner.run_preset

    def sizes(exp):
        if exp.base.get("data", {}).get("train_sizes"):
            return real_sizes(exp)
        return {"en": 1000, "it": 100, "sw": 10}

    def warm(specs, progress):
        for spec in specs:
            if not spec.needs:
                TrainConfig.from_dict(spec.config)
        raise WouldTrain()

    def run_preset(preset, out, force=False, workers=None, progress=None):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise WouldTrain(f"runs started with workers={workers!r}")
        return real_run_preset(preset, out, force=force, workers=workers, progress=progress)

    def train(cfg, out, resume=False, console=True):
        Path(out).mkdir(parents=True, exist_ok=True)  # the first thing the trainer does with --out
        raise WouldTrain()

    with (
        mock.patch.object(runner, "_sizes", sizes),
        mock.patch.object(runner, "_warm_caches", warm),
        mock.patch.object(pipeline, "run_preset", run_preset),
        mock.patch.object(train_pkg, "train", train),
    ):
        yield


reproduce_case = st.tuples(
    st.one_of(st.none(), st.integers(-5, 4).map(str), st.sampled_from(["abc", "1.5", "", "2**64", "-0"])),
    st.one_of(st.none(), st.sampled_from(["0,1", "-1", "a,b", ",", "1e3", "0,,1", "99999999999999999999"])),
    st.sampled_from(["quick", "full", "bogus", ""]),
    st.lists(st.sampled_from(["lm", "mt", "convergence", "zz"]), max_size=2),
    st.lists(st.tuples(st.sampled_from(TRAIN_KEYS), override_values), max_size=2),
)


@fuzzer("cli.reproduce", reproduce_case, fast=25, slow=120)
def _reproduce(case):
    workers, seeds, preset, only, sets = case
    with _workdir() as d, no_training():
        argv = ["reproduce", "--preset", preset, "--out", str(d / "r")]
        argv += ["--workers", workers] if workers is not None else []
        argv += ["--seeds", seeds] if seeds is not None else []
        argv += [x for o in only for x in ("--only", o)]
        argv += [x for k, v in sets for x in ("--set", f"{k}={v}")]
        run_cli("cli.reproduce", argv)


test_reproduce_fast, test_reproduce_slow = _reproduce

TRAIN = """\
[data]
name = "bible"
langs = ["en", "sw"]
[run]
total_steps = 10
"""

train_case = st.tuples(
    st.lists(st.tuples(st.sampled_from(TRAIN_KEYS), override_values), max_size=2),
    st.sampled_from(["ok"] * 6 + ["non_utf8", "long_out", "long_config", "dir", "bomb"]),
)


@fuzzer("cli.train", train_case, fast=25, slow=120)
def _train(case):
    sets, kind = case
    with _workdir() as d, no_training():
        cfg = d / "t.toml"
        cfg.write_text(TRAIN)
        out = d / "run"
        if kind == "non_utf8":
            cfg.write_bytes(TRAIN.encode() + b"# \xff\xfe\n")
        elif kind == "long_out":
            out = d / ("r" * 300)
        elif kind == "long_config":
            cfg = d / ("t" * 300 + ".toml")
        elif kind == "dir":
            cfg = d / "dir.toml"
            cfg.mkdir()
        elif kind == "bomb":
            cfg = d / "bomb.yaml"
            cfg.write_text(_alias_bomb(6, "data"))
        argv = ["train", str(cfg), "--out", str(out), "--quiet"]
        argv += [x for k, v in sets for x in ("--set", f"{k}={v}")]
        run_cli("cli.train", argv)


test_train_fast, test_train_slow = _train
assert os.sep == "/"  # the path cases assume POSIX names

# -- every path a command touches, planted: a link outside, a dangling link, a FIFO, a device, a loop -------

PLANTS = {
    "plan": ["plan.csv", "plan.toml", "plan.png", "@config", "@out"],
    "ledger": ["metrics.jsonl", "ledger.png", "@run_dir"],
    "report": ["runs.json", "theory.json", "preset.json", "metrics.json", "report.md", "figures"],
    "train": [".lock", "metrics.jsonl", "config.toml", "ckpt-00000004.pt", "@config", "@out"],
    "reproduce": [".lock", "@out"],
}
PLANT_KINDS = ["link", "dangling", "fifo", "device", "dir", "loop"]
paths_case = st.tuples(
    st.sampled_from(sorted(PLANTS)).flatmap(lambda c: st.tuples(st.just(c), st.sampled_from(PLANTS[c]))),
    st.sampled_from(PLANT_KINDS),
    st.booleans(),
)
LEDGER_LINE = GOOD_LINE


class Hang(BaseException):
    """Raised by the alarm when a command blocks (a FIFO opened or read): not caught by `main`."""


def _plant(path: Path, kind: str, decoy: Path, missing: Path) -> None:
    if kind == "link":
        path.symlink_to(decoy)
    elif kind == "dangling":
        path.symlink_to(missing)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/null")
    elif kind == "dir":
        path.mkdir()
    else:
        path.symlink_to(path)


@contextlib.contextmanager
def _train_files_only() -> Iterator[None]:
    """``train`` up to the point where it would start stepping: the run directory's lock, its
    checkpoints read on resume, ``config.toml`` and ``metrics.jsonl`` opened, as `coolmix.train` does."""
    import coolmix.train as train_pkg
    from coolmix.fileio import write_atomic_text
    from coolmix.train import checkpoint, rundir
    from coolmix.train.metrics import METRICS_FILE, JsonlSink

    def train(cfg, out, resume=False, console=True):
        out = Path(out)
        with rundir.RunLock(out):
            rundir.clean_temps(out)
            state = checkpoint.load_latest(out, "hash") if resume else None
            write_atomic_text(out / "config.toml", "# config\n")
            sink = (
                JsonlSink.resume(out / METRICS_FILE, None, 0, lambda m: None)
                if resume
                else JsonlSink(out / METRICS_FILE)
            )
            sink.close()
            raise WouldTrain() if state is None else WouldTrain("resumed a planted checkpoint")

    with no_training(), mock.patch.object(train_pkg, "train", train):
        yield


def _alarm(_sig, _frame):
    raise Hang()


@fuzzer("cli.paths", paths_case, fast=40, slow=240)
def _paths(case):
    import signal

    (command, name), kind, resume = case
    with _workdir() as d, _train_files_only():
        outside = d / "outside"
        outside.mkdir()
        decoy = outside / "decoy"
        decoy.write_text(LEDGER_LINE + "\n")
        missing = outside / "created"
        before = decoy.read_bytes()
        own = d / "own"  # the directory the command owns
        own.mkdir()
        cfg = d / ("p.toml" if command == "plan" else "t.toml")
        cfg.write_text(PLAN if command == "plan" else TRAIN)
        (own / "metrics.jsonl").write_text(LEDGER_LINE + "\n") if command == "ledger" else None
        if command == "report":
            (own / "runs.json").write_text("[]")
            (own / "theory.json").write_text('{"fig2": {}}')
        target = {"@config": cfg, "@out": own, "@run_dir": own}.get(name, own / name)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        _plant(target, kind, decoy, missing)
        argv = {
            "plan": ["plan", str(cfg), "--out", str(own), "--json"],
            "ledger": ["ledger", str(own)],
            "report": ["report", str(own)],
            "train": ["train", str(cfg), "--out", str(own), "--quiet", *(["--resume"] * resume)],
            "reproduce": ["reproduce", "--out", str(own), "--workers", "0", "--only", "lm"],
        }[command]
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(30)  # a real hang never ends; plotting on a loaded 2-core host takes seconds
        try:
            run_cli("cli.paths", argv)
        except Hang:
            record("cli.paths", "hang", f"{command} with {name} as a {kind}")
            return
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        lost = decoy.read_bytes() != before or missing.exists() or len(list(outside.iterdir())) != 1
        if lost:  # counted on top of the case's own outcome: a one-line error that still wrote is a loss
            record("cli.paths", "silent", f"data lost: {command} with {name} as a {kind} wrote outside")


test_paths_fast, test_paths_slow = _paths
