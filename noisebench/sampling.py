"""Two small pieces of exact sampling shared by data splits and noise."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def largest_remainder(n: int, weights: Any, rng: np.random.Generator) -> np.ndarray:
    """Split `n` into integer counts proportional to `weights` (which sum to 1).

    Counts sum to `n` and each is within 1 of `n * weights[j]`, so small shares are
    never rounded away. Ties among remainders are broken at random, not towards
    low indices (which would bias noise towards class 0).
    """
    quota = np.round(
        n * np.asarray(weights, dtype=np.float64), 9
    )  # drop float fuzz (5.9999999)
    base = np.floor(quota).astype(np.int64)
    short = int(n - base.sum())
    if (base < 0).any() or not 0 <= short <= len(quota):
        # a caller's bug, not user input: T and class shares are validated upstream
        raise ValueError("weights must be non-negative and sum to 1")
    # rounded, so that remainders equal on paper (1.3 - 1 vs 2.3 - 2) tie and go to the RNG
    remainder = np.round(quota - base, 9)
    order = np.lexsort((rng.random(len(quota)), -remainder))
    base[order[:short]] += 1
    return base


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from JSON-able parts, stable across processes, platforms and versions."""
    blob = json.dumps(parts, sort_keys=True, default=_plain).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


def _plain(obj: Any) -> Any:
    """numpy scalars as the Python numbers they equal: np.int64(3) seeds like 3."""
    return obj.item() if isinstance(obj, np.generic) else str(obj)
