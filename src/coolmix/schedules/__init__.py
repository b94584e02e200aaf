"""Temperature schedules: values with ``probs_at(step)``, pure functions of the step.

A schedule is a small frozen value. The sampler, the planner, the plots and the report all call
the same function, so there is no hidden counter. Two inputs besides the step are explicit:
recorded *events* (an adaptive switch, Li et al.'s Cooldown triggered by a detector) and, for
UniMax-dynamic only, the sampler's realised per-domain counts. Both live in the sampler state,
so the stream stays a pure function of (seed, config, events, step).

Boundaries given as floats in (0, 1) are fractions of ``total_steps``; ints are absolute steps.
Every joined piece sees the *global* step. Each kind is registered in `SCHEDULES` (kind → class),
validates itself, and serialises through ``to_dict`` / ``from_dict`` derived from its fields.

Modules: ``_base`` (Schedule, Context, Event, registry), ``_static`` (Constant, Stages,
Cooldown, Dense), ``_anneal`` (Anneal), ``_exposure`` (OrderMatters, UniMaxDynamic, Adaptive).
"""

from coolmix.schedules._anneal import Anneal
from coolmix.schedules._base import SCHEDULES, Context, Event, Schedule, as_schedule, cuts, schedule_from_dict
from coolmix.schedules._exposure import Adaptive, OrderMatters, UniMaxDynamic
from coolmix.schedules._static import Constant, Cooldown, Dense, Stages

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
    "cuts",
    "schedule_from_dict",
]
