"""The built-in losses against independent references (DESIGN.md §2).

Every reference is either torch's own implementation (`F.cross_entropy`) or the
formula of DESIGN.md §2 evaluated directly in numpy float64, never the code under
test. Methods compute in float32, so comparisons use float32-sized tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import logits_batch as batch

import noisebench
from noisebench.noise import transition_matrix

BUILTIN = ("ce", "ls", "gls", "forward", "backward", "flip")
# float32 arithmetic on O(1)..O(100) log-probabilities, compared with float64
RTOL, ATOL = 2e-5, 2e-5


pytestmark = pytest.mark.usefixtures("single_thread")


# --------------------------------------------------------------------------- helpers


def ctx(k, t=None, seed=0):
    return noisebench.Context(
        num_classes=k,
        transition=None if t is None else torch.as_tensor(t),
        generator=torch.Generator().manual_seed(seed),
    )


def np_logp(z):
    """log softmax in numpy float64 (max-shifted log-sum-exp)."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def np_softmax(z):
    return np.exp(np_logp(z))


def np_gls(z, y, r):
    """(1-r)(-log p_y) + r mean_k(-log p_k), averaged over the batch."""
    logp = np_logp(z)
    n = np.arange(len(y))
    return float(np.mean((1 - r) * -logp[n, y] + r * (-logp).mean(axis=1)))


def np_gls_grad(z, y, r):
    """d/dz_j of the batch-mean gls loss: (p_j - (1-r) [j=y] - r/K) / B."""
    p = np_softmax(z)
    b, k = p.shape
    onehot = np.eye(k)[y]
    return (p - (1 - r) * onehot - r / k) / b


def np_forward(z, y, t):
    """-log (p^T T)_y, averaged: q = p @ T is the noisy-label posterior."""
    q = np_softmax(z) @ np.asarray(t, dtype=np.float64)
    return float(np.mean(-np.log(q[np.arange(len(y)), y])))


def np_forward_grad(z, y, t):
    """d/dz_j (-log q_y) with q_y = sum_i p_i T[i, y]: p_j (1 - T[j, y] / q_y), / B."""
    t = np.asarray(t, dtype=np.float64)
    p = np_softmax(z)
    col = t[:, y].T  # (B, K): T[j, y_n]
    q_y = (p * col).sum(axis=1, keepdims=True)
    return p * (1 - col / q_y) / len(y)


def np_backward(z, y, t):
    """sum_j inv(T)[y, j] (-log p_j), averaged."""
    t_inv = np.linalg.inv(np.asarray(t, dtype=np.float64))
    return float(np.mean((t_inv[y] * -np_logp(z)).sum(axis=1)))


def np_backward_grad(z, y, t):
    """d/dz_m sum_j W[y, j] (-log p_j) = p_m sum_j W[y, j] - W[y, m], W = inv(T); / B."""
    w = np.linalg.inv(np.asarray(t, dtype=np.float64))[y]
    p = np_softmax(z)
    return (p * w.sum(axis=1, keepdims=True) - w) / len(y)


def value_and_grad(name, z, y, c, **params):
    z = z.clone().requires_grad_(True)
    loss = noisebench.get_method(name)(z, y, c, **params)
    loss.backward()
    return loss, z.grad


def dirichlet_t(k, seed, *, diag=0.0):
    """Random row-stochastic T: rows Dirichlet(1), optionally mixed with `diag` * I."""
    rng = np.random.default_rng(seed)
    return diag * np.eye(k) + (1 - diag) * rng.dirichlet(np.ones(k), size=k)


def close(actual, expected, rtol=RTOL, atol=ATOL):
    actual = actual.detach().double().numpy() if torch.is_tensor(actual) else actual
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- ce


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_ce_equals_torch_cross_entropy(k, scale):
    z, y = batch(k, scale=scale, seed=50 + k)
    loss, grad = value_and_grad("ce", z, y, ctx(k))
    z64 = z.double().requires_grad_(True)
    ref = F.cross_entropy(z64, y)
    ref.backward()
    close(loss, ref.item())
    close(loss, np_gls(z.numpy(), y.numpy(), 0.0))
    close(grad, z64.grad.numpy(), atol=1e-7)


# --------------------------------------------------------------------------- ls


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("a", [0.0, 0.05, 0.3, 0.7, 0.99])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_ls_equals_torch_label_smoothing(k, a, scale):
    z, y = batch(k, scale=scale, seed=k)
    loss, grad = value_and_grad("ls", z, y, ctx(k), smoothing=a)

    # torch's own implementation, in float64 and in float32
    z64 = z.double().requires_grad_(True)
    ref = F.cross_entropy(z64, y, label_smoothing=a)
    ref.backward()
    close(loss, ref.item())
    close(grad, z64.grad.numpy(), atol=1e-7)
    ref32 = F.cross_entropy(z, y, label_smoothing=a)
    close(loss, ref32.item(), rtol=1e-6, atol=1e-6)


def test_ls_zero_is_cross_entropy():
    z, y = batch(10, seed=3)
    close(noisebench.get_method("ls")(z, y, ctx(10), smoothing=0.0), np_gls(z, y, 0))


# --------------------------------------------------------------------------- gls


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("r", [-1.5, -0.5, -0.2, 0.0, 0.3, 0.8])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_gls_equals_numpy_formula(k, r, scale):
    z, y = batch(k, scale=scale, seed=100 + k)
    loss, grad = value_and_grad("gls", z, y, ctx(k), smooth_rate=r)
    close(loss, np_gls(z.numpy(), y.numpy(), r))
    close(grad, np_gls_grad(z.numpy(), y.numpy(), r), atol=1e-7)


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("r", [0.0, 0.1, 0.5, 0.95])
def test_gls_equals_ls_for_nonnegative_rates(k, r):
    z, y = batch(k, seed=200 + k)
    gls = noisebench.get_method("gls")(z, y, ctx(k), smooth_rate=r)
    ls = noisebench.get_method("ls")(z, y, ctx(k), smoothing=r)
    ref = F.cross_entropy(z.double(), y, label_smoothing=r).item()
    close(gls, ref)
    close(ls, ref)


def test_gls_negative_rate_is_unbounded_below():
    # NLS rewards confidence beyond CE: with r < 0 and a confident correct
    # prediction the loss is negative (CE -> 0 while -r * mean_k(-log p_k) grows).
    z = torch.tensor([[20.0, 0.0, 0.0]])
    y = torch.tensor([0])
    loss = noisebench.get_method("gls")(z, y, ctx(3), smooth_rate=-0.5)
    close(loss, np_gls(z.numpy(), y.numpy(), -0.5))
    assert loss.item() < 0


# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_forward_equals_numpy_on_dirichlet_t(k, scale):
    t = dirichlet_t(k, seed=k)
    z, y = batch(k, scale=scale, seed=300 + k)
    loss, grad = value_and_grad("forward", z, y, ctx(k, t))
    close(loss, np_forward(z.numpy(), y.numpy(), t))
    close(grad, np_forward_grad(z.numpy(), y.numpy(), t), atol=1e-6)


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [1.0, 10.0, 50.0])
def test_forward_with_exact_zeros_in_t(k, scale):
    t = transition_matrix("pairflip", k, 0.3)
    assert (t == 0).any() or k == 2  # K = 2 pairflip has no zero entries
    z, y = batch(k, scale=scale, seed=400 + k)
    loss, grad = value_and_grad("forward", z, y, ctx(k, t))
    assert torch.isfinite(loss)
    assert torch.isfinite(grad).all()
    close(loss, np_forward(z.numpy(), y.numpy(), t))
    close(grad, np_forward_grad(z.numpy(), y.numpy(), t), atol=1e-6)


def test_forward_gradient_finite_with_many_zero_entries():
    # A sparse T (half the entries 0, invertibility not needed for forward) and
    # logits that put all mass on classes that cannot produce the label.
    k = 6
    t = np.zeros((k, k))
    for i in range(k):
        t[i, i], t[i, (i + 1) % k], t[i, (i + 3) % k] = 0.6, 0.3, 0.1
    z = torch.full((k, k), -30.0)
    z[torch.arange(k), (torch.arange(k) + 2) % k] = 30.0  # confident on class y+2
    y = torch.arange(k)
    loss, grad = value_and_grad("forward", z, y, ctx(k, t))
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    close(loss, np_forward(z.numpy(), y.numpy(), t))
    close(grad, np_forward_grad(z.numpy(), y.numpy(), t), atol=1e-6)


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_forward_with_identity_is_cross_entropy(k, scale):
    z, y = batch(k, scale=scale, seed=500 + k)
    loss, grad = value_and_grad("forward", z, y, ctx(k, np.eye(k)))
    z64 = z.double().requires_grad_(True)
    ref = F.cross_entropy(z64, y)
    ref.backward()
    assert torch.isfinite(grad).all()
    close(loss, ref.item())
    close(grad, z64.grad.numpy(), atol=1e-7)


# --------------------------------------------------------------------------- backward


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("diag", [0.0, 0.5])
def test_backward_equals_numpy_on_random_invertible_t(k, diag):
    t = dirichlet_t(k, seed=600 + k, diag=diag)
    cond = np.linalg.cond(t)
    assert cond < 1e4, f"test matrix too ill-conditioned ({cond:.3g}); pick a seed"
    z, y = batch(k, seed=700 + k)
    loss, grad = value_and_grad("backward", z, y, ctx(k, t))
    ref = np_backward(z.numpy(), y.numpy(), t)
    # The terms W[y, j] (-log p_j), W = inv(T), have mixed signs and can cancel, so
    # float32 rounding is relative to the sum of their magnitudes, not to the result.
    w = np.linalg.inv(t)[y.numpy()]
    magnitude = np.mean((np.abs(w) * np.abs(np_logp(z.numpy()))).sum(axis=1))
    close(loss, ref, rtol=0, atol=1e-6 * magnitude + ATOL)
    close(grad, np_backward_grad(z.numpy(), y.numpy(), t), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_backward_with_identity_is_cross_entropy(k, scale):
    z, y = batch(k, scale=scale, seed=800 + k)
    loss, grad = value_and_grad("backward", z, y, ctx(k, np.eye(k)))
    z64 = z.double().requires_grad_(True)
    ref = F.cross_entropy(z64, y)
    ref.backward()
    close(loss, ref.item())
    close(grad, z64.grad.numpy(), atol=1e-7)


# Backward correction under symmetric noise is negative label smoothing.
#
# Symmetric T = (1-eps) I + eps/(K-1) (J - I)
#             = (1 - eps - eps/(K-1)) I + eps/(K-1) J
#             = (1-a) I + (a/K) J,                 with a = K eps / (K-1).
# For c I + d J (J = all-ones, J^2 = K J):
#   (c I + d J)(I/c - d/(c (c + dK)) J) = I + (d/c) J - d/(c+dK) J - d^2 K/(c (c+dK)) J
#                                     = I + J d/c (1 - c/(c+dK) - dK/(c+dK)) = I,
# so with c = 1-a, d = a/K, c + dK = 1:
#   inv(T) = (I - (a/K) J) / (1-a).
# Hence sum_j inv(T)[y, j] (-log p_j)
#   = [(-log p_y) - a mean_k(-log p_k)] / (1-a)
#   = (1-r)(-log p_y) + r mean_k(-log p_k)   with 1-r = 1/(1-a), r = -a/(1-a),
# since 1 - (-a/(1-a)) = 1/(1-a). The identity holds exactly, scale included
# (no extra constant factor), for every eps < (K-1)/K, i.e. a < 1.


@pytest.mark.parametrize(
    "k,eps", [(2, 0.1), (2, 0.4), (10, 0.2), (10, 0.6), (100, 0.3), (100, 0.8)]
)
def test_symmetric_inverse_closed_form(k, eps):
    t = transition_matrix("symmetric", k, eps)
    a = k * eps / (k - 1)
    closed = (np.eye(k) - a / k * np.ones((k, k))) / (1 - a)
    np.testing.assert_allclose(closed @ t, np.eye(k), atol=1e-12)
    np.testing.assert_allclose(np.linalg.inv(t), closed, atol=1e-9)


@pytest.mark.parametrize(
    "k,eps", [(2, 0.1), (2, 0.4), (10, 0.2), (10, 0.6), (100, 0.3), (100, 0.8)]
)
def test_backward_under_symmetric_noise_equals_negative_label_smoothing(k, eps):
    t = transition_matrix("symmetric", k, eps)
    a = k * eps / (k - 1)
    r = -a / (1 - a)
    z, y = batch(k, seed=900 + k)
    backward, g_backward = value_and_grad("backward", z, y, ctx(k, t))
    gls, g_gls = value_and_grad("gls", z, y, ctx(k), smooth_rate=r)
    ref = np_gls(z.numpy(), y.numpy(), r)
    # |r| up to 4 (K=2, eps=0.4) amplifies float32 rounding
    tol = 1e-5 * (1 + abs(r))
    close(backward, ref, rtol=tol, atol=tol)
    close(gls, ref, rtol=tol, atol=tol)
    close(backward, gls.item(), rtol=tol, atol=tol)
    close(g_backward, np_gls_grad(z.numpy(), y.numpy(), r), atol=1e-6 * (1 + abs(r)))
    close(g_backward, g_gls.numpy(), atol=1e-6 * (1 + abs(r)))


# --------------------------------------------------------------------------- flip


def test_flip_deterministic_under_seed():
    flip = noisebench.get_method("flip")
    z, y = batch(10, b=64, seed=1)
    first = flip(z, y, ctx(10, seed=123), rate=0.5)
    again = flip(z, y, ctx(10, seed=123), rate=0.5)
    other = flip(z, y, ctx(10, seed=124), rate=0.5)
    assert first.item() == again.item()
    assert first.item() != other.item()


def test_flip_leaves_global_rng_alone():
    flip = noisebench.get_method("flip")
    z, y = batch(10, b=64, seed=1)
    state = torch.get_rng_state()
    flip(z, y, ctx(10, seed=5), rate=0.5)
    assert torch.equal(state, torch.get_rng_state())


def test_flip_rate_zero_is_cross_entropy_exactly():
    # rate = 0 disturbs no label, whatever the generator draws: the value is the same
    # for every seed, bit for bit, and it is cross-entropy (to float32 rounding).
    flip = noisebench.get_method("flip")
    z, y = batch(10, seed=2)
    values = {flip(z, y, ctx(10, seed=s), rate=0.0).item() for s in range(5)}
    assert len(values) == 1
    close(values.pop(), F.cross_entropy(z.double(), y).item(), rtol=1e-6, atol=1e-6)
    close(flip(z, y, ctx(10), rate=0.0), np_gls(z.numpy(), y.numpy(), 0.0))


def test_flip_needs_a_generator():
    z, y = batch(10, seed=2)
    c = noisebench.Context(num_classes=10, generator=None)
    with pytest.raises(ValueError):
        noisebench.get_method("flip")(z, y, c, rate=0.1)


@pytest.mark.parametrize("k,rate", [(2, 0.3), (10, 0.1), (10, 0.5), (100, 0.4)])
def test_flip_expectation_is_label_smoothing(k, rate):
    # E[CE(z, y')] with y' = y w.p. 1-rate, uniform over all K w.p. rate is
    # (1-rate)(-log p_y) + rate mean_k(-log p_k): label smoothing with a = rate.
    # Logits favour the label, so CE_y differs from mean_k CE_k and drawing y' from
    # the K-1 *other* classes (a plausible bug) would shift the mean measurably.
    flip = noisebench.get_method("flip")
    b, reps, n = 32, 25, 400
    z, y = batch(k, b=b, seed=1000 + k)
    z[torch.arange(b), y] += 3.0
    expected = F.cross_entropy(z.double(), y, label_smoothing=rate).item()
    # Each call sees the batch repeated `reps` times, so one draw is a mean over
    # reps * b independent relabellings; the n draws are i.i.d. (one generator).
    c = ctx(k, seed=7)
    zr, yr = z.repeat(reps, 1), y.repeat(reps)
    draws = np.array([flip(zr, yr, c, rate=rate).item() for _ in range(n)])
    se = draws.std(ddof=1) / np.sqrt(n)
    assert se > 0  # the draws do vary
    assert abs(draws.mean() - expected) < 5 * se, (draws.mean(), expected, se)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("k,rate", [(5, 0.4), (2, 0.01)])
def test_flip_expected_relabel_frequency(k, rate, dtype):
    # The relabelled target is y w.p. 1 - rate + rate/K (the true class is included
    # in the uniform draw) and each other class w.p. rate/K. Probe: one sample with
    # logits (s, 0, ..., 0) and label 0, repeated n times: CE is ce_hit when y' = 0 and
    # ce_miss for any other y', so the batch-mean loss gives the hit fraction exactly.
    # bf16 logits (what the engine passes under autocast) must not change the rate:
    # the coin flips must not be drawn at the logits' precision.
    n = 1_000_000
    z = torch.zeros(n, k, dtype=dtype)
    z[:, 0] = 5.0
    y = torch.zeros(n, dtype=torch.long)
    logp = np_logp(z[:1].float().numpy())[0]
    ce_hit, ce_miss = -logp[0], -logp[1]
    loss = noisebench.get_method("flip")(z, y, ctx(k, seed=11), rate=rate).item()
    hit = (ce_miss - loss) / (ce_miss - ce_hit)
    p = 1 - rate + rate / k  # (5, 0.4): 0.68, 0.6 if the true class were excluded
    se = np.sqrt(p * (1 - p) / n)  # binomial standard error of the hit fraction
    assert abs(hit - p) < 5 * se, (hit, p, se)


# --------------------------------------------------------------------------- dtypes


def _params(name):
    return dict(noisebench.get_method(name).defaults)


def _ctx_for(name, k, seed=0):
    method = noisebench.get_method(name)
    t = (
        transition_matrix("symmetric", k, 0.2)
        if "transition" in method.requires
        else None
    )
    return ctx(k, t, seed=seed)


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_returns_float32_scalar(name, dtype):
    k = 10
    z, y = batch(k, seed=1)
    z = z.to(dtype)
    loss = noisebench.get_method(name)(z, y, _ctx_for(name, k), **_params(name))
    assert loss.dtype == torch.float32
    assert loss.shape == ()
    assert torch.isfinite(loss)
    # bf16 logits are upcast exactly (bf16 -> f32 is lossless), then computed in f32
    upcast = noisebench.get_method(name)(
        z.float(), y, _ctx_for(name, k), **_params(name)
    )
    assert loss.item() == upcast.item()


@pytest.mark.parametrize("name", ["forward", "backward"])
@pytest.mark.parametrize("t_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_transition_dtype_does_not_change_result_dtype(name, t_dtype, dtype):
    k = 10
    t = dirichlet_t(k, seed=5, diag=0.5)
    z, y = batch(k, seed=2)
    z = z.to(dtype)
    c = noisebench.Context(num_classes=k, transition=torch.as_tensor(t, dtype=t_dtype))
    loss = noisebench.get_method(name)(z, y, c)
    assert loss.dtype == torch.float32 and loss.shape == ()
    reference = np_forward if name == "forward" else np_backward
    close(loss, reference(z.float().numpy(), y.numpy(), t), rtol=1e-5, atol=1e-5)
