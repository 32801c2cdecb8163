"""Forward loss correction (Patrini et al., CVPR 2017).

The model's clean posterior `p` is pushed through the noise: the loss is
`-log (p^T T)_y`, computed stably as `-logsumexp_i(log p_i + log T[i, y])`
(never `log` of a product of probabilities). Needs the transition matrix `T`,
either the true one (oracle) or an estimate.
"""

from __future__ import annotations

from noisebench import register_method


@register_method(
    "forward",
    search_space={},
    defaults={},
    neutral={},  # with T = I the loss is plain cross-entropy
    requires=("transition",),
    paper="https://arxiv.org/abs/1609.03683",
    version=1,
)
def forward(logits, labels, ctx):
    """Forward correction: -log (p^T T)_y with the transition matrix T."""
    logp = logits.float().log_softmax(dim=-1)
    log_t = ctx.transition.float().log()  # zeros become -inf, which logsumexp ignores
    return -(logp + log_t.T[labels]).logsumexp(dim=-1).mean()
