"""The statistics behind a leaderboard column: ranks, and which methods the seeds can
tell apart from the best (DESIGN.md §6). Pure functions of numbers.

The test is the paired t-test over the runs that share a noise seed: two methods in
one column trained on the same noisy labels, so the pairing removes the variance of
the noise draw, which at 5 seeds is most of the variance. "Significantly best" means
the best mean beats every other method at level ALPHA. That claim is an
intersection-union test (it holds only if each comparison rejects), which keeps its
level without a correction for multiple comparisons (Berger 1982).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from noisebench.ranks import average_ranks

ALPHA = 0.05
TEST = "paired t-test over shared noise seeds, two-sided, α = 0.05"


def paired_differences(
    a: Sequence[float], b: Sequence[float]
) -> tuple[int, float, float]:
    """(pairs, mean, sample std) of the differences a - b; NaN mean and std with fewer
    than two pairs."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    if len(diffs) < 2:
        return len(diffs), math.nan, math.nan
    return len(diffs), statistics.fmean(diffs), statistics.stdev(diffs)


# Student's t from scipy.special throughout: importing scipy.stats takes seconds.
def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test of mean(a - b) = 0, as
    `scipy.stats.ttest_rel`. NaN with fewer than two pairs. With no spread in the
    differences the data decide alone: p = 1 when they are all 0, else 0."""
    from scipy.special import stdtr

    n, mean, sd = paired_differences(a, b)
    if n < 2:
        return math.nan
    if sd == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    t = mean / (sd / math.sqrt(n))
    return float(2 * stdtr(n - 1, -abs(t)))


def paired_interval(
    a: Sequence[float], b: Sequence[float], *, level: float = 0.95
) -> tuple[float, float]:
    """The t confidence interval of mean(a - b) at `level`, the interval that
    `scipy.stats.ttest_rel(a, b).confidence_interval(level)` gives. (NaN, NaN) with fewer
    than two pairs; a point when the differences do not spread."""
    from scipy.special import stdtrit

    n, mean, sd = paired_differences(a, b)
    if n < 2:
        return math.nan, math.nan
    half = float(stdtrit(n - 1, 0.5 + level / 2)) * sd / math.sqrt(n)
    return mean - half, mean + half


def paired_power(pairs: int, effect: float, *, alpha: float = ALPHA) -> float:
    """The probability that the two-sided paired t-test at `alpha` over `pairs` pairs
    rejects when the differences' true mean is `effect` standard deviations (Cohen's
    d_z): the noncentral t distribution's mass beyond the critical values."""
    from scipy.special import nctdtr, stdtrit

    df, shift = pairs - 1, abs(effect) * math.sqrt(pairs)  # symmetric in the sign
    critical = float(stdtrit(df, 1 - alpha / 2))
    # the far tail: scipy returns NaN where its value (< 1e-15 here) underflows
    wrong_side = float(nctdtr(df, shift, -critical))
    return (
        1.0
        - float(nctdtr(df, shift, critical))
        + (0.0 if math.isnan(wrong_side) else wrong_side)
    )


def detectable_effect(pairs: int, *, power: float = 0.8, alpha: float = ALPHA) -> float:
    """The smallest true mean difference, in standard deviations of the differences,
    that the paired t-test over `pairs` pairs detects with probability `power`: what
    an inconclusive comparison could have found, a property of the design and not of
    the observed difference (whose 'observed power' only restates its p-value)."""
    from scipy.optimize import brentq

    if pairs < 2:
        return math.inf
    high = 1.0
    while paired_power(pairs, high, alpha=alpha) < power:
        high *= 2
    return float(
        brentq(lambda d: paired_power(pairs, d, alpha=alpha) - power, 0.0, high)
    )


@dataclass(frozen=True)
class Standing:
    """One cell's place in its column."""

    rank: float  # 1 = highest mean; ties share the mean of their ranks
    mark: str  # BEST, TIED or ""
    p_value: float  # against the column's best; NaN for the best itself, or untestable


BEST = "best"  # significantly better than every other cell of the column
TIED = "tied"  # the best, or one the seeds cannot tell apart from it


def judge_column(
    samples: Mapping[Hashable, Mapping[Hashable, float]], *, alpha: float = ALPHA
) -> dict[Hashable, Standing]:
    """Rank the cells of one column and mark the best, given each cell's values by
    pairing key (its noise seeds). The best is the highest mean (ties broken by the
    order of `samples`). It is BEST when the paired test separates it from every other
    cell; otherwise it and every cell not separated from it are TIED. A cell that
    shares fewer than two noise seeds with the best cannot be tested, so it counts as
    not separated. A column of one cell is no contest: it is ranked, never marked."""
    keys = list(samples)
    if not keys:
        return {}
    means = [statistics.fmean(samples[k].values()) for k in keys]
    ranks = average_ranks(-np.asarray(means))
    best = keys[int(np.argmax(means))]  # the first of equal maxima
    p = {k: _against(samples[best], samples[k]) for k in keys if k != best}
    tied = {k for k, value in p.items() if not value < alpha}
    if len(keys) == 1:
        marks = {best: ""}
    elif tied:
        marks = {k: TIED if k in tied or k == best else "" for k in keys}
    else:
        marks = {k: BEST if k == best else "" for k in keys}
    return {
        k: Standing(float(r), marks[k], p.get(k, math.nan))
        for k, r in zip(keys, ranks, strict=True)
    }


def _against(best: Mapping[Hashable, float], other: Mapping[Hashable, float]) -> float:
    """The paired test's p-value of best > other on their shared keys (NaN if fewer
    than two). One-sided in effect: a cell that is not below the best is never
    separated from it, whatever the p-value."""
    shared = sorted(set(best) & set(other), key=repr)
    a, b = [best[k] for k in shared], [other[k] for k in shared]
    if len(shared) >= 2 and statistics.fmean(a) <= statistics.fmean(b):
        return 1.0
    return paired_t_test(a, b)


def mean_rank(ranks: Sequence[float | None]) -> float | None:
    """The mean of a row's ranks over the table's columns; None when the row is not
    ranked in every column (a mean over fewer columns would not compare)."""
    if not ranks or any(r is None for r in ranks):
        return None
    return statistics.fmean(ranks)
