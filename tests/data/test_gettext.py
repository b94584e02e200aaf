"""gettext builder: .mo filtering, the global by-source split and the package cache (on generated
.debs), plus a real apt-get smoke test on libc-l10n."""

from __future__ import annotations

import json
import shutil

import pytest

from coolmix.data import CorpusSpec, gettext, load_corpus
from coolmix.errors import ConfigError

# es has sources 0..399, gl 100..259, ga 300..419 (20 of them only in ga), spread over 2 packages.
PACKAGES = {
    "ui-l10n": {"es": range(0, 200), "gl": range(100, 200), "en_GB": range(0, 50)},
    "game-l10n": {"es": range(150, 400), "gl": range(150, 260), "ga": range(300, 420)},
}
LANGS = ("es", "gl", "ga")


def spec(**kw) -> CorpusSpec:
    base = {
        "name": "gettext",
        "langs": LANGS,
        "dev_size": 20,
        "test_size": 25,
        "options": {"packages": list(PACKAGES)},
    }
    return CorpusSpec(**{**base, **kw})


def test_mo_filter(tmp_path, write_mo):
    entries = [
        {"msgid": "Save the _file now", "msgstr": "Guardar el _archivo ahora"},
        {"msgid": "Drag &and drop here", "msgstr": "Arrastrar y\tsoltar\naquí"},
        {"msgid": "Open", "msgstr": "Abrir"},
        {"msgid": "<b>Bold</b> is markup here", "msgstr": "<b>Negrita</b>"},
        {"msgid": "Not translated at all", "msgstr": ""},
        {"msgid": "Same on both sides", "msgstr": "Same on both sides"},
        {"msgid": "Menu entry for files", "msgstr": "Entrada de menú", "msgctxt": "menu"},
        {
            "msgid": "One file was deleted",
            "msgid_plural": "%d files were deleted",
            "msgstr_plural": {0: "Un archivo borrado", 1: "%d archivos borrados"},
        },
        {"msgid": " ".join(["word"] * 81), "msgstr": "demasiado largo"},
    ]
    write_mo(tmp_path / "x.mo", entries)
    pairs = gettext.pairs_from_mo((tmp_path / "x.mo").read_bytes(), min_words=3, max_words=80)
    assert pairs == {
        "Save the file now": "Guardar el archivo ahora",
        "Drag and drop here": "Arrastrar y soltar aquí",
        "Menu entry for files": "Entrada de menú",
        "One file was deleted": "Un archivo borrado",
    }


def test_natural_sizes_and_global_split_by_source(tmp_path, fake_apt):
    fake_apt(PACKAGES)
    corpus = load_corpus(spec(), tmp_path)
    assert corpus.task == "mt" and corpus.langs == LANGS
    assert corpus.manifest["source"]["pairs"] == {"es": 400, "gl": 160, "ga": 120}
    assert corpus.sizes("dev") == dict.fromkeys(LANGS, 20) and corpus.sizes("test") == dict.fromkeys(
        LANGS, 25
    )
    src = {
        split: {s for v in corpus.split(split).values() for s, _ in v} for split in ("train", "dev", "test")
    }
    assert not src["train"] & src["dev"] and not src["train"] & src["test"] and not src["dev"] & src["test"]
    dropped = corpus.manifest["source"]["heldout_dropped"]
    for lang, n in corpus.manifest["source"]["pairs"].items():
        assert corpus.sizes("train")[lang] == n - 45 - dropped[lang]
    for lang, pairs in corpus.split("train").items():
        assert all(tgt == f"[{lang}] {s}" for s, tgt in pairs)
    assert corpus.ids("dev")["es"] == [s for s, _ in corpus.split("dev")["es"]]


def test_caps_seed_and_determinism(tmp_path, fake_apt):
    fake_apt(PACKAGES)
    capped = load_corpus(spec(train_sizes={"es": 50, "ga": 5000}), tmp_path)
    natural = load_corpus(spec(), tmp_path)
    assert capped.sizes("train")["es"] == 50 and capped.sizes("train")["ga"] == natural.sizes("train")["ga"]
    assert set(capped.split("train")["es"]) < set(natural.split("train")["es"])
    assert capped.split("dev") == natural.split("dev")  # held-out sets ignore caps and seeds
    other = load_corpus(spec(train_sizes={"es": 50}, seed=7), tmp_path)
    assert other.split("train")["es"] != capped.split("train")["es"]
    assert load_corpus(spec(train_sizes={"es": 50, "ga": 5000}), tmp_path).fingerprint == capped.fingerprint


def test_package_cache_needs_no_download_and_rebuilds_on_mismatch(tmp_path, fake_apt):
    calls = fake_apt(PACKAGES)
    first = load_corpus(spec(), tmp_path)
    assert calls == [list(PACKAGES)]
    assert not list(tmp_path.rglob("*.deb"))  # .debs are deleted after extraction
    m = json.loads((tmp_path / "gettext" / "ui-l10n" / "manifest.json").read_text())
    assert m["version"] == "1.0-1" and m["langs"]["es"]["pairs"] == 200 and "en_GB" not in m["langs"]
    load_corpus(spec(), tmp_path)
    assert len(calls) == 1  # warm: no apt call
    (tmp_path / "gettext" / "game-l10n" / "gl.tsv").write_text("tampered\tx\n")
    assert load_corpus(spec(), tmp_path).fingerprint == first.fingerprint
    assert calls[1:] == [["game-l10n"]]
    load_corpus(spec(options={"packages": list(PACKAGES), "min_words": 2}), tmp_path)  # filter change
    assert calls[2:] == [list(PACKAGES)]
    shutil.rmtree(tmp_path / "gettext" / "ui-l10n")
    load_corpus(spec(options={"packages": ["ui-l10n"]}, langs=("es",)), tmp_path)
    assert calls[3:] == [["ui-l10n"]]


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m["langs"]["es"].pop("sha256"),
        lambda m: m.pop("version"),
        lambda m: m.update(langs=["es"]),
        lambda m: m.update(download_seconds="soon"),
    ],
)
def test_manifest_that_parses_but_has_wrong_keys_is_rebuilt(tmp_path, fake_apt, caplog, damage):
    calls = fake_apt(PACKAGES)
    first = load_corpus(spec(), tmp_path)
    path = tmp_path / "gettext" / "ui-l10n" / "manifest.json"
    m = json.loads(path.read_text())
    damage(m)
    path.write_text(json.dumps(m))
    with caplog.at_level("WARNING", logger="coolmix"):
        assert load_corpus(spec(), tmp_path).fingerprint == first.fingerprint  # today: KeyError
    assert calls[1:] == [["ui-l10n"]]
    assert any("unexpected content; rebuilding" in r.getMessage() for r in caplog.records)


def test_earlier_package_wins_a_duplicate_source(tmp_path, fake_apt):
    fake_apt({"a-l10n": {"es": range(0, 100)}, "b-l10n": {"es": range(50, 150)}})
    corpus = load_corpus(spec(langs=("es",), options={"packages": ["a-l10n", "b-l10n"]}), tmp_path)
    assert corpus.manifest["source"]["pairs"] == {"es": 150}
    assert corpus.manifest["source"]["packages"] == {"a-l10n": "1.0-1", "b-l10n": "1.0-1"}


def test_bad_inputs(tmp_path, fake_apt):
    fake_apt(PACKAGES)
    with pytest.raises(ConfigError) as e:
        load_corpus(spec(langs=("es", "de")), tmp_path)
    assert e.value.field == "langs" and e.value.value == "de" and "available: es ga gl" in str(e.value)
    for langs, why in ((("en",), "English is the source side"), (("es!",), "not a gettext locale")):
        with pytest.raises(ConfigError, match=why):
            load_corpus(spec(langs=langs), tmp_path)
    with pytest.raises(ConfigError, match=r"options\.packages"):
        load_corpus(spec(options={"packages": ["Not A Package"]}), tmp_path)
    with pytest.raises(ConfigError, match=r"options\.packages"):
        load_corpus(spec(options={"packages": []}), tmp_path)
    with pytest.raises(ConfigError, match=r"options\.min_words"):
        load_corpus(spec(options={"packages": list(PACKAGES), "min_words": 9, "max_words": 3}), tmp_path)
    with pytest.raises(ConfigError) as e:  # ga has 120 sources: too few for 60 + 61 held out
        load_corpus(spec(dev_size=60, test_size=61), tmp_path)
    assert e.value.field in ("dev_size", "test_size") and "'ga'" in str(e.value)


def test_missing_apt_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr(gettext.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="apt-get not found"):
        load_corpus(spec(), tmp_path)


def test_download_runs_apt_update_only_after_a_failure(tmp_path, monkeypatch):
    calls: list[list[str]] = []

    def run(cmd, cwd=None):
        calls.append(cmd[1:] if cmd[1] != "-q" else [cmd[-2], cmd[-1]])
        ok = len(calls) != 1 or "update" in cmd  # the first download fails (stale package lists)
        if ok and "download" in cmd:
            (cwd / "libc-l10n_2.36_all.deb").write_bytes(b"deb")
        err = "" if ok else "E: Unable to locate package libc-l10n"
        return gettext.subprocess.CompletedProcess(cmd, 0 if ok else 100, "", err)

    monkeypatch.setattr(gettext, "_tool", lambda name: name)
    monkeypatch.setattr(gettext, "_run", run)
    monkeypatch.setattr(gettext, "_control", lambda deb: {"Package": "libc-l10n", "Version": "2.36"})
    debs = gettext.download(["libc-l10n"], tmp_path)
    assert calls == [["download", "libc-l10n"], ["-qq", "update"], ["download", "libc-l10n"]]
    assert debs == {"libc-l10n": tmp_path / "libc-l10n_2.36_all.deb"}
    monkeypatch.setattr(
        gettext,
        "_run",
        lambda cmd, cwd=None: gettext.subprocess.CompletedProcess(
            cmd, 100, "", "E: Unable to locate package nope"
        ),
    )
    with pytest.raises(ConfigError) as e:
        gettext.download(["nope"], tmp_path)
    assert e.value.field == "options.packages" and e.value.value == "nope"


def test_corrupt_deb_is_a_config_error(tmp_path, monkeypatch):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not installed")

    def download(packages, dest):
        (dest / "bad.deb").write_bytes(b"!<arch>\nnot really a deb")
        return {p: dest / "bad.deb" for p in packages}

    monkeypatch.setattr(gettext, "download", download)
    with pytest.raises(ConfigError, match="corrupt package"):
        load_corpus(spec(), tmp_path)


@pytest.mark.data
@pytest.mark.skipif(
    shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
    reason="needs apt-get and dpkg-deb (Debian/Ubuntu)",
)
def test_real_libc_l10n(tmp_path):
    s = CorpusSpec(
        "gettext", ("es", "de", "ja"), dev_size=100, test_size=100, options={"packages": ["libc-l10n"]}
    )
    corpus = load_corpus(s, tmp_path)  # apt-get is there (skipif above): a failure is a failure
    assert corpus.sizes("dev") == dict.fromkeys(s.langs, 100)
    assert all(n > 400 for n in corpus.sizes("train").values())
    assert corpus.manifest["source"]["packages"]["libc-l10n"].startswith("2.")
    src = {
        split: {x for v in corpus.split(split).values() for x, _ in v} for split in ("train", "dev", "test")
    }
    assert not src["train"] & src["test"] and not src["dev"] & src["test"]
    assert all(3 <= len(x.split()) <= 80 and "<" not in x for x in src["train"])
