"""Keyed bijection on [0, n) in O(1) memory: a Feistel network with cycle-walking.

Used for without-replacement passes: pass k over a domain of n items visits
``permute(arange(n), n, key(seed, domain, k))``, a fresh order per pass, with no O(n) array.
Works for n up to 2**62; vectorised over numpy uint64 arrays. `permute` (one n and key) and
`permute_each` (one n and key per element) share one Feistel round, `_feistel`, so they are the
same bijection by construction (tests/core/test_permutation.py checks it too).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

__all__ = [
    "derive_key",
    "permute",
    "permute_each",
    "permute_rows",
    "permute_runs",
    "round_keys",
    "splitmix64",
    "width",
]

_ROUNDS = 4  # Luby–Rackoff: 4 rounds of a pseudo-random function give a strong permutation
_C0 = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_ONE, _U64 = np.uint64(1), np.uint64(64)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser: a fast, well-mixing bijection on uint64 arrays (wrapping)."""
    z = x + _C0
    z ^= z >> _S30
    z *= _C1
    z ^= z >> _S27
    z *= _C2
    z ^= z >> _S31
    return z


def derive_key(*parts: int | str) -> int:
    """A 64-bit key from (seed, purpose, domain name, pass, ...), stable across runs and platforms."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "little")


def width(n: int) -> int:
    """Bits b of the Feistel domain [0, 2^b) that covers [0, n): ``max(bit_length(n - 1), 2)``."""
    return max(int(n - 1).bit_length(), 2)


def round_keys(key: int) -> np.ndarray:
    """The per-round keys of ``key``: ``splitmix64(key + r)`` for r = 0..3 (wrapping)."""
    return splitmix64(np.arange(_ROUNDS, dtype=np.uint64) + np.uint64(key & 0xFFFFFFFFFFFFFFFF))


def permute(x: np.ndarray, n: int, key: int) -> np.ndarray:
    """π_key(x) for x in [0, n): a bijection of [0, n) chosen by ``key``.

    An unbalanced Feistel network permutes [0, 2^b) with 2^b < 2n; values landing outside
    [0, n) are re-encrypted (cycle-walking) until they land inside, preserving bijectivity.

    >>> sorted(permute(np.arange(10, dtype=np.uint64), 10, key=7).tolist()) == list(range(10))
    True
    """
    x = np.asarray(x, dtype=np.uint64)
    if n <= 1:
        return np.zeros_like(x)
    bits = np.uint64(width(n))
    rk = list(round_keys(key))
    again = lambda idx, v: _feistel(v, bits, rk)  # noqa: E731
    return _cycle_walk(_chunked(x, lambda c: _feistel(c, bits, rk)), np.uint64(n), again)


def permute_each(x: np.ndarray, n: np.ndarray, bits: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Elementwise ``permute(x[e], n[e], keys[e])`` in one vectorised pass (many domains per batch).

    ``bits[e]`` must be ``width(n[e])`` (callers compute it exactly per domain). Elements with
    n = 1 map to 0. The same bijections as `permute`, without a Python loop per domain.
    """
    x = np.asarray(x, dtype=np.uint64)
    if x.size > _CHUNK:  # cache-sized pieces (see `_chunked`)
        out = np.empty_like(x)
        for a in range(0, x.size, _CHUNK):
            z = a + _CHUNK
            out[a:z] = permute_each(x[a:z], n[a:z], bits[a:z], keys[a:z])
        return out
    rk = [splitmix64(keys + np.uint64(r)) for r in range(_ROUNDS)]
    return _cycle_walk(_feistel(x, bits, rk), n, lambda idx, v: _feistel(v, bits[idx], [k[idx] for k in rk]))


def permute_rows(x: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """Row r of ``x`` (shape (R, m), values in [0, n)) through ``permute(·, n, keys[r])``: many keys
    sharing one n in one vectorised pass (e.g. the batch orders of many steps)."""
    x = np.array(x, dtype=np.uint64, ndmin=2)
    if n <= 1:
        return np.zeros_like(x)
    bits, m = np.uint64(width(n)), x.shape[1]
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 1)
    step = max(1, _CHUNK // max(m, 1))  # rows per cache-sized piece (see `_chunked`)
    if x.shape[0] > step:
        parts = [permute_rows(x[r : r + step], n, keys[r : r + step]) for r in range(0, len(x), step)]
        return np.vstack(parts)
    rk = [splitmix64(keys + np.uint64(r)) for r in range(_ROUNDS)]
    flat = _feistel(x, bits, rk).reshape(-1)
    again = lambda idx, v: _feistel(v, bits, [k[idx // m, 0] for k in rk])  # noqa: E731
    return _cycle_walk(flat, np.uint64(n), again).reshape(x.shape)


def permute_runs(x: np.ndarray, n: np.ndarray, keys: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Run r of ``x`` (``lengths[r]`` consecutive values in [0, n[r])) through
    ``permute(·, n[r], keys[r])`` (e.g. every (domain, pass) run of a block of batches)."""
    x = np.asarray(x, dtype=np.uint64)
    out = np.empty_like(x)
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64)).tolist()
    starts = [0, *ends[:-1]]
    for a, z, nr, kr in zip(starts, ends, np.asarray(n).tolist(), np.asarray(keys, dtype=np.uint64).tolist(),
                            strict=True):
        out[a:z] = permute(x[a:z], int(nr), int(kr))
    return out


_CHUNK = 2**14
"""Elements per Feistel pass: a few temporaries of this size stay in a core's L2 cache (long
arrays are several times slower per element, bits are the same)."""


def _chunked(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn`` (elementwise) applied to cache-sized pieces of ``x``."""
    if x.size <= _CHUNK:
        return fn(x)
    flat, out = x.reshape(-1), np.empty(x.size, dtype=np.uint64)
    for a in range(0, flat.size, _CHUNK):
        out[a : a + _CHUNK] = fn(flat[a : a + _CHUNK])
    return out.reshape(x.shape)


def _cycle_walk(
    out: np.ndarray, n: np.uint64 | np.ndarray, again: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Re-encrypt (``again(indices, values)``) every value still >= its n until all land in [0, n)."""
    todo = np.flatnonzero(out >= n)
    while todo.size:
        if todo.size > _CHUNK:  # cache-sized pieces (see `_chunked`)
            for a in range(0, todo.size, _CHUNK):
                part = todo[a : a + _CHUNK]
                out[part] = again(part, out[part])
        else:
            out[todo] = again(todo, out[todo])
        limit = n[todo] if isinstance(n, np.ndarray) else n
        todo = todo[out[todo] >= limit]
    return out


def _feistel(x: np.ndarray, bits: np.uint64 | np.ndarray, rk: list) -> np.ndarray:
    """One pass of the unbalanced Feistel network on [0, 2^bits): the one round function.

    The left half has a = ⌈bits/2⌉ bits and the right half b = ⌊bits/2⌋; the widths swap every
    round. Round function: F(R) = top a bits of mul–xorshift–mul of R ⊕ k. ``bits`` and the round
    keys ``rk`` are scalars (`permute`) or arrays aligned with ``x`` (`permute_each`).
    """
    a = (bits + _ONE) >> _ONE
    b = bits >> _ONE
    left, right = x >> b, x & ((_ONE << b) - _ONE)
    top_a, top_b = _U64 - a, _U64 - b
    for k in rk:
        f = right ^ k
        f *= _C1
        f ^= f >> _S31
        f *= _C2
        f >>= top_a
        left ^= f
        left, right = right, left
        top_a, top_b = top_b, top_a
        a, b = b, a
    return (left << b) | right
