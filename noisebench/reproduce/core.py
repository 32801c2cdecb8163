"""A paper's claim as an experiment: arms (configurations run through the normal engine
and store), and a verdict rule stated before any run, never tuned after seeing one.

The rule is always a test over the runs that share a noise seed (the same noisy
labels), at ALPHA, on the metric the claim is about:
- a *directional* claim ("A beats B") holds when A is significantly better, does not
  hold when B is, and is inconclusive at this number of seeds otherwise;
- an *equivalence* claim ("A matches B within δ") holds when both one-sided tests
  reject a difference of δ or more (TOST), does not hold when the difference is
  significantly beyond δ, and is inconclusive otherwise;
- a claim made of several such parts holds when every part holds, does not hold when
  any part does not, and is inconclusive otherwise.
"""

from __future__ import annotations

import math
import statistics
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


@dataclass(frozen=True)
class Setting:
    """What the user chose for a preset's runs; None keeps the card's value."""

    dataset: str = "digits"
    model: str | None = None  # None: the CNN on images, else the card's model
    seeds: int = 5
    epochs: int | None = None
    device: str = "auto"


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
    margin: float | None = (
        None  # None: directional (a beats b); else equivalence ±margin
    )
    label: str = ""

    def rule(self) -> str:
        metric = METRIC_WORDS.get(self.metric, self.metric)
        if self.margin is None:
            better = "higher" if self.higher_is_better else "lower"
            return f"{self.a} has {better} {metric} than {self.b}"
        points = 100 * self.margin
        unit = "point" if points == 1 else "points"
        return (
            f"{self.a} and {self.b} differ by less than {points:g} {unit} in {metric}"
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
    if len(a) < 2:
        return INCONCLUSIVE, float("nan"), float("nan"), len(a)
    sign = 1.0 if part.higher_is_better else -1.0
    diff = statistics.fmean(x - y for x, y in zip(a, b, strict=True))
    if part.margin is None:
        p = paired_t_test(a, b)
        if p < alpha:
            return (HOLDS if sign * diff > 0 else DOES_NOT_HOLD), diff, p, len(a)
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
    # an equivalence part's own test is TOST, whose interval already tells it all
    directional = part.margin is None
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
    diff = statistics.fmean(x - y for x, y in zip(a, b, strict=True))
    return p / 2 if diff > 0 else 1 - p / 2


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
        seeds=tuple(range(setting.seeds)),
        device=setting.device,
        study=f"reproduce/{preset}",
    )
    return replace(spec, **fields)
