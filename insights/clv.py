"""Predicted customer lifetime value: BG/NBD (purchases) and Gamma-Gamma (order value).

Our own maximum-likelihood fits with numpy/scipy, after Fader, Hardie & Lee, "Counting Your
Customers the Easy Way" (2005) and "RFM and CLV: Using Iso-value Curves" (2005). Pure functions
over arrays: no ORM, so the service, the benchmark and the tests share them.

Inputs per customer, in one time unit (the service uses days):
- ``x``: repeat purchases (purchase periods after the first; several orders on one day are one);
- ``t_x``: time from the first to the last purchase;
- ``T``: time from the first purchase to the end of the observation;
- ``m``: average value of the repeat purchase periods (Gamma-Gamma, only where x > 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

# Parameters are searched in [1e-6, 1e6]: when nobody in the data ever drops out, a and b (or
# q and v) grow without bound; the bounded optimum predicts the same and stays storable.
LOG_BOUND = float(np.log(1e6))


def _minimize(objective, start: np.ndarray):
    """Nelder-Mead to get close, then bounded L-BFGS-B to polish (both on log-parameters)."""
    result = minimize(
        objective,
        start,
        method="Nelder-Mead",
        options={"maxiter": 20000, "maxfev": 20000, "xatol": 1e-9, "fatol": 1e-12},
    )
    start = np.clip(result.x, -LOG_BOUND, LOG_BOUND)
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    return minimize(objective, start, method="L-BFGS-B", bounds=bounds)


class FitError(ValueError):
    """Too little or degenerate data to fit a model (the service then leaves CLV empty)."""


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    def as_dict(self) -> dict:
        return asdict(self)


def _arrays(*values) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in values]


def bgnbd_log_likelihood(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """Log-likelihood of each customer's (x, t_x, T) under BG/NBD."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            repeat,
            np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return a1 + a2 + np.logaddexp(a3, a4)


def _check(x: np.ndarray, *others: np.ndarray) -> None:
    if len(x) < 3:
        raise FitError("At least three customers are needed to fit a model.")
    for arr in (x, *others):
        if not np.all(np.isfinite(arr)):
            raise FitError("The inputs contain missing or infinite values.")


def bgnbd_fit(x, t_x, T, *, weights=None) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters (alpha in the unit of t_x and T)."""
    x, t_x, T = _arrays(x, t_x, T)
    _check(x, t_x, T)
    if np.any(T <= 0) or np.any(t_x > T) or np.any(x < 0):
        raise FitError("Each customer needs 0 <= t_x <= T and T > 0.")
    if not np.any(x > 0):
        raise FitError("Nobody bought twice: repeat behaviour cannot be estimated.")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    # Fit on a scale where times are of order 1; alpha scales back, r, a and b do not change.
    scale = float(T.max()) / 10.0
    ts, Ts = t_x / scale, T / scale

    def objective(log_params: np.ndarray) -> float:
        r, alpha, a, b = np.exp(log_params)
        ll = bgnbd_log_likelihood(BgNbdParams(r, alpha, a, b), x, ts, Ts)
        value = -float(np.sum(w * ll) / np.sum(w))
        return value if np.isfinite(value) else 1e10

    best = None
    for start in (np.zeros(4), np.log([0.5, 1.0, 0.5, 2.0])):
        result = _minimize(objective, start)
        if best is None or result.fun < best.fun:
            best = result
    r, alpha, a, b = np.exp(best.x)
    return BgNbdParams(float(r), float(alpha * scale), float(a), float(b))


def bgnbd_expected_purchases(params: BgNbdParams, t: float, x, t_x, T) -> np.ndarray:
    """Expected purchases in the next ``t`` time units, given each customer's history."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    first = (a + b + x - 1) / (a - 1)
    second = 1 - hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t)) * (
        (alpha + T) / (alpha + t + T)
    ) ** (r + x)
    return first * second / _alive_denominator(params, x, t_x, T)


def _alive_denominator(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = (
            np.log(a)
            - np.log(np.where(repeat, b + x - 1, 1.0))
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
        return 1 + np.where(repeat, np.exp(log_ratio), 0.0)


def bgnbd_probability_alive(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """Probability that each customer is still active at the end of the observation."""
    x, t_x, T = _arrays(x, t_x, T)
    return 1 / _alive_denominator(params, x, t_x, T)


def gamma_gamma_log_likelihood(params: GammaGammaParams, x, m) -> np.ndarray:
    x, m = _arrays(x, m)
    p, q, v = params.p, params.q, params.v
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + (p * x) * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )


def gamma_gamma_fit(x, m) -> GammaGammaParams:
    """Gamma-Gamma parameters from repeat customers (x > 0) and their average value m > 0."""
    x, m = _arrays(x, m)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    _check(x, m)
    scale = float(np.median(m))

    def objective(log_params: np.ndarray) -> float:
        p, q, v = np.exp(log_params)
        value = -float(np.mean(gamma_gamma_log_likelihood(GammaGammaParams(p, q, v), x, m / scale)))
        return value if np.isfinite(value) else 1e10

    result = _minimize(objective, np.zeros(3))
    p, q, v = np.exp(result.x)
    return GammaGammaParams(float(p), float(q), float(v * scale))


def gamma_gamma_expected_value(params: GammaGammaParams, x, m) -> np.ndarray:
    """Expected average order value of each customer (the population mean when x == 0)."""
    x, m = _arrays(x, m)
    p, q, v = params.p, params.q, params.v
    population = p * v / (q - 1) if q > 1 else np.nan
    with np.errstate(invalid="ignore"):
        individual = ((q - 1) / (p * x + q - 1)) * population + (p * x / (p * x + q - 1)) * m
    return np.where(x > 0, individual, population)


def predicted_clv(
    bgnbd: BgNbdParams, gg: GammaGammaParams | None, *, horizon: float, x, t_x, T, m
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expected purchases, probability alive, predicted value) over ``horizon`` time units.

    Value = expected purchases x expected average order value, undiscounted. Without a
    Gamma-Gamma fit the customer's own average stands in for the expected order value.
    """
    x, t_x, T, m = _arrays(x, t_x, T, m)
    purchases = bgnbd_expected_purchases(bgnbd, horizon, x, t_x, T)
    alive = bgnbd_probability_alive(bgnbd, x, t_x, T)
    value = gamma_gamma_expected_value(gg, x, m) if gg is not None else m
    return purchases, alive, purchases * value
