"""The forecast model (pure functions, no torch).

Efficiency doubles beta times a year from E0; a constant power budget P0 then buys cumulative logical
compute C(t) = E0*P0*(1 + (2^(beta*t) - 1)/(beta*ln2)) in units of one year of compute at E0. A scaling
law L = E + K*C^(-kappa) turns compute into loss: the excess-loss ratio is X(t) = C(t)^(-kappa).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

LN2 = math.log(2.0)
SECONDS_PER_YEAR = 365.25 * 24 * 3600


def cumulative_compute(t_years: float, doublings_per_year: float) -> float:
    """1 + (2^(beta t) - 1)/(beta ln2); continuous at beta = 0, where it is 1 + t (expm1 keeps it exact nearby)."""
    b = doublings_per_year
    if b == 0:
        return 1.0 + t_years
    return 1.0 + math.expm1(b * t_years * LN2) / (b * LN2)


def excess_loss_ratio(t_years: float, kappa: float, doublings_per_year: float) -> float:
    return cumulative_compute(t_years, doublings_per_year) ** (-kappa)


def compute_for_ratio(target_ratio: float, kappa: float) -> float:
    """Cumulative compute (in years at E0) at which the excess-loss ratio reaches target_ratio."""
    _check_ratio(target_ratio)
    _check_kappa(kappa)
    return target_ratio ** (-1.0 / kappa)


def years_to_ratio(target_ratio: float, kappa: float, doublings_per_year: float) -> float:
    """Closed-form inverse of excess_loss_ratio in t; math.inf where the target is never reached
    (efficiency halving fast enough that cumulative compute stays bounded)."""
    r = compute_for_ratio(target_ratio, kappa)
    b = doublings_per_year
    if b == 0:
        return r - 1.0
    arg = (r - 1.0) * b * LN2
    if arg <= -1.0:
        return math.inf
    return math.log1p(arg) / (b * LN2)


def doublings_to_ratio(target_ratio: float, kappa: float) -> float:
    """log2(target^(-1/kappa)): compute doublings that take the excess loss down to target_ratio."""
    return math.log2(compute_for_ratio(target_ratio, kappa))


def loss_at(t_years: float, loss_start: float, loss_floor: float, kappa: float, doublings_per_year: float) -> float:
    """L(t) = E + (L0 - E) * X(t)."""
    return loss_floor + (loss_start - loss_floor) * excess_loss_ratio(t_years, kappa, doublings_per_year)


def _check_ratio(r: float) -> None:
    if not (0.0 < r <= 1.0):
        raise ValueError(f"target ratio {r} is outside (0, 1]")


def _check_kappa(k: float) -> None:
    if not (k > 0 and math.isfinite(k)):
        raise ValueError(f"kappa {k} must be positive")


@dataclass(frozen=True)
class ChinchillaLaw:
    """L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, approach 3 fit)."""
    E: float = 1.69
    A: float = 406.4
    B: float = 410.7
    alpha: float = 0.34
    beta: float = 0.28

    @property
    def kappa(self) -> float:
        """Exponent of compute-optimal loss in compute: alpha*beta/(alpha+beta)."""
        return self.alpha * self.beta / (self.alpha + self.beta)

    def loss(self, n_params: float, n_tokens: float) -> float:
        return self.E + self.A / n_params ** self.alpha + self.B / n_tokens ** self.beta

    def optimal_allocation(self, flops: float) -> tuple[float, float]:
        """(N, D) minimising loss at C = 6*N*D."""
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        n = g * (flops / 6.0) ** (self.beta / (self.alpha + self.beta))
        return n, flops / (6.0 * n)

    def optimal_loss(self, flops: float) -> float:
        return self.loss(*self.optimal_allocation(flops))


def training_cost(n_params: float, n_tokens: float, flops_per_s: float | None, flops_per_j: float | None):
    """(logical FLOPs 6ND, seconds, joules) at a configuration's measured rates - a kernel-level bound."""
    c = 6.0 * n_params * n_tokens
    return c, (c / flops_per_s if flops_per_s else None), (c / flops_per_j if flops_per_j else None)
