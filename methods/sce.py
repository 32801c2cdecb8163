"""Symmetric cross-entropy (Wang et al., ICCV 2019).

`alpha * CE + beta * RCE`. The reverse cross-entropy `RCE = -sum_k p_k log t_k`
swaps prediction and one-hot target `t`; its `log 0` is replaced by the constant
`A` (the parameter `log_zero`), so `RCE = -A * (1 - p_y)`. The paper fixes
A = -4 and tunes alpha and beta; only `beta * A` matters, so the search space
holds `log_zero` at -4. CE is computed exactly via log_softmax. The authors'
code (and the APL port) instead clips p to [1e-7, 1] in CE and the one-hot to
[1e-4, 1] in RCE, so its effective A is log(1e-4) = -9.21: pass
`log_zero=-9.21` to match it.
"""

from __future__ import annotations

from noisebench import Float, register_method


@register_method(
    "sce",
    search_space={
        "alpha": Float(0.01, 10.0, log=True),
        "beta": Float(0.1, 10.0, log=True),
        "log_zero": Float(-4.0, -4.0),  # held at the paper's A: beta scales RCE
    },
    defaults={"alpha": 0.1, "beta": 1.0, "log_zero": -4.0},  # the paper's CIFAR-10
    neutral={"alpha": 1.0, "beta": 0.0},
    bounds={"alpha": (0.0, None), "beta": (0.0, None), "log_zero": (None, 0.0)},
    paper="https://arxiv.org/abs/1908.06112",
    version=1,
)
def sce(logits, labels, ctx, *, alpha, beta, log_zero):
    """Symmetric cross-entropy: alpha * CE + beta * RCE, RCE = -A * (1 - p_y)."""
    logp = logits.float().log_softmax(dim=-1)
    logp_y = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    one_minus_p_y = -logp_y.expm1()  # precise when p_y is near 1
    rce = -log_zero * one_minus_p_y
    return (alpha * -logp_y + beta * rce).mean()
