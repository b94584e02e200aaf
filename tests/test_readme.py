"""The README's two set-up commands stay in sync with CI and with what the project ships."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0] == "```bash", "the README must open with the two set-up commands"
    end = lines.index("```", 1)
    return lines[1:end]


def test_exactly_two_setup_commands():
    cmds = setup_commands()
    assert len(cmds) == 2
    assert cmds[0].endswith("coolmix reproduce --preset quick")
    assert "torch==2.13.0" in (ROOT / "pyproject.toml").read_text()  # '.[train]' pins the CPU build


def test_ci_runs_the_readme_test_command_verbatim():
    assert setup_commands()[1] in (ROOT / ".ci" / "run").read_text()
