"""coolmix: balanced training on heavily imbalanced multi-domain data.

The mixing core (this namespace) is numpy-only: distributions, temperature schedules
(Cooldown and more), an exact resumable world-size-elastic sampler, and loss weights.
Importing it never imports torch.
"""

from coolmix.distributions import (
    DISTRIBUTIONS,
    Distribution,
    Explicit,
    Proportional,
    Temperature,
    Uniform,
    UniMax,
    UniMaxAllocation,
    as_distribution,
    explicit_probs,
    proportional_probs,
    temperature_probs,
    uniform_probs,
    unimax,
    unimax_probs,
)
from coolmix.errors import ConfigError
from coolmix.mixture import Mixture
from coolmix.sampler import MixtureSampler
from coolmix.schedules import (
    SCHEDULES,
    Adaptive,
    Anneal,
    Constant,
    Cooldown,
    Dense,
    Event,
    OrderMatters,
    Schedule,
    Stages,
    UniMaxDynamic,
    schedule_from_dict,
)
from coolmix.weighting import (
    StepWeights,
    check_reachable,
    loss_weights,
    scalarization_weights,
    step_weights,
    theorem2_gap,
    variance_inflation,
    weighted_loss,
    weights_at,
)

__version__ = "0.1.0"

__all__ = [
    "DISTRIBUTIONS",
    "SCHEDULES",
    "Adaptive",
    "Anneal",
    "ConfigError",
    "Constant",
    "Cooldown",
    "Dense",
    "Distribution",
    "Event",
    "Explicit",
    "Mixture",
    "MixtureSampler",
    "OrderMatters",
    "Proportional",
    "Schedule",
    "Stages",
    "StepWeights",
    "Temperature",
    "UniMax",
    "UniMaxAllocation",
    "UniMaxDynamic",
    "Uniform",
    "as_distribution",
    "check_reachable",
    "explicit_probs",
    "loss_weights",
    "proportional_probs",
    "scalarization_weights",
    "schedule_from_dict",
    "step_weights",
    "temperature_probs",
    "theorem2_gap",
    "uniform_probs",
    "unimax",
    "unimax_probs",
    "variance_inflation",
    "weighted_loss",
    "weights_at",
]
