"""Backward loss correction (Patrini et al., CVPR 2017).

`sum_j (T^-1)[y, j] * (-log p_j)`: an unbiased estimate of the clean loss. It is
unbounded below (T^-1 has negative entries), so a run can diverge; the engine
detects that and records the run as `diverged`.
"""

from __future__ import annotations

from noisebench import register_method


@register_method(
    "backward",
    search_space={},
    defaults={},
    neutral={},  # with T = I the loss is plain cross-entropy
    requires=("transition",),
    paper="https://arxiv.org/abs/1609.03683",
    version=1,
)
def backward(logits, labels, ctx):
    """Backward correction: sum_j (T^-1)[y, j] * (-log p_j)."""
    import torch  # here, not at the top: listing methods must not load torch

    logp = logits.float().log_softmax(dim=-1)
    # inv_ex, unlike inv, does not sync with the host to check for singularity;
    # a singular T gives non-finite losses, which the engine records as divergence.
    t_inv = torch.linalg.inv_ex(ctx.transition.double())[0].to(logp.dtype)
    return -(t_inv[labels] * logp).sum(dim=-1).mean()
