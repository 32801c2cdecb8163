"""NCE+MAE, the active-passive loss of Ma et al. (ICML 2020).

`alpha * NCE + beta * MAE` with the normalized cross-entropy
`NCE = (-log p_y) / (-sum_k log p_k)`, in [0, 1], and `MAE = 1 - p_y`. The
paper writes MAE as `sum_k |t_k - p_k| = 2 (1 - p_y)`; the authors' code
(HanxunH/Active-Passive-Losses, `MeanAbsoluteError`) uses the halved
`1 - p_y`, and its alpha, beta were tuned with that, so we follow the code:
our beta is the code's. Defaults are the code's CIFAR-10 config
(alpha = beta = 1; CIFAR-100 uses alpha = 10, beta = 1). It never equals CE.
Named after the loss, not the framework: APL has other pairs (NCE+RCE, ...).
"""

from __future__ import annotations

from noisebench import Float, register_method


@register_method(
    "nce_mae",
    search_space={
        "alpha": Float(0.1, 100.0, log=True),
        "beta": Float(0.1, 10.0, log=True),
    },
    defaults={"alpha": 1.0, "beta": 1.0},
    neutral=None,
    bounds={"alpha": (0.0, None), "beta": (0.0, None)},
    paper="https://arxiv.org/abs/2006.13554",
    version=1,
)
def nce_mae(logits, labels, ctx, *, alpha, beta):
    """Active-passive loss NCE+MAE: alpha * (-log p_y) / (-sum_k log p_k) + beta * (1 - p_y)."""
    logp = logits.float().log_softmax(dim=-1)
    logp_y = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    nce = logp_y / logp.sum(dim=-1)
    mae = -logp_y.expm1()  # 1 - p_y
    return (alpha * nce + beta * mae).mean()
