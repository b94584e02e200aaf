"""Compatibility shim: the schedules live in `coolmix.schedules` (one module per family)."""

from coolmix.schedules import (
    SCHEDULES,
    Adaptive,
    Anneal,
    Constant,
    Context,
    Cooldown,
    Dense,
    Event,
    OrderMatters,
    Schedule,
    Stages,
    UniMaxDynamic,
    as_schedule,
    dense_decreasing,
    schedule_from_dict,
)

__all__ = [
    "SCHEDULES",
    "Adaptive",
    "Anneal",
    "Constant",
    "Context",
    "Cooldown",
    "Dense",
    "Event",
    "OrderMatters",
    "Schedule",
    "Stages",
    "UniMaxDynamic",
    "as_schedule",
    "dense_decreasing",
    "schedule_from_dict",
]
