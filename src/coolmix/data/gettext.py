"""English->xx translation pairs from Debian packages' compiled gettext catalogues (MT corpus).

``apt-get download`` fetches each package's .deb into the cache; its ``*/LC_MESSAGES/*.mo``
members are streamed out of ``dpkg-deb --fsys-tarfile`` (never unpacked to disk), parsed with
the stdlib ``gettext`` reader, filtered, and written as one ``<locale>.tsv`` per locale under
``gettext/<package>/`` with a manifest (package version, counts, checksums). The .deb is then
deleted, and later loads read only the TSVs: no apt call. Sizes are natural (power-law over
languages); train/dev/test are split by English source string across all languages.
"""

from __future__ import annotations

import gettext as stdlib_gettext
import io
import logging
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coolmix.data.corpus import Corpus, CorpusSpec
from coolmix.data.manifest import (
    FORMAT_VERSION,
    build_lock,
    files_match,
    has_fields,
    read_manifest,
    replace_dir,
    write_checksummed,
    write_manifest,
)
from coolmix.data.splits import carve, make_corpus
from coolmix.errors import ConfigError

__all__ = [
    "DEFAULT_LANGS",
    "DEFAULT_PACKAGES",
    "OPTIONS",
    "clean",
    "ensure_packages",
    "load",
    "pairs_from_mo",
]

log = logging.getLogger(__name__)

DEFAULT_LANGS = ("es", "it", "gl", "hi", "fa", "kk", "ug", "ga", "am")
"""The paper's OPUS-100 one-to-many subset, with am for ha (absent here); data.md §1.2."""
WESNOTH = (
    "did",
    "dm",
    "dw",
    "ei",
    "httt",
    "l",
    "low",
    "nr",
    "sof",
    "sota",
    "sotbe",
    "thot",
    "trow",
    "tsg",
    "ttb",
    "utbs",
)
DEFAULT_PACKAGES = (
    "vlc-l10n", "gimp-data", "inkscape", "gnucash-common", "krita-l10n", "cinnamon-l10n", "libc-l10n",
    *(f"wesnoth-1.16-{c}" for c in WESNOTH),
)  # fmt: skip
"""The verified package set of data.md §1.2 (177 MB of .deb); earlier packages win duplicate sources."""

OPTIONS: dict[str, Any] = {
    "packages": list(DEFAULT_PACKAGES),
    "min_words": 3,
    "max_words": 80,
    "split_seed": 0,
}

_LOCALE_DIR = re.compile(r"(?:^|/)([^/]+)/LC_MESSAGES/[^/]+\.mo$")
_LOCALE = re.compile(r"^[a-z]{2,3}(_[A-Za-z0-9]+)?(@[A-Za-z0-9]+)?$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_NOT_FOUND = re.compile(r"Unable to locate package (\S+)|No packages found for '?([^'\s]+)")


def clean(text: str) -> str:
    """Drop ``&``/``_`` accelerator marks and collapse whitespace (tabs and newlines too)."""
    return " ".join(text.replace("&", "").replace("_", "").split())


def pairs_from_mo(data: bytes, min_words: int, max_words: int) -> dict[str, str]:
    """English msgid -> translation from one .mo file, filtered; ConfigError-free (raises OSError/ValueError).

    Keeps entries with a non-empty translation that differs from the source, ``min_words`` to
    ``max_words`` English words and no markup (``<``) in the source. Plurals keep form 0;
    message contexts are dropped. (.mo files hold no fuzzy entries: msgfmt leaves them out.)
    """
    catalog = stdlib_gettext.GNUTranslations(io.BytesIO(data))._catalog  # type: ignore[attr-defined]
    pairs: dict[str, str] = {}
    for key, value in catalog.items():
        if isinstance(key, tuple):
            key, form = key
            if form != 0:
                continue
        msgid = key.rsplit("\x04", 1)[-1]
        if not msgid or "<" in msgid:
            continue
        src, tgt = clean(msgid), clean(value)
        if tgt and src != tgt and min_words <= len(src.split()) <= max_words:
            pairs.setdefault(src, tgt)
    return pairs


def _locale(member: str) -> str | None:
    m = _LOCALE_DIR.search(member)
    if m is None:
        return None
    loc = m.group(1)
    return None if loc == "en" or loc.startswith(("en_", "en@")) else loc


def _run(cmd: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(
            "corpus",
            "gettext",
            f"{name} not found: the gettext corpus needs a Debian/Ubuntu system (apt, dpkg)",
        )
    return path


def download(packages: Sequence[str], dest: Path) -> dict[str, Path]:
    """``apt-get download`` the packages into ``dest`` (``apt-get update`` once, only on failure)."""
    apt = _tool("apt-get")
    cmd = [apt, "-q", "-o", "APT::Sandbox::User=root", "download", *packages]
    res = _run(cmd, cwd=dest)
    if res.returncode != 0:
        log.info("apt-get download failed; running apt-get update and retrying")
        _run([apt, "-qq", "update"])
        res = _run(cmd, cwd=dest)
    if res.returncode != 0:
        missing = [a or b for a, b in _NOT_FOUND.findall(res.stderr)]
        lines = (
            [ln for ln in res.stderr.splitlines() if ln.startswith("E:")] or res.stderr.splitlines() or ["?"]
        )
        raise ConfigError(
            "options.packages", missing[0] if missing else list(packages), f"apt-get: {lines[-1]}"
        )
    debs = {}
    for deb in dest.glob("*.deb"):
        debs[_control(deb)["Package"]] = deb
    absent = [p for p in packages if p not in debs]
    if absent:
        raise ConfigError("options.packages", absent[0], "apt-get download produced no .deb for it")
    return debs


def _control(deb: Path) -> dict[str, str]:
    res = _run([_tool("dpkg-deb"), "-f", str(deb), "Package", "Version"])
    if res.returncode != 0:
        raise ConfigError("deb", str(deb), f"corrupt package: {res.stderr.strip() or 'dpkg-deb -f failed'}")
    return dict(line.split(": ", 1) for line in res.stdout.splitlines() if ": " in line)


def mo_members(deb: Path) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every regular ``*/LC_MESSAGES/*.mo`` file in the .deb, streamed."""
    cmd = [_tool("dpkg-deb"), "--fsys-tarfile", str(deb)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None  # invariant of stdout=PIPE
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and _LOCALE_DIR.search(member.name):
                    f = tar.extractfile(member)
                    if f is not None:
                        yield member.name, f.read()
    except tarfile.TarError as e:
        raise ConfigError("deb", str(deb), f"corrupt package archive: {e}") from None
    finally:
        proc.stdout.close()
        code = proc.wait()
    if code != 0:
        raise ConfigError("deb", str(deb), f"corrupt package archive: dpkg-deb exit status {code}")


def build_package(deb: Path, out: Path, filt: Mapping[str, int]) -> dict[str, Any]:
    """Parse one .deb into ``out/<locale>.tsv`` files plus manifest (written last); return it."""
    t0 = time.perf_counter()
    control = _control(deb)
    per_locale: dict[str, dict[str, str]] = {}
    skipped: list[str] = []
    for path, data in sorted(mo_members(deb)):
        loc = _locale(path)
        if loc is None:
            continue
        try:
            pairs = pairs_from_mo(data, filt["min_words"], filt["max_words"])
        except (OSError, ValueError, LookupError, UnicodeError) as e:  # one bad catalogue is not fatal
            skipped.append(f"{path}: {type(e).__name__}")
            continue
        bucket = per_locale.setdefault(loc, {})
        for src, tgt in pairs.items():
            bucket.setdefault(src, tgt)
    if not per_locale:
        log.warning("%s has no gettext catalogues (*/LC_MESSAGES/*.mo)", control["Package"])
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        langs = {}
        for loc, pairs in sorted(per_locale.items()):
            if pairs:
                text = "".join(f"{s}\t{t}\n" for s, t in pairs.items())
                digest = write_checksummed(tmp / f"{loc}.tsv", text)
                langs[loc] = {"file": f"{loc}.tsv", "pairs": len(pairs), "sha256": digest}
        manifest = {
            "format": FORMAT_VERSION,
            "package": control["Package"],
            "version": control["Version"],
            "filter": dict(filt),
            "deb_bytes": deb.stat().st_size,
            "langs": langs,
            "skipped": skipped,
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
        write_manifest(tmp, manifest)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


_FIELDS = {
    "package": str,
    "version": str,
    "filter": dict,
    "deb_bytes": int,
    "langs": dict,
    "skipped": list,
    "build_seconds": (int, float),
}
_LANG_FIELDS = {"file": str, "pairs": int, "sha256": str}


def _fresh(out: Path, pkg: str, filt: Mapping[str, int], langs: Sequence[str]) -> dict[str, Any] | None:
    """The package's manifest if it vouches for a build with this filter (else None: rebuild)."""
    m = read_manifest(out)
    if m is not None and not (
        has_fields(m, _FIELDS)
        and all(has_fields(e, _LANG_FIELDS) for e in m["langs"].values())
        and has_fields({"d": m.get("download_seconds", 0)}, {"d": (int, float)})
    ):
        log.warning("gettext cache manifest %s has unexpected content; rebuilding", out / "manifest.json")
        return None
    if m is None or m.get("package") != pkg or m.get("filter") != dict(filt):
        return None
    sums = {m["langs"][lang]["file"]: m["langs"][lang]["sha256"] for lang in langs if lang in m["langs"]}
    return m if files_match(out, sums) else None


def ensure_packages(
    packages: Sequence[str], root: Path, filt: Mapping[str, int], langs: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Manifests of every package, building (one ``apt-get download`` call) those missing or stale."""
    base = root / "gettext"
    base.mkdir(parents=True, exist_ok=True)
    with build_lock(root, "gettext"):
        found = {p: _fresh(base / p, p, filt, langs) for p in packages}
        todo = [p for p, m in found.items() if m is None]
        if todo:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(dir=base, prefix=".debs.") as tmp:
                debs = download(todo, Path(tmp))
                fetched = time.perf_counter() - t0
                total = sum(d.stat().st_size for d in debs.values()) or 1
                for pkg in todo:
                    found[pkg] = m = build_package(debs[pkg], base / pkg, filt)
                    m["download_seconds"] = round(
                        fetched * m["deb_bytes"] / total, 3
                    )  # share of one apt call
                    write_manifest(base / pkg, m)
                    debs[pkg].unlink()  # the .deb is not needed once its catalogues are parsed
            log.info("built gettext %s in %.1fs", ",".join(todo), time.perf_counter() - t0)
    return {p: m for p, m in found.items() if m is not None}


def _options(spec: CorpusSpec) -> tuple[list[str], dict[str, int], int]:
    packages = spec.options.get("packages", OPTIONS["packages"])
    if isinstance(packages, str):
        packages = [packages]
    if not isinstance(packages, Sequence) or not packages:
        raise ConfigError("options.packages", packages, "must be a non-empty list of Debian package names")
    for p in packages:
        if not isinstance(p, str) or not _PACKAGE.match(p):
            raise ConfigError("options.packages", p, "not a Debian package name")
    filt = {k: spec.options.get(k, OPTIONS[k]) for k in ("min_words", "max_words")}
    for k, v in filt.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"options.{k}", v, "must be an integer >= 1")
    if filt["min_words"] > filt["max_words"]:
        raise ConfigError("options.min_words", filt["min_words"], f"exceeds max_words={filt['max_words']}")
    split_seed = spec.options.get("split_seed", OPTIONS["split_seed"])
    if not isinstance(split_seed, int) or isinstance(split_seed, bool):
        raise ConfigError("options.split_seed", split_seed, "must be an integer")
    return list(dict.fromkeys(packages)), filt, split_seed


def _check_langs(langs: Sequence[str]) -> None:
    for lang in langs:
        if lang == "en" or lang.startswith(("en_", "en@")):
            raise ConfigError("langs", lang, "English is the source side; list target languages only")
        if not _LOCALE.match(lang):
            raise ConfigError("langs", lang, "not a gettext locale name (like es, pt_BR, sr@latin)")


def _read_pairs(path: Path) -> Iterator[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            src, tgt = line.rstrip("\n").split("\t", 1)
            yield src, tgt


def load(spec: CorpusSpec, root: Path) -> Corpus:
    """Build (if needed) and split the gettext en->xx corpus for ``spec``."""
    if not spec.langs:
        spec = spec.with_langs(DEFAULT_LANGS)
    if spec.dev_size is None or spec.test_size is None:
        raise ConfigError(
            "dev_size" if spec.dev_size is None else "test_size", None, "gettext needs a number"
        )
    _check_langs(spec.langs)
    packages, filt, split_seed = _options(spec)
    manifests = ensure_packages(packages, root, filt, spec.langs)
    examples: dict[str, list[tuple[str, tuple[str, str]]]] = {}
    files: dict[str, str] = {}
    for lang in spec.langs:
        pairs: dict[str, str] = {}
        for pkg in packages:
            entry = manifests[pkg]["langs"].get(lang)
            if entry:
                files[f"{pkg}/{entry['file']}"] = entry["sha256"]
                for src, tgt in _read_pairs(root / "gettext" / pkg / entry["file"]):
                    pairs.setdefault(src, tgt)
        if not pairs:
            have = sorted({loc for m in manifests.values() for loc in m["langs"]})
            raise ConfigError("langs", lang, f"no pairs in packages {packages}; available: {' '.join(have)}")
        examples[lang] = [(src, (src, tgt)) for src, tgt in pairs.items()]
    splits, dropped = carve(examples, spec.dev_size, spec.test_size, split_seed)
    source = {
        "packages": {pkg: manifests[pkg]["version"] for pkg in packages},
        "filter": filt,
        "files": files,
        "pairs": {lang: len(v) for lang, v in examples.items()},
        "heldout_dropped": dropped,
        "skipped_catalogues": sum(len(m["skipped"]) for m in manifests.values()),
        "build_seconds": round(
            sum(m["build_seconds"] + m.get("download_seconds", 0) for m in manifests.values()), 3
        ),
    }
    return make_corpus(spec, "mt", splits, source, exact=False)
