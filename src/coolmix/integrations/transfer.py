"""Batches that cross a DataLoader worker boundary by value: one pickle instead of a handle per tensor.

A DataLoader worker sends each tensor through its own shared-memory file descriptor (a socket
handshake per tensor); for a packed batch of six (8, 512) arrays that handshake, not the packing,
dominated the pipeline's wall time. `ByValueBatch` pickles its arrays as numpy, by value, in the
one message the worker sends anyway, and unpickles as a plain dict of tensors sharing the
received buffers. Imports no torch until a batch is unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["ByValueBatch"]


class ByValueBatch(dict):
    """A packed batch that crosses a process boundary by value and arrives as a plain dict of tensors.

    A DataLoader worker sends each tensor through its own shared-memory file descriptor (a socket
    handshake per tensor, six per packed batch); pickling the rows as numpy arrays is one message,
    ~4-8× faster for (8, 512) rows. ``torch.from_numpy`` on arrival shares the received buffer (no copy).
    """

    def __copy__(self) -> ByValueBatch:  # the DataLoader's default_convert copies, then fills tensors
        return ByValueBatch(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_tensor_dict, ({k: _as_numpy(v) for k, v in self.items()},))


def _as_numpy(v: Any) -> Any:
    """A CPU tensor as the numpy array sharing its memory; anything else unchanged."""
    return v.numpy() if type(v).__module__.startswith("torch") and hasattr(v, "numpy") else v


def _tensor_dict(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """Unpickling side of `ByValueBatch`: numpy arrays → tensors sharing their memory."""
    import torch

    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in arrays.items()}
