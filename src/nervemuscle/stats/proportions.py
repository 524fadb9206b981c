"""Proportions with 95% confidence intervals (Wilson score and Clopper-Pearson exact).

Numerator and denominator are always kept together: a finding that was not assessable in an exam
is left out of the denominator, so ``n`` can be smaller than the group size.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from scipy.stats import binomtest


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` with Wilson and Clopper-Pearson (exact) 95% CIs; bounds are ``None`` for n=0."""

    k: int
    n: int
    wilson: tuple[float, float] | None
    exact: tuple[float, float] | None

    @property
    def value(self) -> float | None:
        """k/n, or ``None`` when nothing was assessable."""
        return self.k / self.n if self.n else None

    @property
    def percent_text(self) -> str:
        """Whole percent as printed in papers ('85%'), or 'n/a'."""
        return "n/a" if not self.n else f"{round_half_up(100 * self.k / self.n)}%"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["value"] = self.value
        return out


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves upwards (62.5% prints as 63%, as in the literature)."""
    return int(x + 0.5 + 1e-9)


def proportion(k: int, n: int, confidence: float = 0.95) -> Proportion:
    """``k`` successes out of ``n`` with Wilson score and Clopper-Pearson intervals.

    Parameters
    ----------
    k, n : int
        Count and denominator, ``0 <= k <= n``.
    confidence : float
        Confidence level of both intervals.

    Notes
    -----
    Wilson without continuity correction is Newcombe's (1998) method 3; Clopper-Pearson is the
    exact binomial interval (``scipy.stats.binomtest(...).proportion_ci``).
    """
    k, n = int(k), int(n)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Proportion(k, n, None, None)
    test = binomtest(k, n)
    wilson = test.proportion_ci(confidence_level=confidence, method="wilson")
    exact = test.proportion_ci(confidence_level=confidence, method="exact")
    return Proportion(k, n, (float(wilson.low), float(wilson.high)), (float(exact.low), float(exact.high)))
