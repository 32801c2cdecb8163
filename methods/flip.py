"""DisturbLabel (Xie et al., CVPR 2016): label-flipping augmentation.

Each label in the batch is, with probability `rate`, replaced by a class drawn
uniformly from all K (the true class included); then plain cross-entropy. In
expectation this is label smoothing with `a = rate`. Randomness comes from
`ctx.generator` only, so a run is reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    shape, device = labels.shape, labels.device
    disturb = torch.rand(shape, generator=ctx.generator, device=device) < rate
    random_labels = torch.randint(
        ctx.num_classes, shape, generator=ctx.generator, device=device
    )
    return F.cross_entropy(logits.float(), torch.where(disturb, random_labels, labels))
