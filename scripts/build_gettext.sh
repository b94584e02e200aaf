#!/usr/bin/env bash
# Pre-build the gettext MT corpus (and optionally the Bible LM corpus) into the coolmix cache, so
# later runs and CI jobs need no apt call. Prints per-language counts, package versions and timings.
#
#   scripts/build_gettext.sh                       # default package set and languages (data.md §1.2)
#   scripts/build_gettext.sh libc-l10n             # only these packages (0.7 MB; what tests use)
#   COOLMIX_CACHE=/data/cc scripts/build_gettext.sh --bible   # also the Bible; cache elsewhere
#
# Needs root on Debian/Ubuntu (apt-get download, dpkg-deb). Extracted text stays in the ignored
# cache (.cache/coolmix by default); never commit it.
set -euo pipefail
PY="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$PY" ] || PY=python3
BIBLE=0
PKGS=()
for a in "$@"; do
  if [ "$a" = "--bible" ]; then BIBLE=1; else PKGS+=("$a"); fi
done
BIBLE=$BIBLE "$PY" - "${PKGS[@]}" <<'PYEOF'
import json, os, sys, time

from coolmix.data import CorpusSpec, load_corpus

def report(spec):
    t0 = time.perf_counter()
    corpus = load_corpus(spec)
    info = {
        "corpus": spec.name,
        "seconds": round(time.perf_counter() - t0, 2),
        "build_seconds": corpus.source.get("build_seconds"),
        "train": corpus.sizes("train"),
        "dev": corpus.sizes("dev"),
        "test": corpus.sizes("test"),
        "versions": corpus.source.get("packages") or {corpus.source.get("package"): corpus.source.get("version")},
        "fingerprint": corpus.fingerprint,
    }
    print(json.dumps(info, indent=1, ensure_ascii=False))

options = {"packages": sys.argv[1:]} if sys.argv[1:] else {}
langs = () if not options else ("es", "it", "gl")  # libc-l10n and friends lack the small languages
report(CorpusSpec("gettext", langs, dev_size=100 if options else 500, test_size=100 if options else 500, options=options))
if os.environ.get("BIBLE") == "1":
    report(CorpusSpec("bible"))
PYEOF
