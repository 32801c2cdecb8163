"""Early-learning regularization, ELR (Liu et al., NeurIPS 2020).

Each training sample keeps a running target `t`, a temporal ensemble of the model's
own predictions: at every visit `t <- beta * t + (1 - beta) * p / sum(p)`, with `p`
the softmax clamped to [1e-4, 1 - 1e-4] and detached. The loss is

    CE(z, y) + lam * log(1 - <t, p>)

whose gradient pulls `p` towards `t`, which early in training (before the network
memorizes wrong labels) mostly holds the clean class. This is `elr_loss` of the
authors' code (shengliu66/ELR), clamp included: the clamp keeps `1 - <t, p>` above 0
and, as there, stops the regularizer's gradient for a probability at the clamp. Plain
ELR, not ELR+ (which adds mixup, weight averaging and a second network). The targets
start at 0 and are per member: seeds never share them.
"""

from __future__ import annotations

from noisebench import Float, PerSample, register_method

CLAMP = 1e-4


def _probs(logits):
    return logits.float().softmax(dim=-1).clamp(CLAMP, 1.0 - CLAMP)


def update_target(logits, labels, ctx, *, lam, beta):
    """The running target of the batch's samples, moved towards the current prediction."""
    p = _probs(logits)
    return beta * ctx.state["target"] + (1.0 - beta) * p / p.sum(dim=-1, keepdim=True)


@register_method(
    "elr",
    search_space={"lam": Float(0.3, 10.0, log=True), "beta": Float(0.5, 0.99)},
    defaults={"lam": 3.0, "beta": 0.7},  # the paper's CIFAR-10 values
    neutral={"lam": 0.0},
    bounds={"lam": (0.0, None), "beta": (0.0, 1.0)},
    state={"target": PerSample(update_target, classes=True)},
    paper="https://arxiv.org/abs/2007.00151",
    version=1,
)
def elr(logits, labels, ctx, *, lam, beta):
    """ELR: cross-entropy plus lam * log(1 - <t, p>), t a running average of predictions."""
    logp = logits.float().log_softmax(dim=-1)
    ce = -logp.gather(-1, labels.unsqueeze(-1)).mean()
    agreement = (ctx.state["target"] * _probs(logits)).sum(dim=-1)
    return ce + lam * (1.0 - agreement).log().mean()
