"""Ranks with ties, shared by a metric (AUROC) and the leaderboard's columns. Numpy
only, so that reading the leaderboard never loads torch."""

from __future__ import annotations

import numpy as np


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their ranks (scipy's `rankdata` default)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # the rank of each distinct value's last occurrence
    return (last - (counts - 1) / 2)[inverse]
