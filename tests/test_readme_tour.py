"""The README tour's "Next" block (resume, more GPUs, per-domain results) runs as written."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- tests/test_readme_tour.py runs this block -->"


def tour_block() -> str:
    text = (ROOT / "README.md").read_text()
    assert text.count(MARK) == 1, "the README marks exactly one block for this test"
    after = text.split(MARK, 1)[1].lstrip("\n")
    assert after.startswith("```python\n")
    return after[len("```python\n") :].split("\n```", 1)[0]


def test_the_next_steps_block_runs_and_asserts():
    code = tour_block()
    assert code.count("assert ") >= 3  # each claim of the block is checked by the block itself
    namespace: dict = {}
    exec(compile(code, "README.md:next", "exec"), namespace)
    assert set(namespace["w_300"]) == {"en", "it", "zh", "sw"}
