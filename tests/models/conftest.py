"""Tiny seeded model factories shared by the model tests.

The tests run on one thread: at these sizes a second thread only adds synchronisation, and on a
shared 2-vCPU machine an occasional 0.3-0.8 s stall per step (measured) when a thread is descheduled.
"""

from collections.abc import Callable

import pytest
import torch

from coolmix.models import GPT, GPTConfig, Seq2Seq, Seq2SeqConfig

TINY_GPT = dict(vocab_size=32, d_model=32, n_layer=2, n_head=2, d_ff=64, max_len=16, dropout=0.0)
TINY_SEQ2SEQ = dict(vocab_size=32, d_model=32, n_enc=2, n_dec=2, n_head=2, d_ff=64, max_len=16, dropout=0.0)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def make_gpt() -> Callable[..., GPT]:
    """`make_gpt(seed=0, **overrides)`: a tiny GPT initialised under `torch.manual_seed(seed)`."""

    def make(seed: int = 0, **overrides) -> GPT:
        torch.manual_seed(seed)
        return GPT(GPTConfig(**{**TINY_GPT, **overrides}))

    return make


@pytest.fixture
def make_seq2seq() -> Callable[..., Seq2Seq]:
    """`make_seq2seq(seed=0, **overrides)`: a tiny Seq2Seq initialised under `torch.manual_seed(seed)`."""

    def make(seed: int = 0, **overrides) -> Seq2Seq:
        torch.manual_seed(seed)
        return Seq2Seq(Seq2SeqConfig(**{**TINY_SEQ2SEQ, **overrides}))

    return make
