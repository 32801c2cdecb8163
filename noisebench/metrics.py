"""Metrics, each a small pure function of one model's outputs (DESIGN.md §4)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from noisebench.ranks import average_ranks


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=-1) == labels).float().mean().item()


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return F.cross_entropy(logits.double(), labels).item()


def brier(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over samples of sum_k (p_k - onehot_k)^2 (ranges over [0, 2])."""
    probs = torch.softmax(logits.double(), dim=-1)
    onehot = F.one_hot(labels, probs.shape[-1]).double()
    return ((probs - onehot) ** 2).sum(dim=-1).mean().item()


def reliability(
    logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15
) -> tuple[list[int], list[int], list[float]]:
    """Per equal-width bin (lo, hi] of the max probability: how many samples fall in it,
    how many of them are predicted correctly, and the sum of their confidences. Sums,
    not means, so the bins of several seeds add up exactly into one diagram."""
    probs = torch.softmax(logits.double(), dim=-1)
    conf, pred = probs.max(dim=-1)
    correct = (pred == labels).double()
    # bin b holds conf in (b/n, (b+1)/n]; conf is never 0 for a softmax
    bins = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    count = torch.bincount(bins, minlength=n_bins)
    hits = torch.bincount(bins, weights=correct, minlength=n_bins)
    confidence = torch.bincount(bins, weights=conf, minlength=n_bins)
    return count.tolist(), [round(h) for h in hits.tolist()], confidence.tolist()


def ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017): equal-width bins (lo, hi] of the
    max probability; sum over bins of |bin| / n * |accuracy - mean confidence|."""
    return ece_of_bins(*reliability(logits, labels, n_bins))


def ece_of_bins(count: list[int], correct: list[int], confidence: list[float]) -> float:
    """ECE from `reliability`'s sums: sum over bins of |correct - confidence| / n."""
    total = sum(count)
    gap = sum(abs(h - c) for h, c in zip(correct, confidence, strict=True))
    return gap / total if total else float("nan")


def memorization_curve(
    pred: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`memorization` per member and epoch, on the device without a host sync.
    pred (S, E, n) or (S, n); noisy, clean (S, n). NaN for a member with no corrupted
    sample."""
    corrupted = (noisy != clean).float()
    if pred.dim() == noisy.dim():
        pred = pred.unsqueeze(1)
    n = corrupted.sum(-1, keepdim=True)
    fit_noisy = ((pred == noisy.unsqueeze(1)).float() * corrupted.unsqueeze(1)).sum(-1)
    fit_clean = ((pred == clean.unsqueeze(1)).float() * corrupted.unsqueeze(1)).sum(-1)
    return fit_noisy / n, fit_clean / n  # 0 / 0 = NaN


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 that minimizes the NLL of
    softmax(logits / T). The NLL is convex in 1/T, so a bounded scalar search over
    1/T in [0.01, 100] finds it (to 1e-6 relative)."""
    from scipy.optimize import minimize_scalar

    z = logits.double()

    def nll_at(inverse: float) -> float:
        return F.cross_entropy(z * inverse, labels).item()

    found = minimize_scalar(
        nll_at, bounds=(0.01, 100.0), method="bounded", options={"xatol": 1e-7}
    )
    return 1.0 / float(found.x)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney statistic, ties counted half; NaN when
    either class is empty."""
    scores, positive = (
        np.asarray(scores, dtype=np.float64),
        np.asarray(positive, dtype=bool),
    )
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def memorization(
    pred: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor
) -> tuple[float, float]:
    """Of the corrupted samples (noisy != clean): the fraction predicted as their noisy
    label, and the fraction predicted as their clean label. NaN when none is corrupted."""
    corrupted = noisy != clean
    if not bool(corrupted.any()):
        return float("nan"), float("nan")
    p = pred[corrupted]
    return (p == noisy[corrupted]).float().mean().item(), (
        p == clean[corrupted]
    ).float().mean().item()


def flip_detection_auroc(
    logits: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor
) -> float:
    """AUROC of the per-sample training loss at telling corrupted samples from clean ones."""
    loss = F.cross_entropy(logits.double(), noisy, reduction="none")
    return auroc(loss.numpy(), (noisy != clean).numpy())
