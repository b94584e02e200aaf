"""The `coolmix` entry point: command-module protocol (sync check), one-line errors, exit codes."""

import errno
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import coolmix
from coolmix.cli import __main__ as entry
from coolmix.cli.__main__ import COMMANDS, build_parser, main

CLI_DIR = Path(entry.__file__).parent
ROOT = Path(__file__).resolve().parents[2]
GOOD = """
[mixture]
sizes = { a = 900, b = 90, c = 10 }
[schedule]
kind = "cooldown"
[run]
total_steps = 20
batch_size = 8
"""

# every class of bad input: (file text or None for "no such file", extra argv, what the line names)
BAD = {
    "zero size": (GOOD.replace("a = 900", "a = 0"), [], "mixture.sizes.a=0"),
    "negative size": (GOOD.replace("a = 900", "a = -900"), [], "mixture.sizes.a=-900"),
    "nan size": (GOOD.replace("a = 900", "a = nan"), [], "mixture.sizes.a=nan"),
    "infinite size": (GOOD.replace("a = 900", "a = inf"), [], "mixture.sizes.a=inf"),
    "empty mixture": (GOOD.replace("a = 900, b = 90, c = 10", ""), [], "mixture.sizes={}"),
    "tau <= 0": (GOOD.replace('kind = "cooldown"', 'kind = "temperature"\ntau = 0'), [], "schedule.tau=0"),
    "weights sum to 0": (
        GOOD.replace('kind = "cooldown"', 'kind = "constant"\ndist = {kind = "explicit", weights = {a = 0}}'),
        [],
        "schedule.dist.weights=",
    ),
    "unknown domain": (
        GOOD.replace('kind = "cooldown"', 'kind = "order_matters"\nhigh = ["zz"]'),
        [],
        "schedule.high='zz'",
    ),
    "phases out of order": (
        GOOD.replace('kind = "cooldown"', 'kind = "stages"\nstarts = [0, 0.7, 0.2]\ndists = [5, 3, 1]'),
        [],
        "schedule.starts[2]=0.2",
    ),
    "at outside (0,1)": (
        GOOD.replace('kind = "cooldown"', 'kind = "cooldown"\nat = 1.5'),
        [],
        "schedule.at=1.5",
    ),
    "total_steps <= 0": (GOOD.replace("total_steps = 20", "total_steps = 0"), [], "run.total_steps=0"),
    "batch < world size": (GOOD + "world_size = 16\n", [], "run.batch_size=8"),
    "unknown key": (GOOD + "epochs = 3\n", [], "run.epochs=3"),
    "unparsable file": ("[mixture\n", [], "config="),
    "missing file": (None, [], "config="),
    "bad override": (GOOD, ["--set", "run.total_steps"], "override="),
    "bad override value": (GOOD, ["--set", "run.batch_size=-8"], "run.batch_size=-8"),
}


def assert_one_line_error(capsys, code, expect=""):
    _out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "usage:" not in err
    assert lines[0].startswith(("coolmix: error: ", "coolmix plan: error: ", "coolmix: error")), lines[0]
    assert expect in lines[0], lines[0]
    return lines[0]


# -- the protocol every command module follows (sync check) -------------------------------------


def test_every_existing_command_module_follows_the_protocol():
    existing = list(COMMANDS)  # every registered module exists (no "not written yet" path)
    assert "plan" in existing
    for name in existing:
        module = importlib.import_module(COMMANDS[name])
        assert isinstance(module.HELP, str) and module.HELP.strip() and "\n" not in module.HELP, name
        assert callable(module.add_arguments) and callable(module.run), name
    parser = build_parser()
    subactions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    assert sorted(subactions[0].choices) == sorted(existing)


def test_every_module_in_the_cli_package_is_registered():
    modules = {p.stem for p in CLI_DIR.glob("*.py") if not p.stem.startswith("_")}  # _x.py: helpers
    registered = {m.rsplit(".", 1)[1] for m in COMMANDS.values()}
    assert modules <= registered, f"unregistered cli modules: {modules - registered}"
    assert all(m.startswith("coolmix.cli.") for m in COMMANDS.values())


def test_cli_imports_neither_torch_nor_matplotlib_for_plan(tmp_path):
    """Importing the entry point (and every existing command module) must not import torch;
    `coolmix plan --no-plot` must not import matplotlib either."""
    cfg = tmp_path / "p.toml"
    cfg.write_text(GOOD)
    code = (
        "import sys; import coolmix.cli.__main__ as m; m.build_parser();"
        f"rc = m.main(['plan', {str(cfg)!r}, '--out', {str(tmp_path / 'o')!r}, '--no-plot', '--json']);"
        "print(rc, sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'matplotlib'}), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stderr.strip().splitlines()[-1] == "0 []", out.stderr


# -- exit codes and one-line errors ------------------------------------------------------------


def test_version_and_help_exit_zero(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"coolmix {coolmix.__version__}"
    assert main(["--help"]) == 0
    assert "plan" in capsys.readouterr().out
    assert main(["plan", "--help"]) == 0
    assert "--set" in capsys.readouterr().out


def test_reproduce_help_names_every_preset(capsys, monkeypatch):
    # the help is built from the presets' registry, so a new preset (mt-overfit, unimax-grid) is never missing
    from coolmix.reproduce.specs import PRESETS

    monkeypatch.setenv("COLUMNS", "2000")  # argparse wraps at hyphens; one line keeps the names whole

    assert main(["reproduce", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in PRESETS), [n for n in PRESETS if n not in text]


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["plan"], "the following arguments are required: CONFIG"),
        (["plan", "x.toml", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, argv, expect):
    assert_one_line_error(capsys, main(argv), expect)


@pytest.mark.parametrize("case", list(BAD))
def test_each_class_of_bad_input_is_one_line_exit_2(capsys, tmp_path, case):
    text, extra, expect = BAD[case]
    cfg = tmp_path / "p.toml"
    if text is not None:
        cfg.write_text(text)
    code = main(["plan", str(cfg), "--out", str(tmp_path / "o"), "--no-plot", *extra])
    line = assert_one_line_error(capsys, code, expect)
    assert line.startswith("coolmix: error: ")


def test_output_path_that_is_a_file_is_one_line_exit_2(capsys, tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text(GOOD)
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["plan", str(cfg), "--out", str(blocker / "sub"), "--no-plot"])
    assert_one_line_error(capsys, code, "out=")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_config_is_one_line_exit_2(capsys, tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text(GOOD)
    cfg.chmod(0)
    try:
        assert_one_line_error(capsys, main(["plan", str(cfg), "--no-plot"]), "Permission denied")
    finally:
        cfg.chmod(0o644)


@pytest.mark.parametrize(
    ("err", "expect"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/full/plan.csv"), "No space left on device"),
        (OSError(errno.EROFS, "Read-only file system", "/ro/plan.csv"), "Read-only file system"),
        (OSError(errno.ENAMETOOLONG, "File name too long", "/x" * 10), "File name too long"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/data"), "Is a directory"),
        (PermissionError(errno.EACCES, "Permission denied", "/root/p.toml"), "Permission denied"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "UTF-8"),
    ],
)
def test_os_errors_on_user_paths_are_one_line_exit_2(capsys, monkeypatch, err, expect):
    import coolmix.cli.plan as plan_cli

    def fail(*args, **kwargs):
        raise err

    monkeypatch.setattr(plan_cli, "load_plan_config", fail)
    assert expect in assert_one_line_error(capsys, main(["plan", "p.toml"]))


def test_genuine_bugs_keep_their_traceback(monkeypatch):
    """Only the user's own mistakes are one line; an OSError the user cannot cause is a bug."""
    import coolmix.cli.plan as plan_cli

    for err in (OSError(errno.EBADF, "Bad file descriptor"), TypeError("unsupported operand")):

        def fail(*args, err=err, **kwargs):
            raise err

        monkeypatch.setattr(plan_cli, "load_plan_config", fail)
        with pytest.raises(type(err)):
            main(["plan", "p.toml"])


# -- real processes -------------------------------------------------------------------------------


def _coolmix() -> list[str]:
    script = Path(sys.executable).with_name("coolmix")
    return [str(script)] if script.exists() else [sys.executable, "-m", "coolmix"]


def test_console_script_and_python_dash_m(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text(GOOD)
    env = {**os.environ, "COLUMNS": "160"}
    ok = subprocess.run(
        [*_coolmix(), "plan", str(cfg), "--out", str(tmp_path / "o"), "--no-plot"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "whole run" in ok.stdout and (tmp_path / "o" / "plan.csv").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "coolmix", "plan", str(cfg), "--set", "run.total_steps=0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == ["coolmix: error: run.total_steps=0: must be an integer >= 1"]


def test_permission_error_from_a_command_is_one_line_exit_2(capsys, monkeypatch):
    import coolmix.cli.plan as plan_cli

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/data/p.toml")

    monkeypatch.setattr(plan_cli, "load_plan_config", deny)
    line = assert_one_line_error(capsys, main(["plan", "p.toml"]))
    assert line == "coolmix: error: path='/data/p.toml': Permission denied"
