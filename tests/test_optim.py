"""The stacked optimizers equal torch.optim's, step for step, bit for bit, and the
learning-rate schedules equal torch.optim.lr_scheduler's."""

from __future__ import annotations

import math

import pytest
import torch

from noisebench.config import SCHEDULES, TrainConfig
from noisebench.optim import SGD, Adam, lr_schedule

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
    (  # the CIFAR recipe
        "sgd nesterov",
        lambda p: SGD(p, lr=1e-1, momentum=0.9, weight_decay=5e-4, nesterov=True),
        lambda p: torch.optim.SGD(
            p, lr=1e-1, momentum=0.9, weight_decay=5e-4, nesterov=True, foreach=True
        ),
    ),
    (  # no weight decay: the gradients themselves meet the buffers
        "sgd nesterov no decay",
        lambda p: SGD(p, lr=3e-2, momentum=0.5, nesterov=True),
        lambda p: torch.optim.SGD(
            p, lr=3e-2, momentum=0.5, nesterov=True, foreach=True
        ),
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


def test_nesterov_needs_momentum_as_in_torch():
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="momentum"):
        torch.optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="momentum"):
        SGD(params, lr=0.1, nesterov=True)


def test_nesterov_leaves_the_gradients_alone():
    """torch adds the buffers into the gradients in place; ours must not, since the
    gradients it steps with may be the parameters' own."""
    p = torch.nn.Parameter(torch.zeros(3))
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    for _ in range(2):
        p.grad = torch.ones(3)
        opt.step()
        assert torch.equal(p.grad, torch.ones(3))


# (schedule, its settings, the torch scheduler over an optimizer for `epochs` epochs of
# `steps` batches, and whether that scheduler steps per batch or per epoch)
SCHEDULE_CASES = {
    "constant": (
        {},
        lambda opt, epochs, steps: torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0),
        "batch",
    ),
    "step": (
        {"gamma": 0.2},  # milestones at 30%, 60%, 80% of the run: the WRN recipe
        lambda opt, epochs, steps: torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=_milestones(epochs), gamma=0.2
        ),
        "epoch",
    ),
    "cosine": (
        {},
        lambda opt, epochs, steps: torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=epochs * steps
        ),
        "batch",
    ),
    "onecycle": (
        {},
        lambda opt, epochs, steps: torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.1, total_steps=epochs * steps
        ),
        "batch",
    ),
}


def _milestones(epochs: int) -> tuple[int, ...]:
    return tuple(sorted({max(1, round(epochs * f)) for f in (0.3, 0.6, 0.8)}))


def test_every_schedule_has_a_reference():
    assert set(SCHEDULE_CASES) == set(SCHEDULES)


def _config(name: str, epochs: int, **settings) -> TrainConfig:
    if name == "step":
        settings["milestones"] = _milestones(epochs)
    return TrainConfig(
        optimizer="sgd", lr=0.1, epochs=epochs, schedule=name, **settings
    )


@pytest.mark.parametrize(
    ("epochs", "steps"), [(1, 1), (2, 1), (3, 1), (30, 7), (200, 25)]
)
@pytest.mark.parametrize("name", SCHEDULE_CASES)
def test_schedule_matches_torch_lr_scheduler(name, epochs, steps):
    """lr at every step, as a real torch.optim.SGD driven by the scheduler sees it."""
    settings, make, per = SCHEDULE_CASES[name]
    ours = lr_schedule(_config(name, epochs, **settings), steps_per_epoch=steps)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    scheduler = make(opt, epochs, steps)
    for epoch in range(epochs):
        for batch in range(steps):
            t = epoch * steps + batch
            expected = opt.param_groups[0]["lr"]
            assert math.isclose(ours(t), expected, rel_tol=1e-12, abs_tol=0), (t, name)
            p.grad = torch.zeros(1)
            opt.step()
            if per == "batch":
                scheduler.step()
        if per == "epoch":
            scheduler.step()


def test_schedule_values_by_hand():
    """The shapes, from the formulas rather than from torch."""
    cos = lr_schedule(_config("cosine", 4), steps_per_epoch=1)
    assert [cos(t) for t in range(4)] == pytest.approx(
        [0.1, 0.085355, 0.05, 0.014645], rel=1e-4
    )
    step = lr_schedule(
        TrainConfig(
            optimizer="sgd",
            lr=0.1,
            epochs=10,
            schedule="step",
            milestones=(2, 5),
            gamma=0.5,
        ),
        steps_per_epoch=3,  # epoch 2 starts at step 6, epoch 5 at step 15
    )
    assert [step(t) for t in (0, 5, 6, 14, 15, 29)] == [
        0.1,
        0.1,
        0.05,
        0.05,
        0.025,
        0.025,
    ]
    one = lr_schedule(_config("onecycle", 10), steps_per_epoch=10)
    assert one(0) == pytest.approx(0.1 / 25)  # starts at max / div_factor
    assert one(29) == pytest.approx(0.1)  # peaks at pct_start 0.3 of 100 steps
    assert one(99) == pytest.approx(0.1 / 25 / 1e4)  # ends at that / final_div_factor


def test_schedule_refuses_steps_outside_the_run():
    schedule = lr_schedule(_config("cosine", 2), steps_per_epoch=3)
    schedule(5)
    for t in (-1, 6):
        with pytest.raises(ValueError, match="outside the run"):
            schedule(t)


@pytest.mark.parametrize("name", ["step", "onecycle"])
def test_setting_lr_each_step_trains_as_torch_with_its_scheduler(name):
    """The engine's contract: `optimizer.lr = schedule(t)` before each step gives the
    parameters torch.optim.SGD (Nesterov) gets with the matching scheduler."""
    epochs, steps = 10, 4
    settings, make, per = SCHEDULE_CASES[name]
    config = _config(name, epochs, nesterov=True, weight_decay=5e-4, **settings)
    schedule = lr_schedule(config, steps_per_epoch=steps)
    g = torch.Generator().manual_seed(2)
    a = torch.nn.Parameter(torch.randn(3, 4, generator=g))
    b = torch.nn.Parameter(a.detach().clone())
    mine = SGD([a], lr=config.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    ref = torch.optim.SGD(
        [b], lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True, foreach=True
    )
    if name == "onecycle":  # ours keeps momentum fixed: so must the reference
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            ref, max_lr=0.1, total_steps=epochs * steps, cycle_momentum=False
        )
    else:
        scheduler = make(ref, epochs, steps)
    for epoch in range(epochs):
        for batch in range(steps):
            grad = torch.randn(3, 4, generator=g)
            a.grad, b.grad = grad.clone(), grad.clone()
            mine.lr = schedule(epoch * steps + batch)
            mine.step()
            ref.step()
            if per == "batch":
                scheduler.step()
        if per == "epoch":
            scheduler.step()
    assert torch.equal(a, b)
