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

`run_checks` runs every check and reports each (passed or not, and why on one line)
instead of stopping at the first failure: `noisebench methods check` prints that.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    loss, _ = method.step(logits, labels, method.batch_context(ctx, logits), **params)
    where = f"K={logits.shape[-1]}, batch {logits.shape[0]}"
    assert isinstance(loss, torch.Tensor), (
        f"the loss must be a scalar tensor, got {type(loss).__name__} ({where})"
    )
    assert loss.shape == () and loss.dtype == torch.float32, (
        f"the loss must be a float32 scalar, got shape {tuple(loss.shape)} "
        f"{str(loss.dtype).removeprefix('torch.')} ({where})"
    )
    assert loss.requires_grad, (
        f"the loss has no gradient: it is cut off from the logits ({where})"
    )
    loss.backward()
    grad = logits.grad if logits.grad is not None else torch.zeros_like(logits)
    return loss.detach(), grad


def _batch(batch: int, num_classes: int, seed: int, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, num_classes, generator=g) * scale
    labels = torch.randint(num_classes, (batch,), generator=g)
    return logits, labels


def check_metadata(method: Method) -> None:
    """Has a valid name, a one-line summary, a version >= 1 and a paper URL if any."""
    assert NAME_RE.match(method.name), (
        f"name {method.name!r} does not match {NAME_RE.pattern}"
    )
    assert method.summary and "\n" not in method.summary, (
        "needs a one-line summary: the first line of the loss's docstring"
    )
    assert isinstance(method.version, int) and method.version >= 1, (
        f"version must be an int >= 1, got {method.version!r}"
    )
    assert not method.paper or method.paper.startswith("https://"), (
        f"paper must be an https:// URL, got {method.paper!r}"
    )


def check_params_declared(method: Method) -> None:
    """search_space and defaults name the same params; defaults lie in the space and bounds."""
    assert set(method.search_space) == set(method.defaults), (
        f"search_space names {sorted(method.search_space)}, "
        f"defaults name {sorted(method.defaults)}"
    )
    for key, value in method.defaults.items():
        dist = method.search_space[key]
        assert dist.contains(value), (
            f"default {key}={value!r} lies outside its search space {dist.describe()}"
        )
        method.check_value(key, value)
    for key in method.neutral or {}:
        assert key in method.defaults, f"neutral names {key!r}, which is no parameter"
    for key, bounds in method.bounds.items():
        assert key in method.search_space, f"bounds name {key!r}, which is no parameter"
        dist = method.search_space[key]
        if hasattr(dist, "low"):  # the tuner must never propose an invalid value
            assert bounds.encloses(dist.low, dist.high), (
                f"the search space of {key}, {dist.describe()}, reaches outside its "
                f"valid range {bounds.describe()}: the tuner would propose invalid values"
            )


def check_finite(method: Method) -> None:
    """A finite scalar loss and finite gradients for batch sizes 1 and 8 and K of 2, 10, 100."""
    for num_classes in (2, 10, 100):
        for batch in (1, 8):
            logits, labels = _batch(batch, num_classes, seed=batch * 1000 + num_classes)
            ctx = context(method, num_classes)
            loss, grad = _loss_and_grad(method, logits, labels, ctx, method.defaults)
            where = f"K={num_classes}, batch {batch}, default params"
            assert torch.isfinite(loss), f"non-finite loss {loss.item()} ({where})"
            assert torch.isfinite(grad).all(), f"non-finite gradient ({where})"
            assert grad.abs().sum() > 0, (
                f"zero gradient: the loss must depend on the logits ({where})"
            )


def check_random_params(method: Method, draws: int = 20) -> None:
    """Random draws from the search space give finite losses and gradients."""
    rng = np.random.default_rng(0)
    logits, labels = _batch(16, 10, seed=1)
    for _ in range(draws if method.search_space else 1):
        params = sample_params(method, rng)
        loss, grad = _loss_and_grad(method, logits, labels, context(method, 10), params)
        assert torch.isfinite(loss), f"non-finite loss {loss.item()} at {params}"
        assert torch.isfinite(grad).all(), f"non-finite gradient at {params}"


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
        try:
            torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
        except AssertionError:
            raise AssertionError(
                f"at the neutral params {params} the loss is {loss.item():.6g}, but "
                f"cross-entropy is {ref.item():.6g} (K={num_classes})"
            ) from None
        try:
            torch.testing.assert_close(grad, ref_logits.grad, rtol=1e-4, atol=1e-6)
        except AssertionError:
            gap = (grad - ref_logits.grad).abs().max().item()
            raise AssertionError(
                f"at the neutral params {params} the gradient differs from "
                f"cross-entropy's by up to {gap:.3g} (K={num_classes})"
            ) from None


def check_deterministic(method: Method) -> None:
    """The same ctx.generator seed gives the same loss and gradient; global RNG is untouched."""
    logits, labels = _batch(64, 10, seed=7)
    torch.manual_seed(123)
    before = (torch.random.get_rng_state(), _numpy_rng_state(), random.getstate())
    first = _loss_and_grad(
        method, logits, labels, context(method, 10, seed=5), method.defaults
    )
    second = _loss_and_grad(
        method, logits, labels, context(method, 10, seed=5), method.defaults
    )
    for used, what in (
        (not torch.equal(torch.random.get_rng_state(), before[0]), "torch's"),
        (_numpy_rng_state() != before[1], "numpy's"),
        (random.getstate() != before[2], "Python's"),
    ):
        assert not used, (
            f"the method drew from {what} global RNG; draw from ctx.generator instead"
        )
    assert torch.equal(first[0], second[0]), (
        f"the same ctx.generator seed gave different losses "
        f"({first[0].item():.6g}, then {second[0].item():.6g})"
    )
    assert torch.equal(first[1], second[1]), (
        "the same ctx.generator seed gave different gradients"
    )


def _numpy_rng_state() -> tuple:
    # the key changes only every 624 draws; the position within it, at every draw
    _, key, pos, has_gauss, gauss = np.random.get_state()
    return (key.tobytes(), pos, has_gauss, gauss)


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
    assert acc > threshold, (
        f"test accuracy {acc:.3f} <= {threshold:.3f} after 15 epochs on noisy Gaussian "
        f"blobs ({task.num_classes} classes, 30% symmetric noise)"
    )


def check_state_isolated(method: Method) -> None:
    """State never leaks: a seed trained beside another ends as it does alone.

    Per-sample state and paired networks only; a state kept in module globals instead
    of `ctx.state` leaks from one run into the next, and fails too."""
    from noisebench.engine import TrainConfig, fit

    if not (method.state or method.paired):
        return
    config = TrainConfig(hidden=(16,), epochs=4, batch_size=64, lr=3e-3)
    both = fit(
        blobs_task(num_classes=4, noise=0.3, method=method, seeds=(0, 1)),
        method=method,
        params=method.defaults,
        config=config,
    )
    alone = fit(
        blobs_task(num_classes=4, noise=0.3, method=method, seeds=(0,)),
        method=method,
        params=method.defaults,
        config=config,
    )
    gap = (both.pool_logits[0] - alone.pool_logits[0]).abs().max().item()
    assert gap < 1e-4, (
        f"seed 0 trained beside seed 1 ends {gap:.3g} away (max logit difference) from "
        "seed 0 trained alone: state or pairs leak across seeds or runs (keep state in "
        "ctx.state, never in globals)"
    )


def check_pair_neutral(method: Method) -> None:
    """Identical paired networks at neutral params train the one-network CE model.

    Paired methods with neutral params only: at forget rate 0, say, two networks that
    start identical must train exactly what one network trains with cross-entropy."""
    from noisebench.engine import TrainConfig, fit
    from noisebench.registry import get_method

    if not method.paired or method.neutral is None:
        return
    params = {**method.defaults, **method.neutral}
    config = TrainConfig(hidden=(16,), epochs=4, batch_size=64, lr=3e-3)
    task = blobs_task(num_classes=4, noise=0.3, method=method, seeds=(0, 1))
    twins = fit(
        task.paired(same_init=True), method=method, params=params, config=config
    )
    ce = fit(task, method=get_method("ce"), params={}, config=config)
    gap = (twins.pool_logits - ce.pool_logits).abs().max().item()
    assert gap < 1e-4, (
        f"with identical networks at {params} the pair ends {gap:.3g} away (max logit "
        "difference) from one network trained with cross-entropy"
    )


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
        y_clean=y,
    )


CONTRACT = (
    check_metadata,
    check_params_declared,
    check_finite,
    check_random_params,
    check_neutral,
    check_deterministic,
    check_smoke_fit,
    check_state_isolated,
    check_pair_neutral,
)


def run_contract(method: Method) -> None:
    """Run every check of the contract on one method; raises AssertionError on the first failure."""
    for check in CONTRACT:
        check(method)


@dataclass(frozen=True)
class CheckResult:
    """One check of the contract on one method."""

    name: str  # the check without its prefix: "finite" for check_finite
    summary: str  # what it checks: its docstring's first line
    passed: bool
    message: str  # why it failed, on one line ("" when it passed)
    seconds: float


def check_name(check: Callable[[Method], None]) -> str:
    return check.__name__.removeprefix("check_")


def run_checks(
    method: Method, checks: Sequence[Callable[[Method], None]] = CONTRACT
) -> list[CheckResult]:
    """Run every check on its own: a failure is reported, never raised, and the next
    check still runs. The reason is the failure's message on one line (the exception's
    type too, unless it is a failed assertion), never a traceback."""
    results = []
    for check in checks:
        start = time.perf_counter()
        try:
            check(method)
        except Exception as err:  # noqa: BLE001 - a broken method is what is being reported
            text = (
                str(err)
                if isinstance(err, AssertionError)
                else f"{type(err).__name__}: {err}"
            )
            passed, message = False, " ".join(text.split()) or "assertion failed"
        else:
            passed, message = True, ""
        summary = ((check.__doc__ or "").strip().splitlines() or [""])[0]
        results.append(
            CheckResult(
                check_name(check), summary, passed, message, time.perf_counter() - start
            )
        )
    return results
