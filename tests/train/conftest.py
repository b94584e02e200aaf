"""Fixtures of the trainer tests: one thread, a session-wide corpus/tokenizer cache, tiny configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from train_helpers import TINY_LM

from coolmix.train import DataCache, TrainConfig, load_config


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("coolmix-cache")


@pytest.fixture(scope="session")
def data_cache() -> DataCache:
    return DataCache()


@pytest.fixture
def lm_config(cache_dir) -> Callable[..., TrainConfig]:
    """``lm_config("run.seed=1", ...)``: the tiny LM config with dotted overrides."""

    def make(*overrides: str, base: dict = TINY_LM) -> TrainConfig:
        return load_config(base, [f'run.cache_dir="{cache_dir}"', *overrides])

    return make
