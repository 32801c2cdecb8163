"""Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018).

`L_q = (1 - p_y^q) / q` for q in [0, 1]. At q = 1 it is `1 - p_y` (MAE up to a
factor 2), bounded and noise-robust; as q -> 0 it tends to CE, and q = 0 is
defined as that limit, so the neutral setting is exact. Computed from
`log p_y` as `-expm1(q * log p_y) / q`, which keeps precision for small q (the
authors' code uses `(1 - clamp(p, 1e-7)^q) / q`). The loss is at most 1/q.
This is the plain L_q loss, not the paper's truncated L_q, which prunes samples
by their loss every few epochs and needs per-sample state.
"""

from __future__ import annotations

from noisebench import Float, register_method


@register_method(
    "gce",
    search_space={"q": Float(0.1, 1.0)},
    defaults={"q": 0.7},
    neutral={"q": 0.0},
    bounds={"q": (0.0, 1.0, "[]")},
    paper="https://arxiv.org/abs/1805.07836",
    version=1,
)
def gce(logits, labels, ctx, *, q):
    """Generalized cross-entropy: (1 - p_y^q) / q, CE at q = 0 and 1 - p_y at q = 1."""
    logp = logits.float().log_softmax(dim=-1)
    logp_y = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if q == 0:  # a Python float, not a tensor: no data-dependent control flow
        return -logp_y.mean()
    return (-(q * logp_y).expm1() / q).mean()
