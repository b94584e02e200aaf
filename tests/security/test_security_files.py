"""Every file coolmix reads or writes in a directory it owns is a regular file, never followed (issue 16).

Each test plants a link, a FIFO or the zero device where coolmix expects its own file and asserts a
one-line `ConfigError` (or exit 2 with one stderr line), with the link's target byte-identical.
On the code before issue 16 each of these wrote through the link, blocked, or read without end.
"""

from __future__ import annotations

import json
import os
import pickle

import pytest

from coolmix.cli.__main__ import main
from coolmix.errors import ConfigError
from coolmix.fileio import write_atomic, write_atomic_text

PLAN = (
    '[mixture]\nsizes = { en = 90, sw = 10 }\n[schedule]\nkind = "cooldown"\n[run]\ntotal_steps = 10\n'
    "batch_size = 4\n"
)
GOOD_LEDGER = json.dumps(
    {
        "step": 4,
        "ledger": {
            "en": {"examples": 12, "tokens": 120, "share": 0.75, "target_share": 0.7, "target_examples": 11.2,
                   "epochs": 0.12, "max_repeats": 1},
        },
    }
)  # fmt: skip


def one_line(capsys, code: int, *needles: str) -> str:
    _, err = capsys.readouterr()
    lines = [x for x in err.strip().splitlines() if not x.startswith("coolmix: warning:")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- the one writer and the one reader ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["link", "dangling", "fifo", "dir"])
def test_write_atomic_refuses_a_target_that_is_not_a_regular_file(tmp_path, decoys, kind):
    target = tmp_path / "metrics.json"
    if kind == "link":
        target.symlink_to(decoys.file("passwd"))
    elif kind == "dangling":
        target.symlink_to(decoys.missing("created"))
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    with pytest.raises(ConfigError, match=r"^metrics\.json=.*is a (symbolic link|FIFO|directory)"):
        write_atomic_text(target, "{}")
    assert decoys.unchanged() == []
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temp file left behind


def test_write_atomic_never_writes_through_a_link_planted_at_its_temp_name(tmp_path, decoys):
    target = tmp_path / "report.md"
    (tmp_path / f".report.md.tmp-{os.getpid()}").symlink_to(decoys.file("temp"))
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and not target.is_symlink()
    assert decoys.unchanged() == []


@pytest.mark.parametrize("kind", ["fifo", "zero", "link", "dir"])
def test_read_refuses_fifos_devices_links_and_directories_without_blocking(tmp_path, decoys, no_hang, kind):
    from coolmix.fileio import read_bytes

    path = tmp_path / "metrics.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "link":
        path.symlink_to(decoys.file("secret", GOOD_LEDGER))
    else:
        path.mkdir()
    from coolmix.fileio import read_text

    with pytest.raises(ConfigError, match=r"FIFO|symbolic link|directory"):
        read_bytes(path)
    if kind in ("fifo", "zero"):  # a user-named file may be a link, but not to a device or a FIFO
        with pytest.raises(ConfigError, match=r"FIFO|device"):
            read_text(path, "config", follow=True)


def test_make_dir_refuses_a_link_on_the_way_down(tmp_path, decoys):
    from coolmix.fileio import make_dir

    (tmp_path / "runs").symlink_to(decoys.dir, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"runs.*symbolic link"):
        make_dir(tmp_path / "runs" / "lm" / "tau1-s0", "out", root=tmp_path)
    assert decoys.unchanged() == []


def test_symlink_loop_as_a_directory_is_one_line(tmp_path):
    from coolmix.fileio import make_dir

    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="symbolic link"):
        make_dir(loop, "out")


# -- ConfigError crosses process boundaries ------------------------------------------------------------


def test_config_error_survives_pickling_with_its_message_and_fields():
    e = ConfigError("seeds", [0, 0], "seed 0 is listed twice")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is ConfigError and str(back) == str(e)
    assert (back.field, back.value, back.why) == ("seeds", [0, 0], "seed 0 is listed twice")
    odd = ConfigError("x", (i for i in range(3)), "a generator cannot be pickled")
    assert str(pickle.loads(pickle.dumps(odd))) == str(odd)


def test_a_refusal_in_a_reproduce_worker_process_arrives_as_the_same_config_error():
    from coolmix.reproduce.runner import make_pool
    from coolmix.validate import check_int

    with make_pool(1) as pool:
        fut = pool.submit(check_int, "workers", -3, lo=0)
        with pytest.raises(ConfigError) as got:
            fut.result(timeout=120)
    assert str(got.value).startswith("workers=-3")


# -- train's run directory -----------------------------------------------------------------------------


@pytest.mark.parametrize("dangling", [False, True])
def test_run_lock_never_follows_a_lock_link(tmp_path, decoys, dangling):
    from coolmix.train.rundir import RunLock

    target = decoys.missing("lockfile") if dangling else decoys.file("lockfile")
    (tmp_path / ".lock").symlink_to(target)
    with pytest.raises(ConfigError, match=r"^out=.*symbolic link"):
        RunLock(tmp_path).acquire()
    assert decoys.unchanged() == []


@pytest.mark.parametrize("resume", [False, True])
def test_metrics_sink_never_truncates_the_target_of_a_metrics_link(tmp_path, decoys, resume):
    from coolmix.train.metrics import JsonlSink

    path = tmp_path / "metrics.jsonl"
    path.symlink_to(decoys.file("passwd", "root:x:0:0:root:/root:/bin/bash\n"))
    with pytest.raises(ConfigError, match="symbolic link"):
        if resume:
            JsonlSink.resume(path, {"text": '{"step": 1}\n'}, 1, lambda m: None)
        else:
            JsonlSink(path)
    assert decoys.unchanged() == []


def test_a_checkpoint_link_is_skipped_like_a_corrupt_file_never_read(tmp_path, decoys):
    from coolmix.train.checkpoint import load_latest, read

    (tmp_path / "ckpt-00000004.pt").symlink_to(decoys.file("ckpt"))
    with pytest.raises(ConfigError, match="unreadable: is a symbolic link"):
        read(tmp_path / "ckpt-00000004.pt")
    warned = []
    with pytest.raises(ConfigError, match="unreadable"):
        load_latest(tmp_path, "hash", warn=warned.append)
    assert len(warned) == 1


# -- ledger, plan --------------------------------------------------------------------------------------


def test_ledger_never_overwrites_the_target_of_a_ledger_png_link(capsys, tmp_path, decoys):
    (tmp_path / "metrics.jsonl").write_text(GOOD_LEDGER + "\n")
    (tmp_path / "ledger.png").symlink_to(decoys.file("ledger.png"))
    one_line(capsys, main(["ledger", str(tmp_path)]), "ledger.png", "symbolic link")
    assert decoys.unchanged() == []


@pytest.mark.parametrize("kind", ["fifo", "zero", "link"])
def test_ledger_on_a_metrics_fifo_or_device_is_one_line_and_does_not_hang(
    capsys, tmp_path, decoys, no_hang, kind
):
    path = tmp_path / "metrics.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(decoys.file("m", GOOD_LEDGER))
    one_line(capsys, main(["ledger", str(tmp_path), "--no-plot"]), "metrics.jsonl")


@pytest.mark.parametrize("name", ["plan.csv", "plan.toml", "plan.png"])
def test_plan_never_writes_through_a_link_in_its_out_dir(capsys, tmp_path, decoys, name):
    cfg = tmp_path / "p.toml"
    cfg.write_text(PLAN)
    out = tmp_path / "o"
    out.mkdir()
    (out / name).symlink_to(decoys.file(name))
    one_line(capsys, main(["plan", str(cfg), "--out", str(out)]), name, "symbolic link")
    assert decoys.unchanged() == []
    assert sorted(p.name for p in out.iterdir()) == [name]  # refused before any file was written


@pytest.mark.parametrize("kind", ["fifo", "zero", "dir"])
def test_a_config_that_is_a_fifo_or_device_is_one_line(capsys, tmp_path, no_hang, kind):
    cfg = tmp_path / "p.toml"
    if kind == "fifo":
        os.mkfifo(cfg)
    elif kind == "zero":
        cfg.symlink_to("/dev/zero")
    else:
        cfg.mkdir()
    one_line(capsys, main(["plan", str(cfg), "--no-plot", "--out", str(tmp_path / "o")]), "config=")
    one_line(capsys, main(["train", str(cfg), "--out", str(tmp_path / "r")]), "config=")


def test_out_that_is_a_symlink_loop_is_one_line(capsys, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    cfg = tmp_path / "p.toml"
    cfg.write_text(PLAN)
    one_line(capsys, main(["plan", str(cfg), "--out", str(loop), "--no-plot"]), "out=")
    one_line(capsys, main(["reproduce", "--out", str(loop), "--workers", "0", "--only", "zz"]), "only=")


# -- YAML keys -------------------------------------------------------------------------------------------

PLAN_YAML = (
    "mixture:\n  sizes: {en: 90, %s: 10}\nschedule:\n  kind: cooldown\n"
    "run:\n  total_steps: 10\n  batch_size: 4\n"
)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (PLAN_YAML % "no", "key 'no' (line 2) is read as the bool False"),
        (PLAN_YAML % "1", "key '1' (line 2) is read as the int 1"),
        (PLAN_YAML % "null", "key 'null' (line 2) is read as the NoneType None"),
        (PLAN_YAML % "en", "key 'en' is given twice"),
        ((PLAN_YAML % "sw") + "run:\n  seed: 4\n", "key 'run' is given twice"),
    ],
)
def test_yaml_non_string_and_duplicate_keys_are_refused_naming_the_key(capsys, tmp_path, text, needle):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(text)
    one_line(capsys, main(["plan", str(cfg), "--no-plot", "--out", str(tmp_path / "o")]), "config=", needle)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    from coolmix.config import load_file

    cfg = tmp_path / "m.yaml"
    cfg.write_text("base: &b {hot: 5, cold: 1}\nschedule:\n  <<: *b\n  cold: 2\n")
    assert load_file(cfg)["schedule"] == {"hot": 5, "cold": 2}


def test_json_duplicate_keys_are_refused(tmp_path):
    from coolmix.config import load_file

    cfg = tmp_path / "p.json"
    cfg.write_text('{"run": {"seed": 1, "seed": 2}}')
    with pytest.raises(ConfigError, match="key 'seed' is given twice"):
        load_file(cfg)


# -- shard directories and data files ---------------------------------------------------------------------


def _stream(root):
    from coolmix.integrations.streams import StreamMixture

    return StreamMixture({"en": str(root)}, {"en": 10}, 1.0, total_steps=2, batch_size=2)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"text": "a"}\n{trunc\n', "line 2 is not JSON"),
        (b'{"text": "a"}\n\xff\xfe\n', "line 2 is not UTF-8"),
    ],
)
def test_a_damaged_shard_is_one_config_error_naming_its_line(tmp_path, content, needle):
    (tmp_path / "part-0.jsonl").write_bytes(content * 3)
    with pytest.raises(ConfigError, match=needle):
        for _ in _stream(tmp_path):
            pass


@pytest.mark.parametrize("kind", ["dir", "fifo"])
def test_a_shard_that_is_a_directory_or_fifo_is_refused_before_reading(tmp_path, no_hang, kind):
    (tmp_path / "part-0.jsonl").write_text('{"text": "a"}\n' * 5)
    odd = tmp_path / "x.jsonl"
    odd.mkdir() if kind == "dir" else os.mkfifo(odd)
    with pytest.raises(ConfigError, match=r"directory|FIFO"):
        for _ in _stream(tmp_path):
            pass


def test_iter_lines_names_the_file_and_line(tmp_path):
    from coolmix.fileio import iter_lines

    f = tmp_path / "a.txt"
    f.write_bytes(b"ok\r\nfine\n\xc3\n")
    lines = iter_lines(f, "options.train.en")
    assert next(lines) == (1, "ok\n") and next(lines) == (2, "fine\n")
    with pytest.raises(ConfigError, match=r"^options\.train\.en=.*line 3 is not UTF-8"):
        next(lines)


def test_a_data_file_that_is_a_fifo_is_one_line(tmp_path, no_hang):
    from coolmix.data.files import _read

    os.mkfifo(tmp_path / "en.txt")
    with pytest.raises(ConfigError, match=r"^options\.train\.en=.*FIFO"):
        _read("options.train.en", tmp_path / "en.txt")


# -- report on malformed saved results ----------------------------------------------------------------

ROW = {"experiment": "lm", "method": "tau1", "role": "main", "seed": 0, "dir": "runs/lm/x",
       "final": {"sizes": {"en": 90, "sw": 10}}}  # fmt: skip


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"runs": [{**ROW, "seed": "zero"}]}, "runs[0].seed"),
        ({"runs": [{**ROW, "final": []}]}, "runs[0].final"),
        ({"runs": [{**ROW, "final": {}}]}, "runs[0].final"),
        ({"runs": [{**ROW, "curve": 5}]}, "runs[0].curve"),
        ({"runs": [{**ROW, "dir": None}]}, "runs[0].dir"),
        ({"runs": [ROW], "theory": [1]}, "metrics.json theory"),
        ({"runs": [ROW], "meta": "x"}, "metrics.json meta"),
    ],
)
def test_report_on_a_malformed_metrics_json_is_one_line(capsys, tmp_path, doc, needle):
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    one_line(capsys, main(["report", str(tmp_path)]), needle)


@pytest.mark.slow  # builds the committed quick report (figures included)
def test_report_warns_when_runs_json_lists_no_existing_run_and_keeps_the_stored_runs(capsys, tmp_path):
    from pathlib import Path

    committed = Path(__file__).resolve().parents[2] / "docs/results/quick/metrics.json"
    stored = json.loads(committed.read_text())
    (tmp_path / "metrics.json").write_text(json.dumps(stored))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs.json").write_text('["runs/lm/gone-s0-12345678"]')
    assert main(["report", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "runs.json lists 1 run(s); 1 of them have no" in err and "metrics.json instead" in err
    assert len(json.loads((tmp_path / "metrics.json").read_text())["runs"]) == len(stored["runs"]) > 0


def test_the_corpus_cache_lock_never_truncates_the_target_of_a_link(tmp_path, decoys):
    from coolmix.data.manifest import build_lock

    (tmp_path / ".bible.lock").symlink_to(decoys.file("lock"))
    with pytest.raises(ConfigError, match="symbolic link"), build_lock(tmp_path, "bible"):
        pass
    assert decoys.unchanged() == []


def test_overfit_reader_refuses_a_fifo_and_a_link(tmp_path, decoys, no_hang):
    from coolmix.diagnostics.overfit import detect_from_jsonl

    os.mkfifo(tmp_path / "fifo.jsonl")
    with pytest.raises(ConfigError, match="FIFO"):
        detect_from_jsonl(tmp_path / "fifo.jsonl")
    (tmp_path / "link.jsonl").symlink_to(decoys.file("m", GOOD_LEDGER))
    with pytest.raises(ConfigError, match="symbolic link"):
        detect_from_jsonl(tmp_path / "link.jsonl")
