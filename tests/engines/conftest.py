"""Tests against the real engines (megatron-core, grain, torchtitan), installed by the ``engines`` extra.

Each test module skips itself, with the reason, when its engine is not importable; CI installs the
pinned versions into .venv-engines and runs this folder there (.ci/run).
"""

from __future__ import annotations

import warnings

# megatron-core and its dependencies warn at import about optional accelerators (no GPU here)
warnings.filterwarnings("ignore", message=r".*(apex|transformer_engine|Transformer Engine|jax).*")
