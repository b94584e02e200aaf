"""`GlobalIndex`: the sampler's global sample map g → (domain id, item), built in bulk and cached.

Engines that index data by a global sample number (Megatron's consumed-samples slicing, Grain's
random access) want `MixtureSampler.sample_at` at millions of calls a second and the whole map
up front. GlobalIndex materialises it in blocks of whole batches, one vectorised pass per block:
the cursors C(t) of every step (`MixtureSampler.cumulative_counts_rows`, one walk), each domain's
draws C_i(t) .. C_i(t+1) − 1 through its keyed pass permutations, then each batch's slot order,
the same operations as the sampler's (see `coolmix.sampler`), so every entry equals ``sample_at``
bit for bit (tests/test_global_index.py; a mismatch on the first block raises at construction).

`build(n)` keeps the first n entries as arrays; with ``cache_dir`` they are saved as ``.npy``
files keyed by a hash of the configuration (like Megatron's index cache) and memory-mapped on
the next start, so a restart pays one hash and a check of the first block, not a rebuild.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import stat
from pathlib import Path
from typing import Any, cast

import numpy as np

from coolmix.errors import ConfigError
from coolmix.fileio import write_atomic
from coolmix.permutation import derive_key, permute_each, permute_rows, permute_runs, splitmix64, width
from coolmix.sampler import STATE_VERSION, MixtureSampler
from coolmix.validate import check_int

__all__ = ["BLOCK_SAMPLES", "BUILD_SAMPLES", "INDEX_VERSION", "GlobalIndex"]

INDEX_VERSION = 1
"""Version of the cached index files (part of the cache key; bumped when their content changes)."""

BLOCK_SAMPLES = 2**16
"""Samples per lazily built block (rounded to whole batches), for `lookup` and `__getitem__`."""

BUILD_SAMPLES = 2**18
"""Samples per vectorised pass of `build` (fewer, longer numpy calls; any split gives the same map)."""

_GROUPS = 16  # up to this many (domain, pass) runs per domain, one scalar-key permute each


class GlobalIndex:
    """g → (domain id, item) for g in [0, total_steps · batch_size), equal to ``sampler.sample_at``.

    Takes a snapshot (deep copy) of ``sampler``: its schedule, recorded events and stream; later
    changes to the caller's sampler are not seen and its state never moves.

    - ``index[g]``: ints, the scalar fast path (built prefix, else the current block);
    - `lookup` (any int array) and `block` (a range): int64 arrays;
    - `build` (n): the first n entries, vectorised, cached under ``cache_dir`` when given.

    >>> idx = GlobalIndex(MixtureSampler({"en": 1000, "sw": 10}, 5.0, total_steps=100, batch_size=8))
    >>> idx[3 * 8 + 5] == idx.sampler.sample_at(3 * 8 + 5)
    True
    """

    def __init__(self, sampler: MixtureSampler, *, cache_dir: str | os.PathLike[str] | None = None) -> None:
        if not isinstance(sampler, MixtureSampler):
            raise ConfigError("sampler", sampler, "must be a coolmix.MixtureSampler")
        self.sampler = copy.deepcopy(sampler)
        s = self.sampler
        self.names = s.names
        self.batch_size = s.batch_size
        self.total_steps = s.total_steps
        k = len(s.names)
        items = s.state_dict()["mixture"]
        self._n = np.array([items[n] for n in s.names], dtype=np.int64)
        self._n_u64 = self._n.astype(np.uint64)
        self._bits = np.array([width(int(n)) for n in self._n], dtype=np.uint64)
        self._dkeys = np.array([derive_key(s.seed, "domain", n) for n in s.names], dtype=np.uint64)
        self._okey = np.uint64(derive_key(s.seed, "order"))
        self.domain_dtype = np.dtype(np.int16 if k < 2**15 else np.int32)
        self.item_dtype = np.dtype(np.int32 if int(self._n.max()) <= 2**31 else np.int64)
        self.block_steps = max(1, BLOCK_SAMPLES // self.batch_size)
        self.block_len = self.block_steps * self.batch_size
        self._len = self.total_steps * self.batch_size
        self.cache_dir = None if cache_dir is None else _check_dir(cache_dir)
        self._built_d: np.ndarray = np.zeros(0, dtype=self.domain_dtype)
        self._built_i: np.ndarray = np.zeros(0, dtype=self.item_dtype)
        self._built = 0
        self._cur, self._cur_lo, self._cur_n = -1, 0, 0  # the block the scalar path holds as lists
        self._cur_d: list[int] = []
        self._cur_i: list[int] = []
        self._key: str | None = None
        self._mapped = False  # whether the built prefix is a cache file (then pickled as its paths)
        self.loaded_from_cache = False
        """Whether `build` mapped an existing cache file (a restart) rather than building."""
        self._check_first_block()

    def __len__(self) -> int:
        return self._len

    # -- access ----------------------------------------------------------------------------------

    def __getitem__(self, g: int) -> tuple[int, int]:
        """(domain id, item) of global sample ``g`` as ints (about a million calls a second)."""
        if type(g) is int:
            if 0 <= g < self._built:
                return self._built_d.item(g), self._built_i.item(g)
            r = g - self._cur_lo
            if 0 <= r < self._cur_n:
                return self._cur_d[r], self._cur_i[r]
        g = self._check(g)
        if g < self._built:
            return self._built_d.item(g), self._built_i.item(g)
        b = g // self.block_len
        d, i = self._block(b)
        self._cur, self._cur_d, self._cur_i = b, d.tolist(), i.tolist()
        self._cur_lo, self._cur_n = b * self.block_len, len(self._cur_d)
        return self._cur_d[g - self._cur_lo], self._cur_i[g - self._cur_lo]

    def lookup(self, g: Any) -> tuple[np.ndarray, np.ndarray]:
        """(domain ids, items) for an int array of global samples (any shape), int64 arrays."""
        arr = np.asarray(g)
        if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() >= self._len)):
            raise ConfigError("index", g, f"must be integers in [0, {self._len}) (total_steps · batch_size)")
        flat = arr.astype(np.int64).ravel()
        dom, item = np.empty(flat.size, dtype=np.int64), np.empty(flat.size, dtype=np.int64)
        built = flat < self._built
        dom[built], item[built] = self._built_d[flat[built]], self._built_i[flat[built]]
        rest = np.flatnonzero(~built)
        blocks = flat[rest] // self.block_len
        for b in np.unique(blocks).tolist():
            sel = rest[blocks == b]
            d, i = self._block(b)
            off = flat[sel] - b * self.block_len
            dom[sel], item[sel] = d[off], i[off]
        return dom.reshape(arr.shape), item.reshape(arr.shape)

    def block(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(domain ids, items) of global samples [lo, hi), int64 arrays."""
        lo = check_int("lo", lo, lo=0, hi=self._len)
        hi = check_int("hi", hi, lo=lo, hi=self._len)
        return self.lookup(np.arange(lo, hi, dtype=np.int64))

    def _check(self, g: Any) -> int:
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or not 0 <= g < self._len:
            why = f"must be an integer in [0, {self._len}) (total_steps · batch_size)"
            raise ConfigError("index", g, why)
        return int(g)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (e.g. to worker processes) without the current block, and without the built
        arrays when they are a cache file (the unpickled copy maps the file again)."""
        state = self.__dict__.copy()
        state.update(_cur=-1, _cur_lo=0, _cur_n=0, _cur_d=[], _cur_i=[])
        if self._built and self.cache_dir is not None and self._mapped:
            state.update(_built_d=None, _built_i=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._built_d is None:
            n, paths = self._built, self.cache_paths(self._built)
            d, i = _load(paths[0], self.domain_dtype, n), _load(paths[1], self.item_dtype, n)
            self._built_d, self._built_i = np.asarray(d), np.asarray(i)

    # -- building --------------------------------------------------------------------------------

    def build(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` entries (default: all) as (domains, items) arrays in the index's narrow
        dtypes, kept for `__getitem__`/`lookup`; loaded from (or saved to) ``cache_dir`` if set."""
        n = self._len if n is None else check_int("n", n, lo=0, hi=self._len)
        if n <= self._built:
            return self._built_d[:n], self._built_i[:n]
        paths = self.cache_paths(n) if self.cache_dir is not None else None
        if paths is not None and all(p.exists() or p.is_symlink() for p in paths):
            d, i = _load(paths[0], self.domain_dtype, n), _load(paths[1], self.item_dtype, n)
            self._check_cached(d, i, paths[0])
            self._mapped = self.loaded_from_cache = True
        elif paths is not None:
            dbuf, d = _npy_buffer(self.domain_dtype, n)
            ibuf, i = _npy_buffer(self.item_dtype, n)
            self._fill(d, i)
            write_atomic(paths[1], cast(bytes, ibuf))  # items first: the domains file completes the pair
            write_atomic(paths[0], cast(bytes, dbuf))
            self._mapped = True
        else:
            d, i = np.empty(n, dtype=self.domain_dtype), np.empty(n, dtype=self.item_dtype)
            self._fill(d, i)
        # plain ndarray views (a memmap's own indexing is slow); entries stay memory-mapped
        self._built_d, self._built_i = np.asarray(d), np.asarray(i)
        self._built = n
        return d, i

    def _fill(self, d: np.ndarray, i: np.ndarray) -> None:
        """Entries [0, len(d)) into ``d``/``i`` (the built prefix copied), `BUILD_SAMPLES` at a time."""
        n, have, B = len(d), self._built, self.batch_size
        d[:have], i[:have] = self._built_d, self._built_i
        per, t, last = max(1, BUILD_SAMPLES // B), have // B, -(-n // B)
        while t < last:
            t1 = min(t + per, last)
            bd, bi = self._steps(t, t1)
            lo = t * B
            a, z = max(lo, have), min(t1 * B, n)
            d[a:z], i[a:z] = bd[a - lo : z - lo], bi[a - lo : z - lo]
            t = t1

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Block ``b``: steps [b·block_steps, ...) clipped to total_steps, as int64 arrays."""
        t0 = b * self.block_steps
        return self._steps(t0, min(t0 + self.block_steps, self.total_steps))

    def _steps(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """The global batches of steps [t0, t1), concatenated: (domains, items), int64."""
        s, B = self.sampler, self.batch_size
        if s.rule.per_slot:  # slot domains are drawn per slot (iid): the sampler's own path
            return s.sample_at(np.arange(t0 * B, t1 * B, dtype=np.int64))
        C = s.cumulative_counts_rows(t0, t1)
        S, k = t1 - t0, len(self.names)
        counts = np.diff(C, axis=0)
        flat = counts.ravel()
        dom = np.repeat(np.tile(np.arange(k, dtype=np.int64), S), flat)  # per step: domain blocks
        first = np.cumsum(flat) - flat  # where each (step, domain) block starts
        if k <= _GROUPS:
            items = self._items_by_runs(C, counts, first.reshape(S, k))
        else:
            cell = np.repeat(np.arange(S * k), flat)
            j = (C[:-1].ravel() - first)[cell] + np.arange(S * B)
            items = self._items_each(dom, j)
        keys = self._okey ^ splitmix64(np.arange(t0, t1, dtype=np.uint64))
        order = permute_rows(np.broadcast_to(np.arange(B, dtype=np.uint64), (S, B)), B, keys)
        order = (order.astype(np.int64) + (np.arange(S, dtype=np.int64) * B)[:, None]).ravel()
        return dom[order], items[order]

    def _items_by_runs(self, C: np.ndarray, counts: np.ndarray, first: np.ndarray) -> np.ndarray:
        """Items of the steps between the rows of C, in the unshuffled (step, domain block) layout:
        domain i's draws j = C_i(t0) .. C_i(t1) − 1 are pass p = j // n at offset j mod n under
        key(i, p), one run per (domain, pass) through `permute_runs`; a domain with many passes in
        the block (a handful of items) goes elementwise instead."""
        S = len(C) - 1
        items = np.empty(S * self.batch_size, dtype=np.int64)
        xs, pos, ns, keys, lens = [], [], [], [], []
        for i in range(C.shape[1]):
            a, z = int(C[0, i]), int(C[S, i])
            if z <= a:
                continue
            where = np.repeat(first[:, i] - C[:-1, i], counts[:, i]) + np.arange(a, z)
            n = int(self._n[i])
            p0, p1 = a // n, (z - 1) // n
            j = np.arange(a, z, dtype=np.int64)
            if p1 - p0 >= _GROUPS:
                items[where] = self._items_each(np.full(z - a, i, dtype=np.int64), j)
                continue
            passes = np.arange(p0, p1 + 1, dtype=np.int64)
            lo, hi = np.maximum(a, passes * n), np.minimum(z, (passes + 1) * n)
            xs.append(j - (j // n) * n)
            pos.append(where)
            ns.append(np.full(len(passes), n, dtype=np.uint64))
            keys.append(self._dkeys[i] ^ splitmix64(passes.astype(np.uint64)))
            lens.append(hi - lo)
        if xs:
            x = np.concatenate(xs).astype(np.uint64)
            out = permute_runs(x, np.concatenate(ns), np.concatenate(keys), np.concatenate(lens))
            items[np.concatenate(pos)] = out.astype(np.int64)
        return items

    def _items_each(self, dom: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Items of draws ``j`` of domains ``dom`` (elementwise keys): `permute_each`."""
        n = self._n[dom]
        passes = j // n
        keys = self._dkeys[dom] ^ splitmix64(passes.astype(np.uint64))
        off = (j - passes * n).astype(np.uint64)
        return permute_each(off, self._n_u64[dom], self._bits[dom], keys).astype(np.int64)

    def _check_first_block(self) -> None:
        """The vectorised path must reproduce the sampler (keys, layout): compare one batch."""
        d, i = self._steps(0, 1)
        ref_d, ref_i = self.sampler.sample_at(np.arange(self.batch_size, dtype=np.int64))
        if not (np.array_equal(d, ref_d) and np.array_equal(i, ref_i)):
            raise ConfigError("sampler", self.sampler, "GlobalIndex does not reproduce sample_at (a bug)")

    def _check_cached(self, d: np.ndarray, i: np.ndarray, path: Path) -> None:
        m = min(len(d), self.block_len)
        bd, bi = self._block(0)
        if not (np.array_equal(d[:m], bd[:m]) and np.array_equal(i[:m], bi[:m])):
            raise ConfigError("cache_dir", str(path), "cached index does not match this sampler; delete it")

    # -- cache -----------------------------------------------------------------------------------

    def config_key(self) -> str:
        """Hash of everything the map depends on: mixture, item counts, seed, batch size, steps,
        composition, schedule, events, the planned target X(total_steps) (which sees schedules
        replaced mid-run) and the format versions."""
        if self._key is None:
            s = self.sampler
            cfg = {
                "index_version": INDEX_VERSION,
                "state_version": STATE_VERSION,
                "names": list(s.names),
                "sizes": [float(x).hex() for x in s.sizes],
                "items": self._n.tolist(),
                "seed": s.seed,
                "batch_size": s.batch_size,
                "total_steps": s.total_steps,
                "composition": s.composition,
                "unit": s.unit,
                "schedule": s.schedule.to_dict(),
                "events": [e.to_dict() for e in s.events],
                "target": [float(x).hex() for x in s.cumulative_target_array(s.total_steps)],
            }
            blob = json.dumps(cfg, sort_keys=True, default=repr).encode()
            self._key = hashlib.blake2b(blob, digest_size=16).hexdigest()
        return self._key

    def cache_paths(self, n: int) -> tuple[Path, Path]:
        """(domains file, items file) of the first ``n`` entries under ``cache_dir``."""
        if self.cache_dir is None:
            raise ConfigError("cache_dir", None, "no cache directory was given")
        stem = f"coolmix-index-{self.config_key()}-n{n}"
        return self.cache_dir / f"{stem}-domains.npy", self.cache_dir / f"{stem}-items.npy"


def _check_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        p.mkdir(parents=True, exist_ok=True)
        st = os.lstat(p)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError("cache_dir", str(p), "must be a directory (not a symlink or a file)")
    return p


def _npy_buffer(dtype: np.dtype, n: int) -> tuple[bytearray, np.ndarray]:
    """A whole ``.npy`` file in one buffer and the array that is its data (written in place, then
    handed to `write_atomic` without a copy)."""
    head = _header(dtype, n)
    buf = bytearray(len(head) + n * dtype.itemsize)
    buf[: len(head)] = head
    return buf, np.frombuffer(buf, dtype=dtype, offset=len(head), count=n)


def _header(dtype: np.dtype, n: int) -> bytes:
    f = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n,)}
    np.lib.format.write_array_header_1_0(f, header)  # magic string included
    return f.getvalue()


def _load(path: Path, dtype: np.dtype, n: int) -> np.ndarray:
    """Memory-map a cached ``.npy`` (a regular file, opened without following symlinks) after
    checking its header: 1-D, ``n`` entries of ``dtype``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise ConfigError("cache_dir", str(path), f"cannot open the cached index ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ConfigError("cache_dir", str(path), "cached index is not a regular file")
        try:
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dt = read(f)
        except (ValueError, OSError, SyntaxError) as e:
            raise ConfigError("cache_dir", str(path), f"not a valid .npy index ({e})") from None
        if shape != (n,) or dt != dtype or fortran:
            raise ConfigError("cache_dir", str(path), f"holds {shape} {dt}, expected ({n},) {dtype}")
        offset = f.tell()
        if os.fstat(f.fileno()).st_size != offset + n * dtype.itemsize:
            raise ConfigError("cache_dir", str(path), "cached index is truncated")
        if n == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=(n,))
