"""Which item: keyed without-replacement passes over map-style domains (the one home of the rule).

Draw number j of domain d (its cursor) reads item ``permute(j mod n_d, n_d, key_d ^ splitmix64(j div n_d))``
with ``key_d = derive_key(seed, "domain", name_d)``: a fresh keyed permutation per pass, so after k
passes' worth of draws every item has been read ⌊k⌋ or ⌈k⌉ times, in O(1) memory. The key depends on
the domain's *name*, so a domain keeps its order when others are added or removed. `MixtureSampler`
and `coolmix.packing.MapDocuments` both read through `PassItems`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coolmix.permutation import derive_key, permute, permute_each, splitmix64, width

__all__ = ["PassItems"]


class PassItems:
    """Item indices of draws over map-style domains ``names`` with ``counts`` items each.

    >>> p = PassItems(("a", "b"), (3, 1), seed=0)
    >>> sorted(p.item(0, j) for j in range(3)), p.item(1, 5)
    ([0, 1, 2], 0)
    >>> p.take(np.array([0, 0, 1]), np.array([3, 7]), np.array([2, 1])).tolist() == [
    ...     p.item(0, 3), p.item(0, 4), p.item(1, 7)]
    True
    """

    def __init__(self, names: Sequence[str], counts: Sequence[int], seed: int) -> None:
        self.names = tuple(names)
        self.n = np.array([int(c) for c in counts], dtype=np.int64)
        self.keys = [derive_key(seed, "domain", name) for name in self.names]
        self._keys = np.array(self.keys, dtype=np.uint64)
        self._n_u64 = self.n.astype(np.uint64)
        self._bits = np.array([width(int(c)) for c in self.n], dtype=np.uint64)

    def take(self, domains: np.ndarray, start: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Items for sorted ``domains`` (``counts[d]`` slots of each) taking draws start[d], start[d]+1, ...

        All domains go through one vectorised Feistel pass (`permute_each`).
        """
        first = np.cumsum(counts) - counts
        j = start[domains] + (np.arange(len(domains), dtype=np.int64) - first[domains])
        n = self.n[domains]
        passes = j // n
        offsets = (j - passes * n).astype(np.uint64)
        keys = self._keys[domains] ^ splitmix64(passes.astype(np.uint64))
        return permute_each(offsets, self._n_u64[domains], self._bits[domains], keys).astype(np.int64)

    def run(self, i: int, start: int, count: int) -> np.ndarray:
        """Items of draws [start, start + count) of domain ``i`` alone."""
        starts = np.zeros(len(self.names), dtype=np.int64)
        counts = np.zeros(len(self.names), dtype=np.int64)
        starts[i], counts[i] = start, count
        return self.take(np.full(count, i, dtype=np.int64), starts, counts)

    def item(self, i: int, draw: int) -> int:
        """Item index of draw number ``draw`` of domain ``i`` (one draw: the document readers' path)."""
        n = int(self.n[i])
        passes, off = divmod(draw, n)
        key = self.keys[i] ^ int(splitmix64(np.array([passes], dtype=np.uint64))[0])
        return int(permute(np.array([off], dtype=np.uint64), n, key)[0])
