"""Recompute theory.json of a finished preset directory (runs cached; preset.json untouched)."""

import json
import sys
from pathlib import Path

from coolmix.reproduce.pipeline import compute_theory
from coolmix.reproduce.runner import run_preset
from coolmix.reproduce.specs import preset

name, out = sys.argv[1], Path(sys.argv[2])
p = preset(name)
results = run_preset(p, out, workers=0)
assert all(r.cached for r in results.values()), "not every run is finished"
theory = compute_theory(p, out, results, force=True)
(out / "theory.json").write_text(json.dumps(theory, indent=1, default=str))
print("theory rewritten")
