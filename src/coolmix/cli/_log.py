"""The CLI's view of the one warning channel: the ``coolmix`` logger, printed as ``coolmix: warning: ...``."""

from __future__ import annotations

import logging
import sys

__all__ = ["show_warnings"]


def show_warnings(main: bool = True) -> None:
    """Print the ``coolmix`` logger's warnings to stderr, one line each; ``main=False`` (ranks other
    than 0) keeps them quiet. Idempotent: calling it again replaces the handler it installed."""
    logger = logging.getLogger("coolmix")
    for h in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(h)
    handler: logging.Handler = _Stderr() if main else logging.NullHandler()
    setattr(handler, _MARK, True)
    handler.setFormatter(_Format())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


_MARK = "_coolmix_cli"


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"coolmix: {record.levelname.lower()}: {record.getMessage()}".replace("\n", " ")


class _Stderr(logging.Handler):
    """One line per record on whatever ``sys.stderr`` is when it is emitted (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never take the run down
            self.handleError(record)
