"""Estimating T from a model trained on noisy labels (Patrini et al. 2017, DESIGN.md §5).

With η(x) = p̂(ỹ | x) from a cross-entropy model, an anchor of class i is an input that
surely belongs to i, where η(x) equals row i of T. Row i of T̂ is η at the input with
the largest η_i, after discarding values at or above the 97th percentile of η_i (the
"filter_outlier" of the paper's code: an overfit network saturates its most confident
outputs, and those are poor anchors). Everything is batched over the S members.
"""

from __future__ import annotations

import math

import torch

ANCHOR_PERCENTILE = 97


def estimate_transition(
    probs: torch.Tensor, *, filter_outlier: bool = True
) -> torch.Tensor:
    """T̂ (S, K, K) from η = p̂(noisy label | x), shaped (S, N, K), on the training inputs."""
    if probs.dim() != 3 or probs.shape[1] < 1:
        raise ValueError(
            f"expected probabilities shaped (S, N, K), got {tuple(probs.shape)}"
        )
    probs = probs.float()
    scores = probs
    if filter_outlier:
        cut = _percentile_higher(probs, ANCHOR_PERCENTILE).unsqueeze(1)
        # the paper zeroes them; -inf does the same and leaves no doubt
        scores = probs.masked_fill(probs >= cut, float("-inf"))
    anchors = scores.argmax(dim=1)  # (S, K): the anchor input of each class
    rows = probs.gather(1, anchors.unsqueeze(-1).expand(-1, -1, probs.shape[2]))
    return rows / rows.sum(dim=-1, keepdim=True)


def estimation_error(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """‖T̂ − T‖₁ / ‖T‖₁ (entrywise) per member: 0 is exact, 2 is as far as rows can be."""
    truth = truth.to(estimate)
    return (estimate - truth).abs().sum(dim=(-2, -1)) / truth.abs().sum(dim=(-2, -1))


def _percentile_higher(values: torch.Tensor, percentile: float) -> torch.Tensor:
    """numpy's `percentile(values, p, axis=1, method="higher")`: an actual value, the
    smallest at or above the interpolation point. kthvalue, unlike torch.quantile, has
    no input size limit."""
    n, q = values.shape[1], percentile / 100
    index = math.ceil(n * q + (1 - q) - 1)  # numpy's (n - 1) q, rounded the same way
    return values.kthvalue(min(index, n - 1) + 1, dim=1).values
