"""Run the hostile fuzz suite standalone and print "cases / tracebacks / silent non-finite".

    .venv/bin/python scripts/fuzz_report.py            # the slow job's example counts
    .venv/bin/python scripts/fuzz_report.py --scale 0.2 --only api.

Same cases as ``tests/fuzz`` (derandomised hypothesis), but every outcome is counted instead of
failing at the first bad one, so a before/after pair of runs gives comparable numbers. Point
``PYTHONPATH`` at another checkout's ``src`` to measure that code with today's harness.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parents[1] / "tests" / "fuzz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every fuzzer's example count")
    parser.add_argument("--only", default="", help="run only fuzzers whose name starts with this")
    args = parser.parse_args()
    sys.path.insert(0, str(FUZZ_DIR))
    import fuzz_harness as h

    h.STRICT = False
    for module in sorted(p.stem for p in FUZZ_DIR.glob("test_fuzz_*.py")):
        importlib.import_module(module)
    import coolmix

    print(f"coolmix from {Path(coolmix.__file__).parent}", file=sys.stderr)
    for name, (_, _, slow) in sorted(h.FUZZERS.items()):
        if not name.startswith(args.only):
            continue
        t0 = time.perf_counter()
        before = h.TALLY["cases"]
        h.run_fuzzer(name, max(1, round(slow * args.scale)))
        print(
            f"{name}: {h.TALLY['cases'] - before} cases in {time.perf_counter() - t0:.1f}s", file=sys.stderr
        )
    print(h.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
