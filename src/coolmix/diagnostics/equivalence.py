"""Theorem 1 check: full-batch GD on the scalarized objective equals GD on the temperature objective.

L_TS(τ) = Σ_i p_τ,i · mean_{x∈D_i} L(x)   and   L_S = (1/N) Σ_x w_{f(x)} L(x), w = p_τ / p_1.
They are the same function of the parameters, so from one initialisation with one learning rate
the parameter trajectories coincide up to float round-off (paper.md §7, T1).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch

from coolmix.distributions import temperature_array
from coolmix.mixture import check_sizes

__all__ = ["theorem1_check"]


def theorem1_check(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    data_by_domain: Mapping[str, Any],
    tau: float,
    steps: int = 50,
    lr: float = 0.1,
) -> dict[str, Any]:
    """Run ``steps`` of full-batch SGD under both objectives from copies of ``model``.

    ``loss_fn(model, data)`` returns per-example losses (1-D) for one domain's whole data.
    Returns the max |Δθ| after each step, the final objective values and the weights used.
    """
    sizes = {n: float(_len(loss_fn, model, d)) for n, d in data_by_domain.items()}
    names, n = check_sizes(sizes)
    pt = temperature_array(n, tau)
    w = pt / (n / n.sum())
    total = float(n.sum())
    m_ts, m_s, m_1 = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    opt_ts = torch.optim.SGD(m_ts.parameters(), lr=lr)
    opt_s = torch.optim.SGD(m_s.parameters(), lr=lr)
    opt_1 = torch.optim.SGD(m_1.parameters(), lr=lr)
    diffs, control = [], []
    for _ in range(steps):
        opt_ts.zero_grad()
        l_ts = sum(float(pt[k]) * loss_fn(m_ts, data_by_domain[name]).mean() for k, name in enumerate(names))
        l_ts.backward()
        opt_ts.step()
        opt_s.zero_grad()
        l_s = (
            sum(float(w[k]) * loss_fn(m_s, data_by_domain[name]).sum() for k, name in enumerate(names))
            / total
        )
        l_s.backward()
        opt_s.step()
        # control: the unweighted (proportional) objective, to show the check can tell objectives apart
        opt_1.zero_grad()
        (sum(loss_fn(m_1, data_by_domain[name]).sum() for name in names) / total).backward()
        opt_1.step()
        diffs.append(_max_abs_diff(m_ts, m_s))
        control.append(_max_abs_diff(m_ts, m_1))
    return {
        "tau": tau,
        "steps": steps,
        "lr": lr,
        "max_abs_param_diff": max(diffs),
        "diff_per_step": diffs,
        "control_max_abs_param_diff": max(control),
        "loss_ts": float(l_ts.detach()),
        "loss_s": float(l_s.detach()),
        "weights": dict(zip(names, w.tolist(), strict=True)),
        "param_scale": max(float(p.detach().abs().max()) for p in m_ts.parameters()),
    }


@torch.no_grad()
def _max_abs_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def _len(loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor], model: torch.nn.Module, data: Any) -> int:
    with torch.no_grad():
        return int(loss_fn(model, data).shape[0])
