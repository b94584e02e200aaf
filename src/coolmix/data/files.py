"""User data: per-language text/TSV files (``files``) or one JSONL with a ``lang`` field (``jsonl``).

LM: one example per line (``files``) or ``{"lang", "text"}`` records. MT: ``source<TAB>target``
lines or ``{"lang", "src", "tgt"}`` records. Dev and test are given as files (capped at
``dev_size``/``test_size`` lines when those are numbers) or carved out of train deterministically,
keyed by text (LM) or source (MT), so a repeated line or source never straddles two splits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coolmix.data.corpus import Corpus, CorpusSpec, Example, Task
from coolmix.data.manifest import sha256_bytes
from coolmix.data.splits import carve, make_corpus
from coolmix.errors import ConfigError
from coolmix.fileio import read_bytes

__all__ = ["FILES_OPTIONS", "JSONL_OPTIONS", "load_files", "load_jsonl"]

FILES_OPTIONS: dict[str, Any] = {"task": "lm", "train": None, "dev": None, "test": None, "split_seed": 0}
"""``train``/``dev``/``test``: {lang: path}; dev and test are optional (both or neither)."""
JSONL_OPTIONS: dict[str, Any] = {"task": None, "train": None, "dev": None, "test": None, "split_seed": 0}
"""``train``/``dev``/``test``: one JSONL path each; ``task`` is inferred from the records if None."""

Keyed = list[tuple[str, Example]]


def _read(field: str, path: object) -> tuple[list[str], str]:
    """Lines of a UTF-8 file and its sha256; ConfigError naming the option if missing, not a regular
    file (a FIFO or the zero device would block or never end) or undecodable."""
    if not isinstance(path, (str, Path)):
        raise ConfigError(field, path, "must be a file path")
    try:  # a link the user wrote is followed; a FIFO, device or directory is refused, never read
        data = read_bytes(Path(path).expanduser(), field, follow=True)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(field, str(path), "file not found") from None
    except OSError as e:
        raise ConfigError(field, str(path), f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(field, str(path), f"not UTF-8 (byte {e.start})") from None
    return text.splitlines(), sha256_bytes(data)


def _parse_line(field: str, where: str, line: str, task: Task) -> tuple[str, Example] | None:
    line = line.strip()
    if not line:
        return None
    if task == "lm":
        return line, line
    parts = [p.strip() for p in line.split("\t")]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ConfigError(field, where, "expected 'source<TAB>target' with both sides non-empty")
    return parts[0], (parts[0], parts[1])


def _split_seed(spec: CorpusSpec) -> int:
    seed = spec.options.get("split_seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError("options.split_seed", seed, "must be an integer")
    return seed


def _task(value: object) -> Task:
    if value not in ("lm", "mt"):
        raise ConfigError("options.task", value, "expected 'lm' or 'mt'")
    return value  # type: ignore[return-value]


def _given_splits(spec: CorpusSpec) -> tuple[str, ...]:
    given = tuple(s for s in ("dev", "test") if spec.options.get(s) is not None)
    if len(given) == 1:
        raise ConfigError(f"options.{given[0]}", spec.options[given[0]], "give both dev and test, or neither")
    if not given and (spec.dev_size is None or spec.test_size is None):
        field = "dev_size" if spec.dev_size is None else "test_size"
        raise ConfigError(field, None, "needs a number when dev/test are carved out of train")
    return given


def _assemble(
    spec: CorpusSpec, task: Task, per_split: Mapping[str, Mapping[str, Keyed]], source: dict[str, Any]
) -> Corpus:
    """Carve dev/test out of train if not given, else cap the given ones; then subsample train."""
    for split, per_lang in per_split.items():
        for lang in spec.langs:
            if not per_lang.get(lang):
                raise ConfigError("langs", lang, f"no {split} examples for this language")
    per_split = {
        split: {lang: per_lang[lang] for lang in spec.langs} for split, per_lang in per_split.items()
    }
    if "dev" not in per_split:
        splits, dropped = carve(per_split["train"], spec.dev_size, spec.test_size, _split_seed(spec))
        source["heldout_dropped"] = dropped
    else:
        splits = {"train": per_split["train"]}
        for split, cap in (("dev", spec.dev_size), ("test", spec.test_size)):
            splits[split] = {lang: list(per_split[split][lang][:cap]) for lang in spec.langs}
    return make_corpus(spec, task, splits, source, exact=False)


def load_files(spec: CorpusSpec, root: Path) -> Corpus:
    """One file per language and split: LM text (a line per example) or MT ``src<TAB>tgt``."""
    task = _task(spec.options.get("task", "lm"))
    train = spec.options.get("train")
    if not isinstance(train, Mapping) or not train:
        raise ConfigError("options.train", train, "must map language -> file path")
    if not spec.langs:
        spec = spec.with_langs(list(train))
    per_split: dict[str, dict[str, Keyed]] = {}
    checksums: dict[str, str] = {}
    for split in ("train", *_given_splits(spec)):
        paths = spec.options[split]
        if not isinstance(paths, Mapping):
            raise ConfigError(f"options.{split}", paths, "must map language -> file path")
        per_split[split] = {}
        for lang in spec.langs:
            field = f"options.{split}.{lang}"
            if lang not in paths:
                raise ConfigError(field, None, "no file for this language")
            lines, checksums[str(paths[lang])] = _read(field, paths[lang])
            rows = (_parse_line(field, f"{paths[lang]}:{i}", ln, task) for i, ln in enumerate(lines, 1))
            per_split[split][lang] = [r for r in rows if r is not None]
    return _assemble(spec, task, per_split, {"files": checksums})


def _record(
    field: str, where: str, line: str, task: Task | None
) -> tuple[str, Task, tuple[str, Example]] | None:
    if not line.strip():
        return None
    try:
        rec = json.loads(line)
    except ValueError as e:
        raise ConfigError(field, where, f"invalid JSON: {e.msg}") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("lang"), str):
        raise ConfigError(field, where, 'each record needs a "lang" string')
    found: Task = "lm" if "text" in rec else "mt"
    task = task or found
    keys = ("text",) if task == "lm" else ("src", "tgt")
    vals = [rec.get(k) for k in keys]
    if not all(isinstance(v, str) and v.strip() for v in vals):
        raise ConfigError(field, where, f"{task} records need non-empty string fields {list(keys)}")
    vals = [v.strip() for v in vals]
    return rec["lang"], task, (vals[0], vals[0] if task == "lm" else (vals[0], vals[1]))


def load_jsonl(spec: CorpusSpec, root: Path) -> Corpus:
    """JSONL records ``{"lang", "text"}`` (LM) or ``{"lang", "src", "tgt"}`` (MT), one file per split."""
    task: Task | None = spec.options.get("task")
    if task is not None:
        task = _task(task)
    if spec.options.get("train") is None:
        raise ConfigError("options.train", None, "must be a JSONL file path")
    per_split: dict[str, dict[str, Keyed]] = {}
    checksums: dict[str, str] = {}
    given = _given_splits(spec)
    for split in ("train", *given):
        field, path = f"options.{split}", spec.options[split]
        lines, checksums[str(path)] = _read(field, path)
        per_lang: dict[str, Keyed] = {}
        for i, line in enumerate(lines, 1):
            rec = _record(field, f"{path}:{i}", line, task)
            if rec is not None:
                lang, task, item = rec
                per_lang.setdefault(lang, []).append(item)
        per_split[split] = per_lang
    if not spec.langs:
        spec = spec.with_langs(list(per_split["train"]))
        if not spec.langs:
            raise ConfigError("options.train", spec.options["train"], "no records")
    return _assemble(spec, task or "lm", per_split, {"files": checksums})
