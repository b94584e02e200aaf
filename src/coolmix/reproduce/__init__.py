"""`coolmix reproduce`: Li et al. (2025)'s experiments at CPU scale on real data, with a claims report.

Layers: `specs` (declarative experiments and presets), `methods` (balancing method → trainer
config), `runner` (runs and caches by config hash), `theory` (Theorems 1–3 and variance
measurements), `claims` (verdicts), `tables`/`plots`/`report` (the output folder).
Nothing in the library imports this package.
"""
