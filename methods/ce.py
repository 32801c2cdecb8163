"""Cross-entropy on the noisy labels: the baseline every method is measured against."""

from __future__ import annotations

from noisebench import register_method


@register_method("ce", search_space={}, defaults={}, neutral={}, version=1)
def ce(logits, labels, ctx):
    """Cross-entropy on the noisy labels: the baseline every method is measured against."""
    logp = logits.float().log_softmax(dim=-1)
    return -logp.gather(-1, labels.unsqueeze(-1)).mean()
