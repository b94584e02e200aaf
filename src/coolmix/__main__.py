"""``python -m coolmix``: the same entry point as the ``coolmix`` command."""

from coolmix.cli.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
