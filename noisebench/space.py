"""Declarative search spaces: plain, serializable parameter distributions.

Methods declare their tunable parameters with these instead of importing Optuna,
so that listing methods stays fast. `to_optuna()` converts each one when tuning.
Real `optuna.distributions` objects are accepted too (see `as_distribution`).
`contains` asks "inside the search range"; `accepts` only "of the right type".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(
    r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|nan)", re.IGNORECASE
)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False

    def parse(self, text: str) -> float:
        # plain ASCII numbers only: Python's float() also takes "1_0" and Arabic-Indic
        # digits; and -0.0 is 0.0, one row on the leaderboard, not two
        if not _NUMBER.fullmatch(text.strip()):
            raise ValueError(f"not a number: {text!r}")
        return float(text) + 0.0

    def accepts(self, value: Any) -> bool:
        return _is_real(value) and math.isfinite(value)

    def contains(self, value: Any) -> bool:
        return self.accepts(value) and self.low <= value <= self.high

    def to_optuna(self):
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)

    def describe(self) -> str:
        return f"float[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False

    def parse(self, text: str) -> int:
        if not _INTEGER.fullmatch(text.strip()):
            raise ValueError(f"not an integer: {text!r}")
        return int(text)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def contains(self, value: Any) -> bool:
        return self.accepts(value) and self.low <= value <= self.high

    def to_optuna(self):
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log)

    def describe(self) -> str:
        return f"int[{self.low}, {self.high}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Categorical:
    choices: tuple

    def parse(self, text: str) -> Any:
        for choice in self.choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, self.choices))}")

    def accepts(self, value: Any) -> bool:
        return value in self.choices

    def contains(self, value: Any) -> bool:
        return self.accepts(value)

    def to_optuna(self):
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.choices)

    def describe(self) -> str:
        return "{" + ", ".join(map(str, self.choices)) + "}"


Distribution = Float | Int | Categorical


def as_distribution(obj: Any) -> Distribution:
    """Accept our own distributions or Optuna's (duck-typed, without importing Optuna)."""
    if isinstance(obj, (Float, Int, Categorical)):
        return obj
    kind = type(obj).__name__
    if kind == "FloatDistribution":
        return Float(obj.low, obj.high, log=obj.log)
    if kind == "IntDistribution":
        return Int(obj.low, obj.high, log=obj.log)
    if kind == "CategoricalDistribution":
        return Categorical(tuple(obj.choices))
    raise TypeError(f"not a search-space distribution: {obj!r}")
