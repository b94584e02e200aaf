"""Hostile fuzz of the config layer: file text, dict mutations and ``a.b=value`` overrides.

Every input builds a config (whose plan is finite) or raises one ConfigError that names the
field the user wrote (the mutated or overridden key).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

from fuzz_harness import fuzzer, run_api
from fuzz_strategies import hostile, override_values
from hypothesis import strategies as st

from coolmix.config import apply_overrides
from coolmix.mixconfig import load_plan_config, plan_config_from_dict

BASE = {
    "mixture": {"sizes": {"en": 2733, "it": 162, "zh": 39, "sw": 1}, "unit": "examples"},
    "schedule": {"kind": "cooldown", "hot": 5, "cold": 1, "at": 0.5},
    "run": {"total_steps": 100, "batch_size": 16, "world_size": 4, "max_epochs": 50},
}
FIELDS = [
    ("mixture", "sizes", "en"), ("mixture", "sizes", "sw"), ("mixture", "unit"),
    ("mixture", "tokens_per_example"), ("schedule", "kind"), ("schedule", "hot"), ("schedule", "cold"),
    ("schedule", "at"), ("run", "total_steps"), ("run", "batch_size"), ("run", "world_size"),
    ("run", "seed"), ("run", "composition"), ("run", "max_epochs"),
]  # fmt: skip


def _plan_is_finite(cfg) -> str | None:
    from fuzz_harness import all_finite

    plan = cfg.plan(max_simulated_steps=20, segments=2)
    return None if all_finite(plan.to_dict()) else "plan has non-finite numbers"


def _build_and_plan(data):
    cfg = plan_config_from_dict(data)
    why = _plan_is_finite(cfg)
    if why:
        return float("nan")  # makes run_api count it as silent
    return cfg


mutate_case = st.tuples(st.sampled_from(FIELDS), hostile)


@fuzzer("config.mutate", mutate_case, fast=60, slow=300)
def _mutate(case):
    path, value = case
    data = json.loads(json.dumps(BASE))
    node = data
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    run_api("config.mutate", _build_and_plan, data, expect_field=path[-1], finite=False)


test_mutate_fast, test_mutate_slow = _mutate

override_case = st.tuples(st.sampled_from(FIELDS), override_values)


@fuzzer("config.override", override_case, fast=60, slow=300)
def _override(case):
    path, text = case
    item = f"{'.'.join(path)}={text}"

    def build():
        return _build_and_plan(apply_overrides(BASE, [item]))

    run_api("config.override", build, expect_field=path[-1], finite=False)


test_override_fast, test_override_slow = _override

text_case = st.tuples(
    st.sampled_from([".toml", ".yaml", ".yml", ".json"]),
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                "mixture: &x [*x]\n",
                "a: &a [1]\nb: &b [*a, *a]\nmixture: *b\n",
                "mixture: !!python/object:os.system {}\n",
                "[mixture]\nsizes = {en = 1e400}\n",
                '{"mixture": {"sizes": {"en": NaN}}}',
                "\ufeff[mixture]\n",
                "[run]\ntotal_steps = 99999999999999999999999999\n",
            ]
        ),
    ),
    st.booleans(),  # write as UTF-8 (True) or as latin-1 with a stray byte (False)
)


@fuzzer("config.text", text_case, fast=60, slow=300)
def _text(case):
    suffix, text, utf8 = case
    fd, name = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(
                text.encode("utf-8", "surrogatepass") if utf8 else text.encode("latin-1", "replace") + b"\xff"
            )
        run_api("config.text", load_plan_config, name, finite=False)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


test_text_fast, test_text_slow = _text

TRAIN_BASE = {
    "data": {"name": "bible", "langs": ["en", "sw"], "ratios": {"en": 3, "sw": 1}, "max_train": 100},
    "run": {"total_steps": 10},
}
TRAIN_FIELDS = [
    ("run", "total_steps"), ("run", "batch_size"), ("run", "seed"), ("run", "lr"), ("run", "threads"),
    ("run", "keep"), ("balance", "sample"), ("balance", "target"), ("balance", "reduction"),
    ("data", "max_train"), ("data", "dev_size"), ("model", "n_layer"), ("model", "d_model"),
]  # fmt: skip
train_case = st.tuples(st.sampled_from(TRAIN_FIELDS), override_values)


@fuzzer("config.train", train_case, fast=40, slow=200)
def _train(case):
    from coolmix.train import load_config

    path, text = case
    item = f"{'.'.join(path)}={text}"
    run_api("config.train", load_config, TRAIN_BASE, [item], expect_field=path[-1], finite=False)


test_train_fast, test_train_slow = _train

# -- YAML keys that are not strings (``no`` is False, ``1`` is 1, ``~`` is None) or given twice --------

KEY_TOKENS = [
    "no", "yes", "on", "off", "y", "n", "true", "False", "null", "~", "1", "0x10", "1.5", ".inf",
    "2020-01-01", "12:30", '"no"', "'1'", "en", "sw", "run",
]  # fmt: skip
NOT_STRING = {
    "no", "yes", "on", "off", "true", "False", "null", "~", "1", "0x10", "1.5", ".inf", "2020-01-01",
}  # fmt: skip
yaml_key_case = st.tuples(
    st.sampled_from(["mixture.sizes", "top", "schedule", "run"]), st.sampled_from(KEY_TOKENS), st.booleans()
)


def _yaml_plan(where: str, token: str, twice: bool) -> str:
    """BASE as YAML with ``token: <value>`` added in table ``where`` (twice if asked)."""
    value = {"mixture.sizes": "5", "top": "{}", "schedule": "5", "run": "5"}[where]
    extra = [f"{token}: {value}"] * (2 if twice else 1)
    sizes = ", ".join(f"{k}: {v}" for k, v in BASE["mixture"]["sizes"].items())
    more = "".join(", " + e for e in extra) if where == "mixture.sizes" else ""
    lines = ["mixture:", f"  sizes: {{{sizes}{more}}}"]
    lines += ["  unit: examples", "schedule:", "  kind: cooldown", "  hot: 5", "  cold: 1", "  at: 0.5"]
    lines += [f"  {e}" for e in extra] if where == "schedule" else []
    lines += ["run:", "  total_steps: 100", "  batch_size: 16"]
    lines += [f"  {e}" for e in extra] if where == "run" else []
    lines += extra if where == "top" else []
    return "\n".join(lines) + "\n"


@fuzzer("config.yaml_keys", yaml_key_case, fast=40, slow=200)
def _yaml_keys(case):
    where, token, twice = case
    fd, name = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(_yaml_plan(where, token, twice))

    def sound(cfg) -> str | None:
        names = cfg.mixture.names
        if not all(isinstance(n, str) for n in names) or {"False", "True", "None"} & set(names):
            return f"a YAML key became the domain names {names}"
        if token in NOT_STRING or twice:
            return f"key {token!r} (twice={twice}) was accepted"
        return None

    try:
        field = token if token.isalnum() and token in NOT_STRING else None
        run_api("config.yaml_keys", load_plan_config, name, check=sound, expect_field=field, finite=False)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


test_yaml_keys_fast, test_yaml_keys_slow = _yaml_keys
