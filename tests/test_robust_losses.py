"""The robust-loss baselines (gce, sce, bootstrap_soft, bootstrap_hard, nce_mae)
against independent references.

Each reference is written differently from the method: from probabilities in numpy
float64, or with torch's own functions (`F.cross_entropy`, `F.l1_loss`,
`torch.special.entr`) under float64 autograd. Methods compute in float32, so
comparisons use float32-sized tolerances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import logits_batch as batch
from helpers import np_softmax

import noisebench
from noisebench import UserError

ROBUST = ("gce", "sce", "bootstrap_soft", "bootstrap_hard", "nce_mae")
RTOL, ATOL = 2e-5, 2e-5

pytestmark = pytest.mark.usefixtures("single_thread")


# --------------------------------------------------------------------------- helpers


def ctx(k):
    return noisebench.Context(num_classes=k)


def np_onehot(y, k):
    return np.eye(k)[np.asarray(y)]


def value_and_grad(name, z, y, **params):
    z = z.clone().requires_grad_(True)
    loss = noisebench.get_method(name)(z, y, ctx(z.shape[-1]), **params)
    loss.backward()
    return loss, z.grad


def per_sample(name, z, y, **params):
    """The method's loss on each sample alone (a batch of one), as float64 numpy."""
    method = noisebench.get_method(name)
    k = z.shape[-1]
    return np.array(
        [
            method(z[i : i + 1], y[i : i + 1], ctx(k), **params).item()
            for i in range(len(y))
        ]
    )


def torch_reference(fn, z):
    """fn(z64) -> scalar, evaluated in float64 with autograd: (value, gradient)."""
    z64 = z.double().requires_grad_(True)
    value = fn(z64)
    value.backward()
    return value.item(), z64.grad.numpy()


def close(actual, expected, rtol=RTOL, atol=ATOL):
    actual = actual.detach().double().numpy() if torch.is_tensor(actual) else actual
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- gce


def np_gce(z, y, q):
    """(1 - p_y^q) / q from probabilities, averaged."""
    p_y = np_softmax(z)[np.arange(len(y)), y]
    return float(np.mean((1 - p_y**q) / q))


def np_gce_grad(z, y, q):
    """d/dz_j (1 - p_y^q) / q = -p_y^(q-1) dp_y/dz_j = -p_y^q ([j=y] - p_j), / B."""
    p = np_softmax(z)
    p_y = p[np.arange(len(y)), y][:, None]
    return -(p_y**q) * (np_onehot(y, p.shape[1]) - p) / len(y)


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("q", [0.1, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_gce_equals_probability_formula(k, q, scale):
    z, y = batch(k, scale=scale, seed=k)
    loss, grad = value_and_grad("gce", z, y, q=q)
    close(loss, np_gce(z.numpy(), y.numpy(), q))
    close(grad, np_gce_grad(z.numpy(), y.numpy(), q), atol=1e-7)
    ref, ref_grad = torch_reference(
        lambda z64: ((1 - F.softmax(z64, -1).gather(-1, y[:, None]) ** q) / q).mean(), z
    )
    close(loss, ref)
    close(grad, ref_grad, atol=1e-7)


@pytest.mark.parametrize("k", [2, 10])
def test_gce_q_zero_is_cross_entropy(k):
    z, y = batch(k, seed=3)
    loss, grad = value_and_grad("gce", z, y, q=0.0)
    ref, ref_grad = torch_reference(lambda z64: F.cross_entropy(z64, y), z)
    close(loss, ref, rtol=1e-6, atol=1e-7)
    close(grad, ref_grad, atol=1e-7)


@pytest.mark.parametrize("q", [1e-3, 1e-5, 1e-7])
def test_gce_tends_to_cross_entropy_as_q_goes_to_zero(q):
    """(1 - p^q) / q = -log p - q (log p)^2 / 2 + ...: within q * (log p)^2 of CE, and
    the float32 result keeps its precision (naive 1 - p^q in float32 would not)."""
    z, y = batch(10, scale=3.0, seed=4)
    loss = noisebench.get_method("gce")(z, y, ctx(10), q=q)
    ce = F.cross_entropy(z.double(), y).item()
    logp_y = np.log(np_softmax(z.numpy())[np.arange(len(y)), y])
    assert abs(loss.item() - ce) <= q * np.mean(logp_y**2) + 1e-5 * ce
    close(loss, np_gce(z.numpy(), y.numpy(), q), rtol=1e-5)


@pytest.mark.parametrize("k", [2, 10, 100])
def test_gce_q_one_is_one_minus_p_y_that_is_half_mae(k):
    z, y = batch(k, seed=5)
    loss, grad = value_and_grad("gce", z, y, q=1.0)
    onehot = F.one_hot(y, k).double()
    ref, ref_grad = torch_reference(
        lambda z64: F.l1_loss(F.softmax(z64, -1), onehot, reduction="sum") / len(y) / 2,
        z,
    )
    close(loss, ref)
    close(grad, ref_grad, atol=1e-7)


@pytest.mark.parametrize("q", [0.1, 0.7, 1.0])
def test_gce_is_bounded_by_one_over_q(q):
    z, y = batch(10, b=64, scale=100.0, seed=6)
    losses = per_sample("gce", z, y, q=q)
    assert np.all(losses >= 0) and np.all(losses <= 1 / q + 1e-6)
    # a confidently wrong sample reaches the bound (p_y -> 0)
    wrong = torch.tensor([[1000.0, 0.0, 0.0]])
    worst = noisebench.get_method("gce")(wrong, torch.tensor([1]), ctx(3), q=q)
    close(worst, 1 / q, rtol=1e-6)


# --------------------------------------------------------------------------- sce


def np_sce(z, y, alpha, beta, log_zero):
    """alpha * CE + beta * RCE, RCE = -sum_k p_k log t_k with log 0 := log_zero."""
    p = np_softmax(z)
    onehot = np_onehot(y, p.shape[1])
    ce = -np.log(p[np.arange(len(y)), y])
    log_t = np.where(onehot == 1, 0.0, log_zero)
    rce = -(p * log_t).sum(axis=1)
    return float(np.mean(alpha * ce + beta * rce))


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize(
    "alpha,beta,log_zero", [(0.1, 1.0, -4.0), (6.0, 0.1, -4.0), (1.0, 1.0, -9.21)]
)
def test_sce_equals_reference(k, alpha, beta, log_zero):
    z, y = batch(k, scale=3.0, seed=10 + k)
    loss, grad = value_and_grad("sce", z, y, alpha=alpha, beta=beta, log_zero=log_zero)
    close(loss, np_sce(z.numpy(), y.numpy(), alpha, beta, log_zero))
    onehot = F.one_hot(y, k).double()
    log_t = torch.where(onehot == 1, 0.0, log_zero).double()
    ref, ref_grad = torch_reference(
        lambda z64: (
            alpha * F.cross_entropy(z64, y)
            + beta * -(F.softmax(z64, -1) * log_t).sum(-1).mean()
        ),
        z,
    )
    close(loss, ref)
    close(grad, ref_grad, atol=1e-7)


def test_sce_matches_the_authors_clipped_formula_at_log_zero_log_1e_4():
    """The authors' code: CE on p clipped to [1e-7, 1], RCE against the one-hot clipped
    to [1e-4, 1]. Where no p falls below 1e-7 that is our loss with log_zero = log 1e-4."""
    k, alpha, beta = 10, 0.1, 1.0
    z, y = batch(k, scale=2.0, seed=11)
    p = np_softmax(z.numpy())
    assert p.min() > 1e-7
    onehot = np_onehot(y.numpy(), k)
    ce = -(onehot * np.log(np.clip(p, 1e-7, 1.0))).sum(axis=1)
    rce = -(p * np.log(np.clip(onehot, 1e-4, 1.0))).sum(axis=1)
    authors = float(np.mean(alpha * ce + beta * rce))
    loss = noisebench.get_method("sce")(
        z, y, ctx(k), alpha=alpha, beta=beta, log_zero=math.log(1e-4)
    )
    close(loss, authors)


def test_sce_neutral_is_cross_entropy_and_rce_is_bounded():
    sce = noisebench.get_method("sce")
    assert sce.neutral == {"alpha": 1.0, "beta": 0.0}
    z, y = batch(10, seed=12)
    loss, grad = value_and_grad("sce", z, y, **{**sce.defaults, **sce.neutral})
    ref, ref_grad = torch_reference(lambda z64: F.cross_entropy(z64, y), z)
    close(loss, ref, rtol=1e-6, atol=1e-7)
    close(grad, ref_grad, atol=1e-7)
    # RCE alone lies in [0, -A]: it is -A * (1 - p_y)
    z, y = batch(10, b=64, scale=100.0, seed=13)
    rce = per_sample("sce", z, y, alpha=0.0, beta=1.0, log_zero=-4.0)
    assert np.all(rce >= 0) and np.all(rce <= 4.0 + 1e-6)


# --------------------------------------------------------------------------- bootstrapping


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.95])
def test_bootstrap_soft_equals_mixed_target_cross_entropy(k, beta):
    """Value: -sum_k (beta t_k + (1 - beta) p_k) log p_k. Gradient: that of
    beta * CE + (1 - beta) * H(p), the p in the target differentiated too."""
    z, y = batch(k, scale=3.0, seed=20 + k)
    loss, grad = value_and_grad("bootstrap_soft", z, y, beta=beta)
    p = np_softmax(z.numpy())
    target = beta * np_onehot(y.numpy(), k) + (1 - beta) * p
    close(loss, float(np.mean(-(target * np.log(p)).sum(axis=1))))
    ref, ref_grad = torch_reference(
        lambda z64: (
            beta * F.cross_entropy(z64, y)
            + (1 - beta) * torch.special.entr(F.softmax(z64, -1)).sum(-1).mean()
        ),
        z,
    )
    close(loss, ref)
    close(grad, ref_grad, atol=1e-7)
    # the same in closed form: beta (p - t) + (1 - beta) (-p (log p + H)), / B
    entropy = -(p * np.log(p)).sum(axis=1, keepdims=True)
    analytic = beta * (p - np_onehot(y.numpy(), k)) - (1 - beta) * p * (
        np.log(p) + entropy
    )
    close(grad, analytic / len(y), atol=1e-7)


def test_bootstrap_soft_differentiates_the_target():
    """Unlike CE against a detached soft target, whose gradient is p - target."""
    k, beta = 10, 0.5
    z, y = batch(k, scale=3.0, seed=21)
    _, grad = value_and_grad("bootstrap_soft", z, y, beta=beta)
    p = np_softmax(z.numpy())
    detached = (p - (beta * np_onehot(y.numpy(), k) + (1 - beta) * p)) / len(y)
    assert np.abs(grad.numpy() - detached).max() > 1e-3


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.8])
def test_bootstrap_hard_equals_cross_entropy_against_a_constant_target(k, beta):
    z, y = batch(k, scale=3.0, seed=30 + k)
    loss, grad = value_and_grad("bootstrap_hard", z, y, beta=beta)
    p = np_softmax(z.numpy())
    z_hat = np_onehot(p.argmax(axis=1), k)
    target = beta * np_onehot(y.numpy(), k) + (1 - beta) * z_hat
    close(loss, float(np.mean(-(target * np.log(p)).sum(axis=1))))
    # argmax is a constant: the gradient is that of CE against a fixed soft target
    close(grad, (p - target) / len(y), atol=1e-7)
    ref, ref_grad = torch_reference(
        lambda z64: F.cross_entropy(z64, torch.as_tensor(target)), z
    )
    close(loss, ref)
    close(grad, ref_grad, atol=1e-7)


def test_bootstrap_hard_is_cross_entropy_where_the_prediction_is_the_label():
    z, _ = batch(10, seed=31)
    y = z.argmax(dim=-1)
    for beta in (0.0, 0.3, 0.8):
        loss = noisebench.get_method("bootstrap_hard")(z, y, ctx(10), beta=beta)
        close(loss, F.cross_entropy(z.double(), y).item())


@pytest.mark.parametrize("name", ["bootstrap_soft", "bootstrap_hard"])
def test_bootstrap_beta_one_is_cross_entropy(name):
    assert noisebench.get_method(name).neutral == {"beta": 1.0}
    z, y = batch(10, seed=32)
    loss, grad = value_and_grad(name, z, y, beta=1.0)
    ref, ref_grad = torch_reference(lambda z64: F.cross_entropy(z64, y), z)
    close(loss, ref, rtol=1e-6, atol=1e-7)
    close(grad, ref_grad, atol=1e-7)


# --------------------------------------------------------------------------- nce_mae


def np_nce_mae(z, y, alpha, beta):
    """alpha * log p_y / sum_k log p_k + beta * (1 - p_y), averaged."""
    log_p = np.log(np_softmax(z))
    log_p_y = log_p[np.arange(len(y)), y]
    return float(
        np.mean(alpha * log_p_y / log_p.sum(axis=1) + beta * (1 - np.exp(log_p_y)))
    )


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (10.0, 1.0), (1.0, 10.0)])
def test_nce_mae_equals_reference(k, alpha, beta):
    z, y = batch(k, scale=3.0, seed=40 + k)
    loss, grad = value_and_grad("nce_mae", z, y, alpha=alpha, beta=beta)
    close(loss, np_nce_mae(z.numpy(), y.numpy(), alpha, beta))
    onehot = F.one_hot(y, k).double()

    def reference(z64):
        log_p = torch.log(F.softmax(z64, -1))  # float64, moderate logits: fine here
        nce = F.nll_loss(log_p, y, reduction="none") / -log_p.sum(-1)
        # the authors' MAE is half of sum_k |t_k - p_k|
        mae = F.l1_loss(F.softmax(z64, -1), onehot, reduction="none").sum(-1) / 2
        return (alpha * nce + beta * mae).mean()

    ref, ref_grad = torch_reference(reference, z)
    close(loss, ref)
    close(grad, ref_grad, atol=1e-6)


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_nce_lies_in_zero_one_and_sums_to_one_over_labels(k, scale):
    """NCE is normalized: in [0, 1], and over all K labels it sums to 1 (MAE to K - 1),
    the symmetry that makes it robust to symmetric noise."""
    z, _ = batch(k, b=8, scale=scale, seed=50 + k)
    nce = np.stack(
        [
            per_sample("nce_mae", z, torch.full((8,), j), alpha=1.0, beta=0.0)
            for j in range(k)
        ]
    )
    assert np.all(nce >= 0) and np.all(nce <= 1 + 1e-6)
    close(nce.sum(axis=0), np.ones(8), rtol=1e-4)
    if scale == 1.0:
        mae = np.stack(
            [
                per_sample("nce_mae", z, torch.full((8,), j), alpha=0.0, beta=1.0)
                for j in range(k)
            ]
        )
        close(mae.sum(axis=0), np.full(8, k - 1.0), rtol=1e-5)


def test_nce_mae_has_no_neutral():
    assert noisebench.get_method("nce_mae").neutral is None


# --------------------------------------------------------------------------- all five


def test_metadata():
    expected = {
        "gce": ({"q": 0.7}, "https://arxiv.org/abs/1805.07836"),
        "sce": (
            {"alpha": 0.1, "beta": 1.0, "log_zero": -4.0},
            "https://arxiv.org/abs/1908.06112",
        ),
        "bootstrap_soft": ({"beta": 0.95}, "https://arxiv.org/abs/1412.6596"),
        "bootstrap_hard": ({"beta": 0.8}, "https://arxiv.org/abs/1412.6596"),
        "nce_mae": ({"alpha": 1.0, "beta": 1.0}, "https://arxiv.org/abs/2006.13554"),
    }
    for name, (defaults, paper) in expected.items():
        method = noisebench.get_method(name)
        assert method.defaults == defaults and method.paper == paper
        assert method.version == 1 and method.origin == "builtin"


@pytest.mark.parametrize(
    "name,valid,invalid",
    [
        ("gce", [{"q": 0.0}, {"q": 1.0}], [{"q": -0.1}, {"q": 1.01}]),
        (
            "sce",
            [{"alpha": 0.0, "beta": 0.0}, {"log_zero": -9.21}],
            [{"alpha": -0.1}, {"beta": -1.0}, {"log_zero": 0.0}, {"log_zero": 1.0}],
        ),
        (
            "bootstrap_soft",
            [{"beta": 0.0}, {"beta": 1.0}],
            [{"beta": -0.1}, {"beta": 1.1}],
        ),
        (
            "bootstrap_hard",
            [{"beta": 0.0}, {"beta": 1.0}],
            [{"beta": -0.1}, {"beta": 1.1}],
        ),
        (
            "nce_mae",
            [{"alpha": 0.0}, {"beta": 50.0}],
            [{"alpha": -1.0}, {"beta": -0.5}],
        ),
    ],
)
def test_parameters_are_validated(name, valid, invalid):
    method = noisebench.get_method(name)
    for params in valid:
        assert method.resolve(params) == {**method.defaults, **params}
    for params in invalid:
        with pytest.raises(UserError, match="out of range"):
            method.resolve(params)
        key, value = next(iter(params.items()))
        with pytest.raises(UserError, match="out of range"):
            method.parse([f"{key}={value}"])


@pytest.mark.parametrize("name", ROBUST)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_returns_float32_scalar(name, dtype):
    method = noisebench.get_method(name)
    z, y = batch(10, seed=60)
    loss = method(z.to(dtype), y, ctx(10), **method.defaults)
    assert loss.dtype == torch.float32 and loss.shape == ()
    close(loss, method(z.to(dtype).float(), y, ctx(10), **method.defaults).item(), 0, 0)


@pytest.mark.parametrize("name", ROBUST)
def test_finite_at_extreme_logits(name):
    method = noisebench.get_method(name)
    z, y = batch(100, scale=1e4, seed=61)
    loss, grad = value_and_grad(name, z, y, **method.defaults)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


@pytest.mark.parametrize("name", ROBUST)
def test_vmapped_over_members_equals_the_loop(name):
    from noisebench.engine import MemberLosses

    method = noisebench.get_method(name)
    g = torch.Generator().manual_seed(70)
    logits = (torch.randn(3, 16, 10, generator=g) * 3).requires_grad_(True)
    labels = torch.randint(10, (3, 16), generator=g)
    losses = MemberLosses(method, method.defaults)
    values, _ = losses(logits, labels, [ctx(10)] * 3)
    assert losses.batched is True
    (grad,) = torch.autograd.grad(values.sum(), logits)
    loop = torch.stack(
        [method(logits[s], labels[s], ctx(10), **method.defaults) for s in range(3)]
    )
    (loop_grad,) = torch.autograd.grad(loop.sum(), logits)
    torch.testing.assert_close(values, loop)
    torch.testing.assert_close(grad, loop_grad)
