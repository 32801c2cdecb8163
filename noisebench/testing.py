"""The contract every method must pass, reusable by third-party plugins.

The project's own suite runs it over every registered method (tests/test_contract.py),
so a new method is tested without anyone writing a test for it. A plugin package can
do the same in its own tests:

    import pytest
    from noisebench import get_method
    from noisebench.testing import CONTRACT

    @pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
    def test_contract(check):
        check(get_method("my_method"))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from noisebench.registry import NAME_RE, Context, Method
from noisebench.space import Categorical, Float, Int


def transition_for(
    method: Method, num_classes: int, rate: float = 0.2
) -> torch.Tensor | None:
    """A symmetric-noise T for methods that require one, else None."""
    if "transition" not in method.requires:
        return None
    from noisebench.noise import transition_matrix

    rate = min(rate, 0.5 * (num_classes - 1) / num_classes)
    return torch.as_tensor(
        transition_matrix("symmetric", num_classes, rate), dtype=torch.float32
    )


def context(
    method: Method, num_classes: int, *, seed: int = 0, transition=None
) -> Context:
    t = transition if transition is not None else transition_for(method, num_classes)
    return Context(
        num_classes=num_classes,
        transition=t,
        generator=torch.Generator().manual_seed(seed),
    )


def sample_params(method: Method, rng: np.random.Generator) -> dict[str, Any]:
    """One random draw from the method's declared search space."""
    params = {}
    for key, dist in method.search_space.items():
        if isinstance(dist, Float):
            lo, hi = (
                (math.log(dist.low), math.log(dist.high))
                if dist.log
                else (dist.low, dist.high)
            )
            value = float(rng.uniform(lo, hi))
            params[key] = math.exp(value) if dist.log else value
        elif isinstance(dist, Int):
            params[key] = int(rng.integers(dist.low, dist.high + 1))
        else:
            assert isinstance(dist, Categorical)
            params[key] = dist.choices[int(rng.integers(len(dist.choices)))]
    return params


def _loss_and_grad(
    method: Method, logits: torch.Tensor, labels: torch.Tensor, ctx: Context, params
):
    logits = logits.detach().clone().requires_grad_(True)
    loss = method(logits, labels, ctx, **params)
    loss.backward()
    return loss.detach(), logits.grad


def _batch(batch: int, num_classes: int, seed: int, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, num_classes, generator=g) * scale
    labels = torch.randint(num_classes, (batch,), generator=g)
    return logits, labels


def check_metadata(method: Method) -> None:
    """Has a valid name, a one-line summary, a version >= 1 and a paper URL if any."""
    assert NAME_RE.match(method.name), method.name
    assert method.summary and "\n" not in method.summary, (
        "needs a one-line summary (docstring)"
    )
    assert isinstance(method.version, int) and method.version >= 1
    assert not method.paper or method.paper.startswith("https://")


def check_params_declared(method: Method) -> None:
    """search_space and defaults name the same params; defaults lie in the space and bounds."""
    assert set(method.search_space) == set(method.defaults)
    for key, value in method.defaults.items():
        assert method.search_space[key].contains(value), (key, value)
        method.check_value(key, value)
    for key in method.neutral or {}:
        assert key in method.defaults
    for key, (low, high) in method.bounds.items():
        dist = method.search_space[key]
        if hasattr(dist, "low"):  # the tuner must never propose an invalid value
            assert low is None or dist.low >= low, (key, dist, low)
            assert high is None or dist.high < high, (key, dist, high)


def check_finite(method: Method) -> None:
    """A finite scalar loss and finite gradients for batch sizes 1 and 8 and K of 2, 10, 100."""
    for num_classes in (2, 10, 100):
        for batch in (1, 8):
            logits, labels = _batch(batch, num_classes, seed=batch * 1000 + num_classes)
            ctx = context(method, num_classes)
            loss, grad = _loss_and_grad(method, logits, labels, ctx, method.defaults)
            assert loss.shape == () and loss.dtype == torch.float32, (
                loss.shape,
                loss.dtype,
            )
            assert torch.isfinite(loss), (num_classes, batch, loss)
            assert torch.isfinite(grad).all(), (num_classes, batch)
            assert grad.abs().sum() > 0, "the loss must depend on the logits"


def check_random_params(method: Method, draws: int = 20) -> None:
    """Random draws from the search space give finite losses and gradients."""
    rng = np.random.default_rng(0)
    logits, labels = _batch(16, 10, seed=1)
    for _ in range(draws if method.search_space else 1):
        params = sample_params(method, rng)
        loss, grad = _loss_and_grad(method, logits, labels, context(method, 10), params)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), params


def check_neutral(method: Method) -> None:
    """At its neutral params (and T = I) the loss and its gradient equal cross-entropy."""
    if method.neutral is None:
        return
    params = {**method.defaults, **method.neutral}
    for num_classes in (2, 10):
        logits, labels = _batch(32, num_classes, seed=num_classes)
        eye = torch.eye(num_classes) if "transition" in method.requires else None
        loss, grad = _loss_and_grad(
            method, logits, labels, context(method, num_classes, transition=eye), params
        )
        ref_logits = logits.clone().requires_grad_(True)
        ref = F.cross_entropy(ref_logits, labels)
        ref.backward()
        torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad, ref_logits.grad, rtol=1e-4, atol=1e-6)


def check_deterministic(method: Method) -> None:
    """The same ctx.generator seed gives the same loss and gradient; global RNG is untouched."""
    logits, labels = _batch(64, 10, seed=7)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = _loss_and_grad(
        method, logits, labels, context(method, 10, seed=5), method.defaults
    )
    second = _loss_and_grad(
        method, logits, labels, context(method, 10, seed=5), method.defaults
    )
    assert torch.equal(torch.random.get_rng_state(), before), (
        "the method used the global RNG"
    )
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def check_smoke_fit(method: Method) -> None:
    """Trained by the engine on noisy Gaussian blobs, it beats chance by a wide margin."""
    from noisebench import metrics
    from noisebench.engine import TrainConfig, fit

    task = blobs_task(num_classes=4, noise=0.3, method=method, seeds=(0,))
    config = TrainConfig(hidden=(32,), epochs=15, batch_size=64, lr=3e-3)
    result = fit(task, method=method, params=method.defaults, config=config)
    acc = metrics.accuracy(result.test_logits[0], task.y_test)
    n, chance = task.y_test.numel(), 1 / task.num_classes
    # "beats chance": five standard errors of a chance-level classifier above 1/K, plus 20 points
    threshold = chance + 5 * math.sqrt(chance * (1 - chance) / n) + 0.2
    assert acc > threshold, f"test accuracy {acc:.3f} <= {threshold:.3f}"


def blobs_task(
    *,
    num_classes: int,
    noise: float,
    method: Method,
    seeds=(0,),
    n: int = 800,
    dim: int = 8,
):
    """Well-separated Gaussian blobs with symmetric label noise, as an engine Task."""
    from noisebench.data import stratified_split
    from noisebench.engine import Task
    from noisebench.noise import corrupt, transition_matrix

    g = torch.Generator().manual_seed(1234)
    centers = torch.randn(num_classes, dim, generator=g) * 3
    y = torch.arange(n) % num_classes
    x = centers[y] + torch.randn(n, dim, generator=g)
    x_test, y_test = x[: n // 4], y[: n // 4]
    x, y = x[n // 4 :], y[n // 4 :]
    t = transition_matrix("symmetric", num_classes, noise)
    noisy, train_idx, val_idx = [], [], []
    for seed in seeds:
        labels = corrupt(y.numpy(), t, seed=seed)
        train, val = stratified_split(labels, 0.1, seed=seed)
        noisy.append(torch.as_tensor(labels))
        train_idx.append(torch.as_tensor(train))
        val_idx.append(torch.as_tensor(val))
    return Task(
        x=x,
        y_noisy=torch.stack(noisy),
        train_idx=torch.stack(train_idx),
        val_idx=torch.stack(val_idx),
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        seeds=list(seeds),
        transition=torch.as_tensor(t, dtype=torch.float32)
        if "transition" in method.requires
        else None,
    )


CONTRACT = (
    check_metadata,
    check_params_declared,
    check_finite,
    check_random_params,
    check_neutral,
    check_deterministic,
    check_smoke_fit,
)


def run_contract(method: Method) -> None:
    """Run every check of the contract on one method; raises AssertionError on the first failure."""
    for check in CONTRACT:
        check(method)
