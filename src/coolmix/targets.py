"""Whether a loss target fits a sampling schedule over a run, for the trainer and the HF
`MixtureTrainer` alike: the reachability check `coolmix.loss_weights` makes
(`coolmix.weighting.check_reachable`), on the union of the schedule's supports over the run, then
the rare-domain weight warnings (`coolmix.rare_domains`) at each domain's rarest phase.

Re-weighting reaches p_target only through domains the schedule ever samples (w_i = p_target,i /
p_sample,i is undefined where p_sample,i = 0 at every step): a target that needs a never-sampled
domain would train it at weight 0 without a word, so it is a `ConfigError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from coolmix.distributions import Distribution
from coolmix.errors import ConfigError
from coolmix.rare_domains import weight_warnings
from coolmix.schedules import Adaptive, Context, Schedule, cuts
from coolmix.weighting import check_reachable

__all__ = ["check_target", "run_probs"]

PROBES = 4096
"""Most steps at which a continuous schedule is probed."""

log = logging.getLogger("coolmix")


def _pieces(schedule: Schedule) -> list[Schedule]:
    """The schedules that may be in force: both sides of an `Adaptive` switch, else itself."""
    if isinstance(schedule, Adaptive):
        return [*_pieces(schedule.hot), *_pieces(schedule.cold)]
    return [schedule]


def run_probs(schedule: Schedule, ctx: Context) -> list[tuple[int, np.ndarray]]:
    """(step, p(step)) at the steps that cover the run: each phase's start for a piecewise
    schedule (both sides of an adaptive switch), up to `PROBES` steps of a continuous one."""
    T = ctx.total_steps
    out = []
    for piece in _pieces(schedule):
        points = cuts(piece, ctx)
        if points is None:
            steps = np.unique(np.linspace(0, T - 1, min(T, PROBES)).astype(np.int64)).tolist()
        else:
            steps = [0, *(b for b in points if 0 < b < T)]
        out += [(int(s), piece.probs(int(s), ctx)) for s in steps]
    return out


def check_target(
    schedule: Schedule,
    target: Distribution,
    sizes: Mapping[str, float],
    total_steps: int,
    batch_size: int | None = None,
    field: str = "target",
    composition: str = "exact",
) -> list[str]:
    """Refuse a target the schedule can never serve (a ConfigError naming ``field`` and the
    domain), then log and return the rare-domain weight warnings over the run."""
    ctx = Context.of(sizes, total_steps)
    probes = run_probs(schedule, ctx)
    seen = np.max([p for _, p in probes], axis=0)
    try:
        pt = target.array(ctx.names, ctx.sizes)
    except ConfigError as e:  # e.g. explicit weights naming an unknown domain
        raise ConfigError(f"{field}.{e.field}", e.value, e.why) from None
    try:
        check_reachable(seen, pt, ctx.names)  # the check loss_weights makes, on the run's union
    except ConfigError as e:
        why = f"needs domain {e.value!r}, which the schedule never samples (p = 0 at every step)"
        raise ConfigError(field, target.to_dict(), why) from None
    # name -> (weight, p) at the step where the up-weighted domain is drawn least
    worst: dict[str, tuple[float, float]] = {}
    for _, p in probes:
        w = np.divide(pt, p, out=np.zeros_like(pt), where=p > 0)
        for i, n in enumerate(ctx.names):
            if w[i] > 1 and p[i] > 0 and (n not in worst or p[i] < worst[n][1]):
                worst[n] = (float(w[i]), float(p[i]))
    names = list(worst)
    warnings = weight_warnings(
        names,
        np.array([worst[n][0] for n in names]),
        np.array([worst[n][1] for n in names]),
        batch_size,
        composition,
        "its rarest phase" if len(probes) > 1 else None,
    )
    for text in warnings:
        log.warning(text)
    return warnings
