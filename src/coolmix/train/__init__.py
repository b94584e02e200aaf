"""The trainer: one loop for LM and MT, single process or DDP under torchrun (imports torch).

    from coolmix.train import train, load_config, DataCache
    cfg = load_config("configs/train/lm_bible_scalarization_tau5.toml", ["run.total_steps=200"])
    result = train(cfg, "runs/lm_s5", cache=DataCache())   # the final metrics record
    result["dev"]["loss"]                                   # {"en": 4.1, "it": ..., ...}

Modules: `config` (TrainConfig), `tasks` (LM/MT batching, evaluation), `loop` (`train`),
`checkpoint` (atomic, checksummed, exact resume), `rundir` (one writer per run directory, stale
temp files), `distributed` (torchrun), `metrics` (sinks; the metrics file is rebuilt from the
checkpoint on resume). Warnings go to the ``coolmix`` logger (the CLI prints them).
"""

from coolmix.train.config import TrainConfig, config_hash, load_config
from coolmix.train.loop import train
from coolmix.train.metrics import MetricSink, read_records
from coolmix.train.tasks import DataCache

__all__ = ["DataCache", "MetricSink", "TrainConfig", "config_hash", "load_config", "read_records", "train"]
