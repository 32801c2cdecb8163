"""Generalized label smoothing (Wei et al., ICML 2022), negative rates included.

`(1 - r) * (-log p_y) + r * mean_k(-log p_k)` for any `r < 1`. With `r > 0` it is
label smoothing; with `r < 0` it is negative label smoothing (NLS), which pushes
the model to be more confident in the given label. Matches `loss.py` of
UCSC-REAL/negative-label-smoothing. Very negative rates diverge when trained
from scratch at high noise: the reference recipe warms up with CE (`--warmup`).
"""

from __future__ import annotations

from noisebench import Float, register_method


@register_method(
    "gls",
    search_space={"smooth_rate": Float(-1.0, 0.8)},
    defaults={"smooth_rate": -0.2},
    neutral={"smooth_rate": 0.0},
    bounds={"smooth_rate": (None, 1.0)},
    paper="https://arxiv.org/abs/2106.04149",
    version=1,
)
def gls(logits, labels, ctx, *, smooth_rate):
    """Generalized label smoothing: r > 0 smooths, r < 0 is negative label smoothing."""
    logp = logits.float().log_softmax(dim=-1)
    nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    uniform = -logp.mean(dim=-1)
    return ((1.0 - smooth_rate) * nll + smooth_rate * uniform).mean()
