"""Co-teaching (Han et al., NeurIPS 2018).

Two networks train side by side on the same batches. Each keeps, of every batch, the
`1 - R(e)` fraction of samples with the smallest cross-entropy under its *peer*, and
updates on those only; the peer's small-loss samples are likely clean, and the two
networks filter different errors. The forget rate grows linearly from 0 to
`forget_rate` over the first `tk` epochs and stays there: R(e) = forget_rate *
min(e / (tk - 1), 1) for the 0-based epoch e, the schedule of the authors' code
(bhanML/Co-teaching, `np.linspace(0, forget_rate, num_gradual)`). Of a batch of B it
keeps int((1 - R) * B) samples, as there, but at least one.

Each seed's run is a pair of networks (the engine pairs members; see `paired`), and
its record is the first network's. The selection is per-sample state, so every run
records per epoch the fraction selected and the fraction of those that were clean
(the paper's "label precision").
"""

from __future__ import annotations

from noisebench import Float, Int, PerSample, register_method


def forget_rate_at(epoch: int, *, forget_rate: float, tk: int) -> float:
    """R(e): linear from 0 at epoch 0 to `forget_rate` at epoch tk - 1, then flat."""
    return forget_rate * min(epoch / max(tk - 1, 1), 1.0)


def select(logits, labels, ctx, *, forget_rate, tk):
    """1 for the batch's samples of smallest cross-entropy under the peer network, else 0."""
    import torch

    peer_logp = ctx.peer_logits.float().log_softmax(dim=-1)
    peer_loss = -peer_logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    batch = labels.shape[0]
    rate = forget_rate_at(ctx.epoch, forget_rate=forget_rate, tk=tk)
    keep = max(1, int((1.0 - rate) * batch))
    smallest = torch.argsort(peer_loss, stable=True)[:keep]
    return torch.zeros_like(peer_loss).scatter(0, smallest, 1.0)


@register_method(
    "coteaching",
    search_space={"forget_rate": Float(0.0, 0.8), "tk": Int(1, 20)},
    defaults={"forget_rate": 0.2, "tk": 10},  # tk: the paper's 10 epochs
    neutral={"forget_rate": 0.0},
    bounds={"forget_rate": (0.0, 1.0), "tk": (1, None)},
    state={"selected": PerSample(select, selection=True)},
    paired=True,
    paper="https://arxiv.org/abs/1804.06872",
    version=1,
)
def coteaching(logits, labels, ctx, *, forget_rate, tk):
    """Co-teaching: each of two networks learns from the small-loss samples of the other."""
    logp = logits.float().log_softmax(dim=-1)
    nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    chosen = ctx.state["selected"]
    return (chosen * nll).sum() / chosen.sum().clamp_min(1.0)
