"""Config files (TOML; YAML accepted) -> plain dicts -> frozen dataclasses, with dotted overrides.

Validation happens once, here and in constructors; every problem is a `ConfigError` naming the
dotted field and the value. Components keep their defaults beside them (dataclass fields);
`build` checks types and unknown keys recursively so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from coolmix.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["apply_overrides", "build", "dump_toml", "load_file", "parse_value", "to_dict"]

T = TypeVar("T")


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file into a dict; JSON also works."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("config", str(p), "file not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except Exception as e:  # parser errors differ per format; all mean the same to the user
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError("config", str(p), f"cannot parse: {msg}") from None
    if not isinstance(data, dict):
        raise ConfigError("config", str(p), "top level must be a table/mapping")
    try:
        json.dumps(data, default=str)  # YAML anchors can build self-referencing structures
    except ValueError:
        raise ConfigError(
            "config", str(p), "recursive (self-referencing) structure, e.g. a YAML anchor cycle"
        ) from None
    return data


def parse_value(text: str) -> Any:
    """An override's value: TOML syntax where it parses (3, 0.5, true, "x", [1, 2]), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a nested dict (returns a new dict).

    >>> apply_overrides({"sampler": {"seed": 0}}, ["sampler.seed=3", "run.name=x"])
    {'sampler': {'seed': 3}, 'run': {'name': 'x'}}
    """
    out = _deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError("override", item, "expected key.path=value")
        key, raw = item.split("=", 1)
        parts = [k for k in key.strip().split(".") if k]
        if not parts:
            raise ConfigError("override", item, "empty key")
        node = out
        for k in parts[:-1]:
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise ConfigError("override", item, f"{k!r} is not a table")
            node = nxt
        node[parts[-1]] = parse_value(raw.strip())
    return out


def _deepcopy(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _deepcopy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_deepcopy(v) for v in x]
    return x


def build(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Construct dataclass ``cls`` from a mapping: recursive, type-checked, unknown keys rejected.

    Field types supported: bool, int, float, str, Literal, Optional, tuple/list of those,
    dict[str, X], nested dataclasses, and ``Any`` (passed through). Constructors may validate
    further (raise ConfigError themselves).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(prefix or cls.__name__, data, "expected a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            _join(prefix, unknown[0]), data[unknown[0]], f"unknown key; expected one of {', '.join(fields)}"
        )
    kwargs = {k: _coerce(hints[k], v, _join(prefix, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(prefix or cls.__name__, dict(data), str(e)) from None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _coerce(tp: Any, value: Any, field: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, field)
            except ConfigError as e:
                errors.append(e.why)
        raise ConfigError(field, value, " / ".join(errors) or "invalid value")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(field, value, f"must be one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, field)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(field, value, "must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(field, value, "must be an integer")
        return value
    if tp is float:
        if isinstance(value, str) and value in ("inf", "+inf"):
            return math.inf
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(field, value, "must be a number")
        if math.isnan(value):
            raise ConfigError(field, value, "must not be NaN")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(field, value, "must be a string")
        return value
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(field, value, "must be a list")
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{field}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(field, value, "must be a table")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(vt, v, f"{field}.{k}") for k, v in value.items()}
    return value


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain JSON/TOML-able dict; values with a ``to_dict`` method use it."""
    if not isinstance(obj, type) and callable(getattr(obj, "to_dict", None)):
        return obj.to_dict()  # schedules and distributions serialise themselves
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, float) and math.isinf(obj):
        return "inf"
    return obj


def dump_toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for resolved configs (tables, scalars, lists, inline tables)."""
    lines: list[str] = []
    _dump_table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return '"inf"' if isinstance(v, float) and math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if v is None:
        return '"none"'
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    return json.dumps(str(v))


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _dump_table(data: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping) or not v}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping) and v}
    if path and scalars:
        lines.append(f"\n[{'.'.join(_key(p) for p in path)}]")
    for k, v in scalars.items():
        if v is None:
            continue
        lines.append(f"{_key(k)} = {_scalar(v)}")
    for k, v in tables.items():
        _dump_table(v, [*path, k], lines)
