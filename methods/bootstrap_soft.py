"""Soft bootstrapping (Reed et al., ICLR 2015 workshop).

CE against a target mixing the label and the model's own prediction:
`-sum_k (beta * t_k + (1 - beta) * p_k) log p_k` with `t = onehot(y)`. As in
the paper, the gradient flows through the `p` in the target too, which makes it
`beta * CE + (1 - beta) * H(p)`: CE plus entropy minimization. beta = 1 is CE.
The authors' code and the SCE authors' Keras port clip p to [1e-7, 1 - 1e-7];
here log p comes from log_softmax, unclipped.
"""

from __future__ import annotations

from noisebench import Float, register_method


@register_method(
    "bootstrap_soft",
    search_space={"beta": Float(0.5, 1.0)},
    defaults={"beta": 0.95},
    neutral={"beta": 1.0},
    bounds={"beta": (0.0, 1.0, "[]")},
    paper="https://arxiv.org/abs/1412.6596",
    version=1,
)
def bootstrap_soft(logits, labels, ctx, *, beta):
    """Soft bootstrapping: CE against beta * onehot(y) + (1 - beta) * p, p not detached."""
    logp = logits.float().log_softmax(dim=-1)
    nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return (beta * nll + (1.0 - beta) * entropy).mean()
