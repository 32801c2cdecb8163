"""The template projection of Müller, Kornblith and Hinton, "When does label smoothing
help?", NeurIPS 2019, §2 and Figure 1: pick three classes, take their templates (the
rows of the last layer's weights, `model.classifier()[0][s, classes]`), and project
penultimate activations (`model.features(x)[s]`) onto an orthonormal basis of the
plane through the three templates. Label smoothing draws each class into a tight
cluster equidistant from the others; `spread_ratio` puts that in one number.

Pure functions of tensors, computed in float64 whatever the input's dtype.
"""

from __future__ import annotations

import torch

# a template difference shorter than this, relative to the longest, spans no direction
COLLINEAR_RTOL = 1e-6


def template_basis(templates: torch.Tensor) -> torch.Tensor:
    """(3, D) templates w_a, w_b, w_c -> (2, D) orthonormal rows (u, v) spanning the
    plane through them, by Gram-Schmidt on (w_b - w_a, w_c - w_a): u points from w_a
    to w_b, and v towards w_c's side. Raises ValueError if the templates are collinear
    (or coincide): they then span no plane."""
    w = torch.as_tensor(templates).to(torch.float64)
    if w.dim() != 2 or w.shape[0] != 3:
        raise ValueError(
            f"template_basis takes the templates of 3 classes, (3, D); got shape "
            f"{tuple(w.shape)}"
        )
    d1, d2 = w[1] - w[0], w[2] - w[0]
    scale = max(d1.norm(), d2.norm())
    u = d1 / d1.norm() if d1.norm() > COLLINEAR_RTOL * scale else None
    v = None if u is None else d2 - (d2 @ u) * u
    if u is None or v.norm() <= COLLINEAR_RTOL * scale:
        raise ValueError(
            "the three templates are collinear (or coincide), so no plane passes "
            "through them: pick three classes whose last-layer weights are not on one "
            "line"
        )
    return torch.stack([u, v / v.norm()])


def project(features: torch.Tensor, *, basis: torch.Tensor) -> torch.Tensor:
    """(N, D) penultimate activations x -> (N, 2) coordinates (x·u, x·v) in the plane
    of `basis` (2, D), as `template_basis` returns it. Any leading axes of features
    are kept: (..., D) -> (..., 2)."""
    x = torch.as_tensor(features).to(torch.float64)
    basis = torch.as_tensor(basis).to(torch.float64)
    if basis.dim() != 2 or basis.shape[0] != 2:
        raise ValueError(f"basis must be (2, D), got shape {tuple(basis.shape)}")
    if x.shape[-1] != basis.shape[1]:
        raise ValueError(
            f"features have {x.shape[-1]} dimensions, the basis {basis.shape[1]}"
        )
    return x @ basis.T


def spread_ratio(points: torch.Tensor, *, labels: torch.Tensor) -> float:
    """Within-class over between-class spread of (N, 2) projected points with (N,)
    labels: the mean over points of the squared distance to their class's mean,
    divided by the mean over points of the squared distance of their class's mean to
    the mean of all points (the two add up to the points' total variance; with as many
    points per class, the latter is the mean over classes). 0 when every point sits at
    its class mean; small when classes form tight, well separated clusters."""
    p = torch.as_tensor(points).to(torch.float64)
    y = torch.as_tensor(labels)
    if p.dim() != 2 or y.shape != p.shape[:1]:
        raise ValueError(
            f"spread_ratio takes points (N, 2) and labels (N,); got shapes "
            f"{tuple(p.shape)} and {tuple(y.shape)}"
        )
    classes, index = torch.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"spread_ratio needs points of at least 2 classes, got {len(classes)}"
        )
    sums = torch.zeros(len(classes), p.shape[1], dtype=p.dtype).index_add_(0, index, p)
    means = sums / torch.bincount(index, minlength=len(classes))[:, None]
    within = (p - means[index]).square().sum(1).mean()
    between = (means[index] - p.mean(0)).square().sum(1).mean()
    if between == 0:
        raise ValueError(
            "spread_ratio: every class has the same mean, so the between-class spread "
            "is 0 and the ratio is undefined"
        )
    return float(within / between)
