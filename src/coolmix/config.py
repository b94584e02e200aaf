"""Config files (TOML; YAML accepted) -> plain dicts -> frozen dataclasses, with dotted overrides.

Validation happens once, here and in constructors; every problem is a `ConfigError` naming the
dotted field and the value. Components keep their defaults beside them (dataclass fields);
`build` checks types and unknown keys recursively so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from coolmix.errors import ConfigError

try:
    import tomllib  # pyright: ignore[reportMissingImports]  (3.11+; tomli below on 3.10)
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "apply_overrides",
    "build",
    "check_path",
    "dump_toml",
    "kind_fields",
    "load_file",
    "parse_value",
    "read_text",
    "to_dict",
]

T = TypeVar("T")


MAX_NAME_BYTES = 255
"""Longest path component (file or directory name) POSIX file systems accept, in bytes."""

MAX_NODES = 100_000
"""Most values a config may expand to; YAML aliases (``*a``) count once per use (alias bombs)."""

MAX_DEPTH = 64
"""Deepest nesting of tables and lists a config may have."""


def check_path(field: str, path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, refused with one line when a component is longer than the file system allows.

    >>> check_path("out", "x" * 300)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    coolmix.errors.ConfigError: out='xxx...: a path component is 300 bytes long; the limit is 255
    """
    p = Path(path)
    for part in p.parts:
        n = len(os.fsencode(part))
        if n > MAX_NAME_BYTES:
            why = f"a path component is {n} bytes long; the limit is {MAX_NAME_BYTES}"
            raise ConfigError(field, str(p), why)
    return p


def read_text(field: str, path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of a user-named file; missing, not a regular file, unreadable or not UTF-8 -> one
    ConfigError. A link the user named is followed, but a FIFO or device it leads to is refused
    (reading one would block or never end). A leading byte-order mark is dropped. ``field`` is what
    the user wrote (``config``, ``run_dir``).
    """
    from coolmix.fileio import read_bytes

    p = check_path(field, path)
    try:
        data = read_bytes(p, field, follow=True)
    except FileNotFoundError:
        raise ConfigError(field, str(p), "file not found") from None
    except OSError as e:
        raise ConfigError(field, str(p), f"cannot read: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            field, str(p), f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file into a dict; JSON also works.

    Refused with one `ConfigError` naming ``config``: a missing, unreadable or non-UTF-8 file, a
    parse error, a top level that is not a table, a self-referencing structure, and a document
    that expands to more than `MAX_NODES` values or nests deeper than `MAX_DEPTH` (a YAML alias
    bomb is caught while it is still a small graph of shared nodes, before anything walks it).
    """
    p = Path(path)
    text = read_text("config", p)
    try:
        if p.suffix in (".yaml", ".yml"):
            data = _load_yaml(text)
        elif p.suffix == ".json":
            data = json.loads(text, object_pairs_hook=_json_object)
        else:
            data = tomllib.loads(text)
    except _BadKey as e:
        raise ConfigError("config", str(p), str(e)) from None
    except Exception as e:  # parser errors differ per format; all mean the same to the user
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError("config", str(p), f"cannot parse: {msg}") from None
    if not isinstance(data, dict):
        raise ConfigError("config", str(p), "top level must be a table/mapping")
    why = _structure_problem(data)
    if why:
        raise ConfigError("config", str(p), why)
    return data


class _BadKey(Exception):
    """A mapping key that would silently change meaning: not a string, or given twice."""


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses non-string and duplicate keys (TOML refuses both by itself).

    YAML 1.1 reads ``no: 5`` as ``{False: 5}`` and keeps the last of two equal keys; either would
    turn a config into another one without a word, so both are refused, naming the key as written.
    """
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:  # keys written here; a merge (<<) may be overridden
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = _key(loader, key_node)
            if key in seen:
                raise _BadKey(f"key {key!r} is given twice (again on line {key_node.start_mark.line + 1})")
            seen.add(key)
        loader.flatten_mapping(node)
        return {
            _key(loader, k): loader.construct_object(v, deep=True)  # pyright: ignore[reportArgumentType]
            for k, v in node.value
        }

    def _key(loader: yaml.SafeLoader, key_node: Any) -> str:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            written = getattr(key_node, "value", key)
            raise _BadKey(
                f"key {written!r} (line {key_node.start_mark.line + 1}) is read as the "
                f"{type(key).__name__} {key!r}, not a string; quote it"
            )
        return key

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=_Loader)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects with a key given twice are refused (``json`` keeps the last one silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BadKey(f"key {key!r} is given twice")
        out[key] = value
    return out


def _structure_problem(data: Any) -> str | None:
    """Why ``data`` is unsafe to walk (cycle, too many expanded values, too deep), or None.

    Sizes are memoised by object identity, so a shared (aliased) subtree is measured once however
    often it is used: O(distinct nodes), even for 10**9 expanded values.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(x: Any, depth: int) -> int:
        if not isinstance(x, (dict, list)):
            return 1
        if depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
        key = id(x)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _Refused("recursive (self-referencing) structure, e.g. a YAML anchor cycle")
        active.add(key)
        total = 1
        for v in x.values() if isinstance(x, dict) else x:
            total += size(v, depth + 1)
            if total > MAX_NODES:
                raise _Refused(f"expands to more than {MAX_NODES:,} values (a YAML alias bomb?)")
        active.discard(key)
        sizes[key] = total
        return total

    try:
        size(data, 0)
    except _Refused as e:
        return str(e)
    return None


class _Refused(Exception):
    pass


def parse_value(text: str) -> Any:
    """An override's value: TOML syntax where it parses (3, 0.5, true, "x", [1, 2]), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return text


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a nested dict (returns a new dict).

    An override of a table's ``kind`` that changes it (``schedule.kind=unimax_dynamic`` on a
    cooldown) drops the keys the new kind does not take and warns (``coolmix`` logger), so the
    old kind's ``hot``/``cold``/``at`` cannot fail the new one; later overrides can set its keys.

    >>> apply_overrides({"sampler": {"seed": 0}}, ["sampler.seed=3", "run.name=x"])
    {'sampler': {'seed': 3}, 'run': {'name': 'x'}}
    """
    if isinstance(overrides, (str, bytes)) or not isinstance(overrides, Sequence):
        raise ConfigError("overrides", overrides, "must be a list of 'key.path=value' strings")
    out = _deepcopy(config)
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError("override", item, "expected key.path=value")
        key, raw = item.split("=", 1)
        parts = [k.strip() for k in key.strip().split(".")]
        if not key.strip() or any(not k for k in parts):
            raise ConfigError("override", item, "empty key (expected key.path=value)")
        node = out
        for i, k in enumerate(parts[:-1]):
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(where, nxt, f"is not a table, so {key.strip()} cannot be set")
            node = nxt
        value = parse_value(raw.strip())
        if parts[-1] == "kind":
            _drop_other_kinds_keys(node, value, ".".join(parts[:-1]))
        node[parts[-1]] = value
    return out


def _drop_other_kinds_keys(table: dict[str, Any], new_kind: Any, where: str) -> None:
    """Before ``table["kind"] = new_kind``: remove keys only the old kind takes, with a warning."""
    old = table.get("kind")
    if old is None or old == new_kind or not isinstance(new_kind, str):
        return
    keep = kind_fields(new_kind)
    if keep is None:
        return  # unknown kind: validation names it
    dropped = [k for k in table if k != "kind" and k not in keep]
    for k in dropped:
        del table[k]
    if dropped:
        logging.getLogger("coolmix").warning(
            f"{where}.kind: {old!r} -> {new_kind!r} dropped {', '.join(dropped)} "
            f"({new_kind!r} takes {', '.join(sorted(keep)) or 'no other keys'})"
        )


def kind_fields(kind: str) -> frozenset[str] | None:
    """The config keys a schedule or distribution ``kind`` takes (None when no such kind exists).

    Read from the registries: a kind's ``fields()`` where it has one, else the parameters of its
    constructor, so a new kind needs no entry here.
    """
    from coolmix.distributions import DISTRIBUTIONS
    from coolmix.schedules import SCHEDULES

    for registry in (SCHEDULES, DISTRIBUTIONS):
        factory = registry.get(kind)
        if factory is None:
            continue
        names = getattr(factory, "fields", None)
        if callable(names):
            found = set(typing.cast("Iterable[str]", names()))
        else:
            found = {
                p.name
                for p in inspect.signature(factory).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            }
        if kind == "constant":
            found |= {"dist", "tau", "alpha"}  # a constant schedule accepts a bare τ
        if registry is DISTRIBUTIONS:
            found |= {"tau", "alpha"} if kind == "temperature" else set()
        return frozenset(found)
    return None


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
        return build(typing.cast(type, tp), value, field)
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
        try:
            number = float(value)
        except OverflowError:  # an integer literal beyond the largest float
            raise ConfigError(field, value, "too large for a number (the limit is about 1.8e308)") from None
        if math.isnan(number):
            raise ConfigError(field, value, "must not be NaN")
        return number
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
