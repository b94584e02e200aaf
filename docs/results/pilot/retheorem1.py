"""Recompute only Theorem 1 in a finished directory's theory.json (steps from the preset)."""
import json, sys
from pathlib import Path
from coolmix.reproduce import theory as th
from coolmix.reproduce.specs import preset
from coolmix.train import DataCache
name, out = sys.argv[1], Path(sys.argv[2])
t = json.loads((out / "theory.json").read_text())
t["theorem1"] = th.theorem1_real(Path(t["source"]), DataCache(), steps=preset(name).theorem1_steps)
(out / "theory.json").write_text(json.dumps(t, indent=1, default=str))
print("theorem1", t["theorem1"]["steps"], t["theorem1"]["max_abs_param_diff"])
