"""Hard bootstrapping (Reed et al., ICLR 2015 workshop).

CE against a target mixing the label and the model's own predicted class:
`-sum_k (beta * t_k + (1 - beta) * z_k) log p_k` with `t = onehot(y)` and
`z = onehot(argmax_k p_k)`, a constant (argmax has no gradient). That is
`beta * CE(y) + (1 - beta) * CE(argmax p)`. beta = 1 is CE. The authors' code
clips p to [1e-7, 1 - 1e-7]; here log p comes from log_softmax, unclipped.
"""

from __future__ import annotations

from noisebench import Float, register_method


@register_method(
    "bootstrap_hard",
    search_space={"beta": Float(0.5, 1.0)},
    defaults={"beta": 0.8},
    neutral={"beta": 1.0},
    bounds={"beta": (0.0, 1.0, "[]")},
    paper="https://arxiv.org/abs/1412.6596",
    version=1,
)
def bootstrap_hard(logits, labels, ctx, *, beta):
    """Hard bootstrapping: CE against beta * onehot(y) + (1 - beta) * onehot(argmax p)."""
    logp = logits.float().log_softmax(dim=-1)
    nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    predicted = logp.detach().argmax(dim=-1, keepdim=True)
    nll_predicted = -logp.gather(-1, predicted).squeeze(-1)
    return (beta * nll + (1.0 - beta) * nll_predicted).mean()
