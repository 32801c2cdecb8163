"""The confidence penalty (Pereyra et al. 2017), as a template for a new method.

Copy this file to `methods/<name>.py`, where <name> is your method's name, and replace
every part marked TODO. It passes `noisebench methods check` as it is, so check it once
before you change anything, then after each change. This file lives in `ci/`, not in
`methods/`, so noisebench never loads it as a method.

The module docstring is for readers: what the method is, the paper, and the formula
written out. The loss function's own docstring gives the one-line summary that
`noisebench methods` shows.
"""

from __future__ import annotations

from noisebench import Float, register_method


@register_method(
    "my_loss",  # TODO: the file's name without .py; ^[a-z][a-z0-9_]*$
    # TODO: what the tuner explores: noisebench.Float, Int or Categorical per parameter
    search_space={"beta": Float(0.0, 1.0)},
    # TODO: the setting the paper recommends; it must lie inside the search space
    defaults={"beta": 0.1},
    # TODO: the params at which the loss equals plain cross-entropy (None if none do)
    neutral={"beta": 0.0},
    # TODO: the values that are valid at all: low <= value < high (None: unbounded)
    bounds={"beta": (0.0, None)},
    # TODO: the paper (an https:// URL)
    paper="https://arxiv.org/abs/1701.06548",
    version=1,  # bump it whenever the math changes
)
def my_loss(logits, labels, ctx, *, beta):
    """Confidence penalty: cross-entropy minus beta times the entropy of the prediction."""
    # TODO: your loss. Raw logits (B, K), integer labels (B,); compute in float32 from
    # log_softmax (never log(softmax)); return a scalar. Random numbers come from
    # ctx.generator only, e.g. torch.rand(B, generator=ctx.generator); ctx also holds
    # num_classes, epoch and progress in [0, 1] (and T, with requires=("transition",)).
    logp = logits.float().log_softmax(dim=-1)
    nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return (nll - beta * entropy).mean()
