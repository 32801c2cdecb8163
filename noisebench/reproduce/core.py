"""A paper's claim as an experiment: arms (configurations run through the normal engine
and store), and a verdict rule stated before any run, never tuned after seeing one.

The rule is always a test over the runs that share a noise seed (the same noisy
labels), at ALPHA, on the metric the claim is about:
- a *directional* claim ("A beats B") holds when A is significantly better, does not
  hold when B is, and is inconclusive at this number of seeds otherwise;
- an *equivalence* claim ("A matches B within δ") holds when both one-sided tests
  reject a difference of δ or more (TOST), does not hold when the difference is
  significantly beyond δ, and is inconclusive otherwise;
- a *non-inferiority* claim ("A is competitive with B": no worse by δ or more, and
  possibly better) holds when the 95% confidence interval of A − B lies wholly above
  −δ (the one-sided test at ALPHA / 2), does not hold when it lies wholly below −δ, and
  is inconclusive otherwise; so the report's interval shows the verdict;
- a claim made of several such parts holds when every part holds, does not hold when
  any part does not, and is inconclusive otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from noisebench.experiment import RunSpec
from noisebench.leaderboard.stats import (
    detectable_effect,
    paired_differences,
    paired_interval,
    paired_t_test,
)

ALPHA = 0.05
HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
# what a part tests: a beats b; a and b match within the margin; a is no worse than b
# by the margin or more
BEATS, MATCHES, NO_WORSE = "beats", "matches", "no worse"


@dataclass(frozen=True)
class Setting:
    """What the user chose for a preset's runs; None keeps the card's value."""

    dataset: str = "digits"
    model: str | None = None  # None: the CNN on images, else the card's model
    seeds: int = 5
    epochs: int | None = None
    device: str = "auto"
    # seeds are first_seed, first_seed + 1, ...: a replication takes new ones, never
    # more of the seeds an inconclusive report already judged (optional stopping)
    first_seed: int = 0

    @property
    def seed_range(self) -> tuple[int, ...]:
        return tuple(range(self.first_seed, self.first_seed + self.seeds))


@dataclass(frozen=True)
class Arm:
    """One configuration of the experiment, named for the report."""

    label: str
    spec: RunSpec
    # where the arm sits on the report's figure: x value and line, if it has one
    x: float | None = None
    line: str | None = None
    # tuned arms: the method's search space is searched with this many trials (2
    # tuning seeds each) on noisy validation, then its best params run on the seeds
    trials: int | None = None


Records = dict[str, list[dict[str, Any]]]  # arm label -> its records, one per seed


@dataclass(frozen=True)
class Part:
    """One test of a claim: `a` against `b` on `metric`."""

    a: str
    b: str
    metric: str
    higher_is_better: bool = True
    test: str = BEATS  # BEATS, MATCHES or NO_WORSE
    margin: float | None = None  # MATCHES and NO_WORSE: the claim's δ
    label: str = ""

    def __post_init__(self) -> None:
        if self.test not in (BEATS, MATCHES, NO_WORSE):
            raise ValueError(f"unknown test {self.test!r}")
        if (self.margin is None) != (self.test == BEATS):
            raise ValueError(
                f"a '{self.test}' part takes a margin exactly when it is not 'beats'"
            )

    def rule(self) -> str:
        metric = METRIC_WORDS.get(self.metric, self.metric)
        if self.test == BEATS:
            better = "higher" if self.higher_is_better else "lower"
            return f"{self.a} has {better} {metric} than {self.b}"
        points = 100 * self.margin
        unit = "point" if points == 1 else "points"
        if self.test == MATCHES:
            return (
                f"{self.a} and {self.b} differ by less than {points:g} {unit} in"
                f" {metric}"
            )
        worse, better = (
            ("below", "above") if self.higher_is_better else ("above", "below")
        )
        return (
            f"{self.a} is less than {points:g} {unit} {worse} {self.b}, or {better} it,"
            f" in {metric}"
        )


METRIC_WORDS = {
    "test_acc": "clean test accuracy (last epoch)",
    "test_acc_at_best_val": "clean test accuracy (noisy-validation epoch)",
    "ece": "ECE",
    "spread_ratio": "within- to between-class spread",
}


@dataclass(frozen=True)
class PartResult:
    """What the runs say about one part of a claim."""

    part: Part
    outcome: str
    difference: float  # mean of a - b over the pairs
    p_value: float
    pairs: int
    # the 95% confidence interval of the difference: where the seeds place it
    interval: tuple[float, float]
    # the smallest true difference these pairs detect with 80% power, for the spread
    # they show: how large an effect an inconclusive part could have missed
    detectable: float


@dataclass(frozen=True)
class Verdict:
    outcome: str  # HOLDS, DOES_NOT_HOLD or INCONCLUSIVE
    parts: list[PartResult] = field(default_factory=list)


def paired(records: Records, part: Part) -> tuple[list[float], list[float]]:
    """The two arms' values of `part.metric` on the noise seeds both finished."""

    def ok(label: str) -> dict[Any, float]:
        return {
            r["noise_seed"]: r[part.metric]
            for r in records[label]
            if r["status"] == "ok" and r[part.metric] is not None
        }

    a, b = ok(part.a), ok(part.b)
    shared = sorted(set(a) & set(b))
    return [a[k] for k in shared], [b[k] for k in shared]


def judge_part(
    records: Records, part: Part, alpha: float = ALPHA
) -> tuple[str, float, float, int]:
    """(outcome, mean difference a - b, p-value, pairs) of one part."""
    a, b = paired(records, part)
    pairs, diff, _ = paired_differences(a, b)
    if pairs < 2:
        return INCONCLUSIVE, math.nan, math.nan, pairs
    sign = 1.0 if part.higher_is_better else -1.0
    if part.test == BEATS:
        p = paired_t_test(a, b)
        if p < alpha:
            return (HOLDS if sign * diff > 0 else DOES_NOT_HOLD), diff, p, len(a)
        return INCONCLUSIVE, diff, p, len(a)
    if part.test == NO_WORSE:
        # oriented so that higher is better, then shifted by the margin: a one-sided
        # test at alpha / 2 is the 95% interval's bound against -margin
        good = [sign * x + part.margin for x in a]
        bad = [sign * y for y in b]
        p = _one_sided(good, bad)  # a - b > -margin
        if p < alpha / 2:
            return HOLDS, diff, p, len(a)
        beyond = _one_sided(bad, good)  # a - b < -margin
        if beyond < alpha / 2:
            return DOES_NOT_HOLD, diff, beyond, len(a)
        return INCONCLUSIVE, diff, p, len(a)
    # TOST: both one-sided tests against the margin must reject for equivalence
    m = part.margin
    p_low = _one_sided([x + m for x in a], b)  # a - b > -m
    p_high = _one_sided(b, [x - m for x in a])  # a - b < m
    p = max(p_low, p_high)
    if p < alpha:
        return HOLDS, diff, p, len(a)
    beyond = min(_one_sided(b, [x + m for x in a]), _one_sided([x - m for x in a], b))
    if beyond < alpha:  # the difference is significantly beyond the margin
        return DOES_NOT_HOLD, diff, beyond, len(a)
    return INCONCLUSIVE, diff, p, len(a)


def _result(records: Records, part: Part, alpha: float) -> PartResult:
    a, b = paired(records, part)
    outcome, diff, p, pairs = judge_part(records, part, alpha)
    spread = paired_differences(a, b)[2]  # NaN below two pairs
    # a part against a margin is read from its interval, which already tells it all
    directional = part.test == BEATS
    return PartResult(
        part,
        outcome,
        diff,
        p,
        pairs,
        paired_interval(a, b),
        detectable_effect(pairs, alpha=alpha) * spread if directional else math.nan,
    )


def _one_sided(a: Sequence[float], b: Sequence[float]) -> float:
    """p-value of mean(a - b) > 0 (paired t-test, one-sided)."""
    p = paired_t_test(a, b)
    return p / 2 if paired_differences(a, b)[1] > 0 else 1 - p / 2


def judge(records: Records, parts: Sequence[Part], alpha: float = ALPHA) -> Verdict:
    results = [_result(records, part, alpha) for part in parts]
    outcomes = [r.outcome for r in results]
    if all(o == HOLDS for o in outcomes):
        overall = HOLDS
    elif any(o == DOES_NOT_HOLD for o in outcomes):
        overall = DOES_NOT_HOLD
    else:
        overall = INCONCLUSIVE
    return Verdict(overall, results)


@dataclass(frozen=True)
class Preset:
    """A claim of a paper as a runnable experiment."""

    name: str
    paper: str  # citation with a link
    claim: str  # the claim in one line
    arms: Callable[[Setting], list[Arm]]
    # the verdict's parts, given the arms that ran (some parts depend on which arm won)
    parts: Callable[[Records], list[Part]]
    metrics: tuple[str, ...] = ("test_acc", "test_acc_at_best_val")
    paper_figures: str = ""  # what the paper reports on its own setting, if anything
    # a rule changed after runs had been judged: what changed, when, why, and what the
    # old rule said, so that no report hides a rule tuned after seeing results
    amended: str = ""
    figure: tuple[str, str] | None = None  # (x label, metric) of the report's line plot
    # presets that measure the trained models themselves (not only their records):
    # (prepared, FitResult) -> per seed, values to judge on and to draw; their arms
    # always train, since a stored record holds no model
    probe: Callable[[Any, Any], list[dict[str, Any]]] | None = None
    draw: Callable[[Any], Any] | None = None  # Result -> the report's figure


def base_spec(setting: Setting, preset: str, **fields: Any) -> RunSpec:
    """A RunSpec of the user's setting, marked with the preset that made it."""
    from noisebench.data import resolve_card
    from noisebench.experiment import train_config_for
    from noisebench.noise import NoiseSpec

    card = resolve_card(setting.dataset)
    # the papers' models are convolutional: the CNN where the card has images, else
    # the card's own model (MNIST-1D: its 1-D CNN)
    model = setting.model or ("cnn" if card.image_shape else None)
    noise = fields.pop("noise", NoiseSpec(kind="symmetric", rate=0.0))
    spec = RunSpec(
        method=fields.pop("method", "ce"),
        params=fields.pop("params", {}),
        dataset=setting.dataset,
        noise=noise,
        train=train_config_for(card, model=model, epochs=setting.epochs),
        seeds=setting.seed_range,
        device=setting.device,
        study=f"reproduce/{preset}",
    )
    return replace(spec, **fields)
