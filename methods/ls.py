"""Label smoothing (Szegedy et al. 2016; Muller et al. 2019; Lukasik et al. 2020).

Cross-entropy against the target `(1 - a) * onehot(y) + a / K`, which expands to
`(1 - a) * (-log p_y) + a * mean_k(-log p_k)`. Equals
`F.cross_entropy(z, y, label_smoothing=a)`; the tests hold it to that.
"""

from __future__ import annotations

from noisebench import Float, register_method


@register_method(
    "ls",
    search_space={"smoothing": Float(0.0, 0.9)},
    defaults={"smoothing": 0.1},
    neutral={"smoothing": 0.0},
    bounds={"smoothing": (0.0, 1.0)},
    paper="https://arxiv.org/abs/2003.02819",
    version=1,
)
def ls(logits, labels, ctx, *, smoothing):
    """Label smoothing: CE against (1 - a) * onehot(y) + a / K."""
    logp = logits.float().log_softmax(dim=-1)
    nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    uniform = -logp.mean(dim=-1)
    return ((1.0 - smoothing) * nll + smoothing * uniform).mean()
