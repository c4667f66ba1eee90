"""Performance statistics: ours (`analytics.performance`) against empyrical-reloaded on the same daily returns.

Ten years of daily returns (2,520), risk-free 0, annualization 252: Sharpe, Sortino, annualized return, max drawdown
and total return. Equality (rel 1e-9) first, then both timed over the same returns, many calls each.
"""

from __future__ import annotations

import time

import numpy as np
from harness import Figure, emit, figure, stub

DAYS = 2520
CALLS = 2000


def measure() -> dict[str, Figure]:
    try:
        from analytics import performance as ours
    except ImportError as exc:
        return {"performance_stats_speedup": stub("x faster than empyrical", "report the ratio", str(exc))}
    import empyrical

    rng = np.random.default_rng(5)
    returns = rng.normal(0.0004, 0.011, DAYS)
    pairs = {
        "sharpe_ratio": (
            lambda: ours.sharpe_ratio(returns, annualization=252),
            lambda: empyrical.sharpe_ratio(returns, risk_free=0.0, annualization=252),
        ),
        "sortino_ratio": (
            lambda: ours.sortino_ratio(returns, annualization=252),
            lambda: empyrical.sortino_ratio(returns, required_return=0.0, annualization=252),
        ),
        "annualized_return": (
            lambda: ours.annualized_return(returns, annualization=252),
            lambda: empyrical.annual_return(returns, annualization=252),
        ),
        "max_drawdown": (lambda: ours.max_drawdown(returns), lambda: -empyrical.max_drawdown(returns)),
        "total_return": (lambda: ours.total_return(returns), lambda: empyrical.cum_returns_final(returns)),
    }
    for name, (mine, theirs) in pairs.items():
        a, b = float(mine()), float(theirs())
        if not abs(a - b) <= 1e-9 * abs(b):
            raise AssertionError(f"{name}: ours {a!r} != empyrical {b!r}")

    def run(side: int) -> float:
        calls = [pair[side] for pair in pairs.values()]
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(CALLS):
                for call in calls:
                    call()
            best = min(best, time.perf_counter() - t)
        return best / CALLS

    ours_s, theirs_s = run(0), run(1)
    ratio = theirs_s / ours_s
    return {
        "performance_stats_speedup": figure(
            round(ratio, 2),
            "x faster than empyrical",
            "report the ratio",
            None,
            ours_us_per_set=round(ours_s * 1e6, 1),
            empyrical_us_per_set=round(theirs_s * 1e6, 1),
            statistics=sorted(pairs),
            returns=DAYS,
            equal_to_rel=1e-9,
        )
    }


if __name__ == "__main__":
    emit(measure())
