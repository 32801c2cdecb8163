"""Cross-entropy on the noisy labels: the baseline every method is measured against."""

from __future__ import annotations

import torch.nn.functional as F

from noisebench import register_method


@register_method("ce", search_space={}, defaults={}, neutral={}, version=1)
def ce(logits, labels, ctx):
    """Cross-entropy on the noisy labels: the baseline every method is measured against."""
    return F.cross_entropy(logits.float(), labels)
