"""`coolmix train`: the thin command over `coolmix.train.train` (in-process through the entry point)."""

from pathlib import Path

from train_helpers import write_config

from coolmix.cli import train as train_cmd
from coolmix.cli.__main__ import main
from coolmix.train import read_records


def test_cli_module_protocol_and_lazy_torch():
    assert isinstance(train_cmd.HELP, str) and "\n" not in train_cmd.HELP
    assert callable(train_cmd.add_arguments) and callable(train_cmd.run)
    source = Path(train_cmd.__file__).read_text(encoding="utf-8")
    assert "\nimport torch" not in source and "\nfrom coolmix.train" not in source  # imported inside run()


def test_train_with_overrides_then_resume(tmp_path, lm_config, capsys):
    config = write_config(lm_config(), tmp_path / "tiny.toml")
    out = tmp_path / "run"
    argv = [
        "train",
        str(config),
        "--out",
        str(out),
        "--quiet",
        "--set",
        "run.total_steps=2",
        "--set",
        "run.eval_every=2",
    ]
    assert main(argv) == 0
    assert [r["step"] for r in read_records(out)] == [2]
    table = capsys.readouterr().out
    assert "dev loss" in table and "sw" in table
    assert main([*argv, "--resume"]) == 0  # finished: returns its final record
    assert len(read_records(out)) == 1


def test_bad_input_is_one_line_and_exit_2(tmp_path, lm_config, capsys):
    config = write_config(lm_config(), tmp_path / "tiny.toml")
    assert main(["train", str(config), "--out", str(tmp_path / "x"), "--set", "run.total_steps=-3"]) == 2
    err = capsys.readouterr().err
    assert err == "coolmix: error: run.total_steps=-3: must be an integer >= 1\n"
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--resume", "--set KEY=VALUE", "torchrun --nproc_per_node=2 -m coolmix train"):
        assert flag in text
