"""Item readers: one domain's items in the domain's own global order, one small class per source kind.

A reader walks its source pass after pass (a pass ends when the source runs out; the next one
restarts it, calling ``set_epoch(pass)`` where the source has one). Its position is the index of
the next item in that global order (``total``; ``pass`` and ``consumed`` = items read in the pass),
the same in every process, so every (rank, worker) lane of `coolmix.integrations.streams` reads
the same order and takes the items the global composition assigns to it.

Each reader has ``next``, ``skip(n)``, ``state_dict()`` and ``load_state_dict()``. ``skip`` uses
the source's own fast path where it has one; restoring uses the source's own state where it has
one, else re-reads the pass up to the saved position:

=================  ===============================  ==========================================
source             skip(n)                          restore
=================  ===============================  ==========================================
HF IterableDataset read and discard                 its ``state_dict()`` (shard + offset)
shard directory    lines read, not JSON-parsed      (file, byte offset): one ``seek``
torchdata node     read and discard                 its ``state_dict()``
generator/iterable read and discard                 restart the pass, skip ``consumed``
=================  ===============================  ==========================================

`reader_for` picks the class (`READERS`, tried in order; the first whose ``accepts`` says yes).
A shard directory holds ``*.jsonl`` (a JSON value per line) or ``*.txt`` (a string per line)
regular files, read in name order; symbolic links and non-regular files are refused
(`coolmix.fileio.open_regular`).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from coolmix.errors import ConfigError
from coolmix.fileio import open_regular
from coolmix.validate import MAX_INT

__all__ = [
    "READERS",
    "HFReader",
    "ItemReader",
    "IterableReader",
    "NodeReader",
    "ShardDirReader",
    "reader_class",
    "reader_for",
]

PASS_KEY, CONSUMED_KEY, TOTAL_KEY, SOURCE_KEY = "pass", "consumed", "total", "source"
SHARD_SUFFIXES = (".jsonl", ".txt")
SKIP_BLOCK = 1 << 20  # bytes a shard directory's skip reads at a time


class ItemReader:
    """Base: passes, counters and the state protocol; a subclass opens one pass of its source.

    >>> r = reader_for(lambda: iter("abc"), "letters")
    >>> r.skip(4); next(r), r.state_dict()
    ('b', {'pass': 1, 'consumed': 2, 'total': 5, 'source': None})
    """

    kind: ClassVar[str] = "iterable"

    def __init__(self, source: Any, name: str) -> None:
        self.source, self.name = source, name
        self.pass_, self.consumed, self.total = 0, 0, 0
        self._it: Iterator[Any] | None = None
        self._saved: Any = None  # the source state to reopen from (after load_state_dict)
        self._failed = False  # the source raised: the next read reopens at (pass, consumed)

    @classmethod
    def accepts(cls, source: Any) -> bool:
        raise NotImplementedError

    @classmethod
    def check_source_state(cls, state: Any, field: str) -> None:
        """A saved ``source`` entry must be what this kind writes (None: it keeps no state)."""
        if state is not None:
            why = f"a {cls.kind} source keeps no state of its own (restored by re-reading the pass)"
            raise ConfigError(field, type(state).__name__, why)

    def verify_source(self, state: Any, field: str) -> None:
        """Check a saved source state against the source itself (at load time; default: nothing)."""

    # subclass hooks ---------------------------------------------------------------------------

    def _open(self, state: Any) -> Iterator[Any]:
        """An iterator over the current pass, from the source ``state`` (None: the pass's start)."""
        raise NotImplementedError

    def _source_state(self) -> Any:
        """The source's own state at the current position (None where it keeps none)."""
        return None

    def _skip_open(self, n: int) -> int:
        """Skip up to ``n`` items of the open pass; returns how many (fewer: the pass ended)."""
        assert self._it is not None
        return sum(1 for _ in islice(self._it, n))

    # protocol ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        src = self._saved if self._it is None else self._source_state()
        return {PASS_KEY: self.pass_, CONSUMED_KEY: self.consumed, TOTAL_KEY: self.total, SOURCE_KEY: src}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore (checked by `coolmix.integrations.stream_state.read_reader`); opens lazily."""
        self.pass_, self.consumed, self.total = state[PASS_KEY], state[CONSUMED_KEY], state[TOTAL_KEY]
        self._saved, self._it, self._failed = state[SOURCE_KEY], None, False

    def __iter__(self) -> ItemReader:
        return self

    def __next__(self) -> Any:
        """The next item. If the source raises, the error propagates and the next call reopens the
        pass at the items already taken (as a resume does): nothing is skipped or repeated."""
        self._ensure_open()
        assert self._it is not None
        try:
            item = next(self._it)
        except StopIteration:
            self._next_pass()
            try:
                item = next(self._it)
            except StopIteration:
                raise self._empty() from None
        except Exception:
            self._it, self._failed = None, True
            raise
        self.consumed += 1
        self.total += 1
        return item

    def skip(self, n: int) -> None:
        """Advance ``n`` items without returning them (across passes), with the source's fast skip."""
        while n > 0:
            self._ensure_open()
            try:
                k = self._skip_open(n)
            except Exception:
                self._it, self._failed = None, True
                raise
            self.consumed += k
            self.total += k
            n -= k
            if n > 0:
                self._next_pass()

    def _ensure_open(self) -> None:
        if self._it is not None:
            return
        saved, self._saved = self._saved, None
        self._it = self._open(saved)
        # no source state: re-read the pass up to the position
        if saved is None and self.consumed and self._skip_open(self.consumed) != self.consumed:
            why = f"the source changed: pass {self.pass_} now has fewer than {self.consumed} items"
            raise ConfigError(f"sources.{self.name}", self.kind, why)

    def _next_pass(self) -> None:
        if self.consumed == 0:
            raise self._empty()
        self.pass_, self.consumed = self.pass_ + 1, 0
        self._it = self._open(None)

    def _empty(self) -> ConfigError:
        return ConfigError(f"sources.{self.name}", self.kind, "has no items")


def _set_epoch(source: Any, p: int) -> None:
    if hasattr(source, "set_epoch"):
        source.set_epoch(p)


class HFReader(ItemReader):
    """A ``datasets.IterableDataset``, whole (never split by node: lanes share the global order).

    Iterated with ``.iter(batch_size=1)`` (plain ``iter`` would shard again by DataLoader worker);
    each reader keeps a shallow copy so that two readers of one dataset keep separate states.
    """

    kind = "hf"

    @classmethod
    def accepts(cls, source: Any) -> bool:
        return type(source).__module__.startswith("datasets") and hasattr(source, "iter")

    @classmethod
    def check_source_state(cls, state: Any, field: str) -> None:
        if state is not None and not isinstance(state, Mapping):
            raise ConfigError(field, type(state).__name__, "must be the dataset's state_dict() (a mapping)")

    def _open(self, state: Any) -> Iterator[Any]:
        self._view = copy.copy(self.source)
        if hasattr(self._view, "_epoch"):
            # The copy's own epoch: HF keeps it in torch shared memory (seen by every DataLoader
            # worker), and another lane's set_epoch between ours and the lazy start of iteration
            # would give this pass another shard order (and drop the loaded state).
            self._view._epoch = 0
        self._view.set_epoch(self.pass_)
        if state is not None:
            self._view.load_state_dict(state)
        return _unbatch(self._view.iter(batch_size=1))

    def _source_state(self) -> Any:
        return self._view.state_dict()


def _unbatch(batches: Iterable[Mapping[str, list[Any]]]) -> Iterator[dict[str, Any]]:
    for b in batches:
        yield {k: v[0] for k, v in b.items()}


class NodeReader(ItemReader):
    """A ``torchdata.nodes`` node: ``reset(state)`` restores, ``state_dict()`` saves."""

    kind = "node"

    @classmethod
    def accepts(cls, source: Any) -> bool:
        return hasattr(source, "reset") and hasattr(source, "get_state")

    @classmethod
    def check_source_state(cls, state: Any, field: str) -> None:
        HFReader.check_source_state(state, field)

    def _open(self, state: Any) -> Iterator[Any]:
        self.source.reset(state)
        return iter(self.source)

    def _source_state(self) -> Any:
        return self.source.state_dict()


class IterableReader(ItemReader):
    """A zero-argument factory (a generator function) or a re-iterable (list, custom iterable).

    A one-shot iterator (``iter(x) is x``) is read once: it cannot restart a pass or reopen one.
    """

    kind = "iterable"

    @classmethod
    def accepts(cls, source: Any) -> bool:
        return (callable(source) and not hasattr(source, "__iter__")) or isinstance(source, Iterable)

    def _open(self, state: Any) -> Iterator[Any]:
        src = self.source
        _set_epoch(src, self.pass_)
        it = iter(src) if hasattr(src, "__iter__") else src()
        if it is src and (self.pass_ > 0 or self.consumed > 0 or self._failed):
            raise ConfigError(
                f"sources.{self.name}", type(src).__name__, "a one-shot iterator cannot restart"
            )
        return it


class ShardDirReader(ItemReader):
    """A directory of ``*.jsonl`` / ``*.txt`` shards, one item per line, files in name order.

    Its state is (file index, byte offset of the next line): restoring is one ``seek``; ``skip``
    reads lines without parsing them.
    """

    kind = "dir"

    def __init__(self, source: Any, name: str) -> None:
        super().__init__(source, name)
        self.files = shard_files(Path(source), name)
        self._file, self._byte = 0, 0
        self._fh: Any = None

    @classmethod
    def accepts(cls, source: Any) -> bool:
        return isinstance(source, (str, os.PathLike))

    @classmethod
    def check_source_state(cls, state: Any, field: str) -> None:
        if state is None:
            return
        if not isinstance(state, Mapping) or set(state) != {"file", "byte"}:
            raise ConfigError(field, state, "must be {'file': index, 'byte': offset} of the next line")
        for key in ("file", "byte"):
            v = state[key]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_INT:
                raise ConfigError(f"{field}.{key}", v, "must be an integer >= 0")

    def verify_source(self, state: Any, field: str) -> None:
        """The saved (file, byte) must be a line start of an existing shard (or the pass's end)."""
        if state is None:
            return
        f, b = state["file"], state["byte"]
        if f > len(self.files) or (f == len(self.files) and b):
            raise ConfigError(field, state, f"past the last of the directory's {len(self.files)} shards")
        if b:
            with os.fdopen(open_regular(self.files[f], os.O_RDONLY, field), "rb") as fh:
                fh.seek(b - 1)
                if fh.read(1) != b"\n":
                    raise ConfigError(field, state, f"byte {b} of {self.files[f].name} is not a line start")

    def _open(self, state: Any) -> Iterator[Any]:
        self._close()
        _set_epoch(self.source, self.pass_)
        if state is not None:
            self.verify_source(state, f"sources.{self.name}")
        self._file, self._byte = (0, 0) if state is None else (state["file"], state["byte"])
        return self._items()

    def _source_state(self) -> Any:
        return {"file": self._file, "byte": self._byte}

    def _line(self) -> bytes | None:
        """The next raw line (position advanced), or None at the end of the pass."""
        while self._file < len(self.files):
            if self._fh is None:
                path = self.files[self._file]
                self._fh = os.fdopen(open_regular(path, os.O_RDONLY, f"sources.{self.name}"), "rb")
                self._fh.seek(self._byte)
            raw = self._fh.readline()
            if raw:
                self._byte += len(raw)
                return raw
            self._close()
            self._file, self._byte = self._file + 1, 0
        return None

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _items(self) -> Iterator[Any]:
        while (raw := self._line()) is not None:
            yield self._parse(raw)

    def _skip_open(self, n: int) -> int:
        """Skip up to ``n`` lines by counting newlines in blocks (no per-line work, no parsing)."""
        k, mid = 0, False  # mid: the block read last ended inside a line
        while k < n and self._file < len(self.files):
            if self._fh is None:
                path = self.files[self._file]
                self._fh = os.fdopen(open_regular(path, os.O_RDONLY, f"sources.{self.name}"), "rb")
                self._fh.seek(self._byte)
            block = self._fh.read(SKIP_BLOCK)
            if not block:  # end of the file; an unterminated last line is a line too
                k += mid
                mid = False
                self._close()
                self._file, self._byte = self._file + 1, 0
                continue
            nl = block.count(b"\n")
            if nl >= n - k:  # the n-th line ends in this block: stop right after it
                end = -1
                for _ in range(n - k):
                    end = block.index(b"\n", end + 1)
                self._byte += end + 1
                self._fh.seek(self._byte)
                return n
            k += nl
            self._byte += len(block)
            mid = not block.endswith(b"\n")
        return k

    def _parse(self, raw: bytes) -> Any:
        f = self.files[self._file]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = self._line_number(self._byte - len(raw))
            why = f"line {line} is not UTF-8 text (byte 0x{raw[e.start]:02x}, before offset {self._byte})"
            raise ConfigError(f"sources.{self.name}", str(f), why) from None
        text = text[:-2] + "\n" if text.endswith("\r\n") else text
        if f.suffix != ".jsonl":
            return text.rstrip("\n")
        try:
            return json.loads(text)
        except ValueError as e:
            line = self._line_number(self._byte - len(raw))
            why = f"line {line} is not JSON ({e}; it ends at byte {self._byte})"
            raise ConfigError(f"sources.{self.name}", str(f), why) from None

    def _line_number(self, start: int) -> int:
        """1-based number of the line starting at byte ``start`` of the current file (errors only:
        positions are bytes, so the number is counted when it is needed)."""
        with os.fdopen(open_regular(self.files[self._file], os.O_RDONLY, f"sources.{self.name}"), "rb") as fh:
            count, left = 0, start
            while left > 0 and (block := fh.read(min(SKIP_BLOCK, left))):
                count, left = count + block.count(b"\n"), left - len(block)
        return count + 1

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fh"], state["_it"] = None, None  # reopened from (file, byte) after unpickling
        if self._it is not None:
            state["_saved"] = self._source_state()
        return state


def shard_files(root: Path, name: str = "") -> list[Path]:
    """The ``*.jsonl`` / ``*.txt`` regular files directly in ``root``, in name order (no links)."""
    field = f"sources.{name}" if name else "sources"
    if not root.is_dir():
        raise ConfigError(field, str(root), "a path source must be a directory of shards")
    files = sorted(f for f in root.iterdir() if f.suffix in SHARD_SUFFIXES)
    for f in files:  # a link, directory, FIFO or device named like a shard: one line now, not a hang
        os.close(open_regular(f, os.O_RDONLY, field))
    if not files:
        raise ConfigError(field, str(root), f"no {' / '.join(SHARD_SUFFIXES)} shards in this directory")
    return files


READERS: tuple[type[ItemReader], ...] = (ShardDirReader, HFReader, NodeReader, IterableReader)
"""Reader classes in the order `reader_for` tries them (the first that ``accepts`` the source)."""


def reader_class(source: Any) -> type[ItemReader]:
    """The reader class for ``source``, else a ConfigError naming ``sources``."""
    for cls in READERS:
        if cls.accepts(source):
            return cls
    why = "must be an iterable, a factory, an HF IterableDataset, a torchdata node or a shard directory"
    raise ConfigError("sources", type(source).__name__, why)


def reader_for(source: Any, name: str) -> ItemReader:
    """A fresh reader of ``source`` (domain ``name``) at the start of its global order."""
    return reader_class(source)(source, name)
