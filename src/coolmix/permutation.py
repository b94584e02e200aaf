"""Keyed bijection on [0, n) in O(1) memory: a Feistel network with cycle-walking.

Used for without-replacement passes: pass k over a domain of n items visits
``permute(arange(n), n, key(seed, domain, k))``, a fresh order per pass, with no O(n) array.
Works for n up to 2**62; vectorised over numpy uint64 arrays.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_key", "permute", "permute_each", "splitmix64"]

_ROUNDS = 4  # Luby–Rackoff: 4 rounds of a pseudo-random function give a strong permutation
_C0 = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


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


def round_keys(key: int) -> np.ndarray:
    """The per-round keys of ``key`` (precompute when permuting many batches with one key)."""
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
    bits = max(int(n - 1).bit_length(), 2)
    keys = round_keys(key)
    out = _feistel(x, bits, keys)
    if n == 1 << bits:
        return out
    limit = np.uint64(n)
    todo = np.flatnonzero(out >= limit)
    while todo.size:
        out[todo] = _feistel(out[todo], bits, keys)
        todo = todo[out[todo] >= limit]
    return out


def _feistel(x: np.ndarray, bits: int, keys: np.ndarray) -> np.ndarray:
    """Unbalanced Feistel on [0, 2^bits): halves of a and b bits swap widths every round."""
    a, b = (bits + 1) // 2, bits // 2  # left has a bits, right has b bits
    left, right = x >> np.uint64(b), x & np.uint64((1 << b) - 1)
    for k in keys:
        # round function: multiply–xorshift–multiply, keeping the well-mixed top a bits
        f = right ^ k
        f *= _C1
        f ^= f >> _S31
        f *= _C2
        f >>= np.uint64(64 - a)
        left ^= f
        left, right = right, left
        a, b = b, a
    return (left << np.uint64(b)) | right


def permute_each(x: np.ndarray, n: np.ndarray, bits: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Elementwise ``permute(x[e], n[e], keys[e])`` in one vectorised pass (many domains per batch).

    ``bits[e]`` must be ``max((n[e] - 1).bit_length(), 2)`` (callers compute it exactly per domain).
    Elements with n = 1 map to 0. Same bijections as `permute`, without a Python loop per domain.
    """
    x = np.asarray(x, dtype=np.uint64)
    rk = [splitmix64(keys + np.uint64(r)) for r in range(_ROUNDS)]
    out = _feistel_each(x, bits, rk)
    todo = np.flatnonzero(out >= n)
    while todo.size:
        out[todo] = _feistel_each(out[todo], bits[todo], [k[todo] for k in rk])
        todo = todo[out[todo] >= n[todo]]
    return out


def _feistel_each(x: np.ndarray, bits: np.ndarray, rk: list[np.ndarray]) -> np.ndarray:
    """`_feistel` with per-element widths and round keys."""
    a = (bits + np.uint64(1)) >> np.uint64(1)
    b = bits >> np.uint64(1)
    one = np.uint64(1)
    left, right = x >> b, x & ((one << b) - one)
    top_a, top_b = np.uint64(64) - a, np.uint64(64) - b
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
