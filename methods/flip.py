"""DisturbLabel (Xie et al., CVPR 2016): label-flipping augmentation.

Each label in the batch is, with probability `rate`, replaced by a class drawn
uniformly from all K (the true class included); then plain cross-entropy. In
expectation this is label smoothing with `a = rate`. Randomness comes from
`ctx.generator` only, so a run is reproducible.
"""

from __future__ import annotations

from noisebench import Float, register_method


@register_method(
    "flip",
    search_space={"rate": Float(0.0, 0.5)},
    defaults={"rate": 0.1},
    neutral={"rate": 0.0},
    bounds={"rate": (0.0, 1.0)},
    paper="https://arxiv.org/abs/1605.00055",
    version=1,
)
def flip(logits, labels, ctx, *, rate):
    """DisturbLabel: replace each label by a uniform class with probability `rate`, then CE."""
    if ctx.generator is None:
        raise ValueError("flip draws random labels and needs ctx.generator")
    g = ctx.generator
    logp = logits.float().log_softmax(dim=-1)
    # drawn in float32 whatever the logits' dtype: bf16 uniforms are too coarse near 0
    disturb = logp.new_empty(labels.shape).uniform_(generator=g) < rate
    random_labels = labels.new_empty(labels.shape).random_(
        0, ctx.num_classes, generator=g
    )
    noisy = random_labels.where(disturb, labels)
    return -logp.gather(-1, noisy.unsqueeze(-1)).mean()
