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
    order = np.lexsort((rng.random(len(quota)), -(quota - base)))
    base[order[:short]] += 1
    return base


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from JSON-able parts, stable across processes, platforms and versions."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1
