"""The stacked optimizers equal torch.optim's, step for step, bit for bit."""

from __future__ import annotations

import pytest
import torch

from noisebench.optim import SGD, Adam

CASES = [
    (
        "adam fused",
        lambda p: Adam(p, lr=1e-3, fused=True),
        lambda p: torch.optim.Adam(p, lr=1e-3, fused=True),
    ),
    (
        "adamw fused",
        lambda p: Adam(p, lr=1e-3, weight_decay=1e-2, decoupled=True, fused=True),
        lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2, fused=True),
    ),
    (
        "adam foreach",
        lambda p: Adam(p, lr=1e-3, fused=False),
        lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True),
    ),
    (
        "adam l2 foreach",
        lambda p: Adam(p, lr=1e-3, weight_decay=1e-2, fused=False),
        lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=1e-2, foreach=True),
    ),
    (
        "adamw foreach",
        lambda p: Adam(p, lr=1e-3, weight_decay=1e-2, decoupled=True, fused=False),
        lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2, foreach=True),
    ),
    (
        "sgd momentum",
        lambda p: SGD(p, lr=1e-2, momentum=0.9, weight_decay=1e-3),
        lambda p: torch.optim.SGD(
            p, lr=1e-2, momentum=0.9, weight_decay=1e-3, foreach=True
        ),
    ),
    (
        "sgd",
        lambda p: SGD(p, lr=1e-1),
        lambda p: torch.optim.SGD(p, lr=1e-1, foreach=True),
    ),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=[c[0] for c in CASES])
def test_matches_torch_optim(name, ours, theirs):
    g = torch.Generator().manual_seed(0)
    a = [
        torch.nn.Parameter(torch.randn(3, 5, 7, generator=g)),
        torch.nn.Parameter(torch.randn(3, 1, 7, generator=g)),
    ]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    mine, ref = ours(a), theirs(b)
    for _ in range(25):
        grads = [torch.randn(p.shape, generator=g) for p in a]
        for p, q, grad in zip(a, b, grads, strict=True):
            p.grad, q.grad = grad.clone(), grad.clone()
        mine.step()
        ref.step()
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)


def test_stacked_adam_is_independent_adams():
    """Adam over a stacked (S, ...) tensor equals S Adams over the slices."""
    g = torch.Generator().manual_seed(1)
    stacked = torch.nn.Parameter(torch.randn(4, 6, generator=g))
    singles = [torch.nn.Parameter(stacked[s].detach().clone()) for s in range(4)]
    big, small = (
        Adam([stacked], lr=1e-2),
        [torch.optim.Adam([p], lr=1e-2) for p in singles],
    )
    for _ in range(10):
        grad = torch.randn(4, 6, generator=g)
        stacked.grad = grad.clone()
        big.step()
        for s, (p, opt) in enumerate(zip(singles, small, strict=True)):
            p.grad = grad[s].clone()
            opt.step()
    torch.testing.assert_close(
        stacked.detach(), torch.stack([p.detach() for p in singles])
    )


def test_fused_kernel_is_used_where_torch_has_it():
    adam = Adam([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    assert (adam.kernel is not None) == hasattr(torch, "_fused_adam_")
