"""Metrics (DESIGN.md §4) against independent references: direct numpy loops and
formulas in float64, torch's cross-entropy, and sklearn's own implementations."""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import np_softmax
from sklearn.metrics import brier_score_loss, roc_auc_score

from noisebench import metrics

pytestmark = pytest.mark.usefixtures("single_thread")


# --------------------------------------------------------------------------- helpers


def batch(n, k, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g, dtype=torch.float64) * scale
    y = torch.randint(k, (n,), generator=g)
    return z, y


def np_logp(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def ece_loop(probs, labels, n_bins=15):
    """Guo et al. 2017, as in their reference code: equal-width bins (lo, hi] of the max
    probability; sum over bins of (|bin| / n) * |accuracy(bin) - mean confidence(bin)|."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    conf = probs.max(axis=1)
    pred = probs.argmax(axis=1)
    n = len(labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        members = [i for i in range(n) if lo < conf[i] <= hi]
        if not members:
            continue
        acc = sum(pred[i] == labels[i] for i in members) / len(members)
        avg_conf = sum(conf[i] for i in members) / len(members)
        total += len(members) / n * abs(acc - avg_conf)
    return total


def logits_for(probs):
    """Logits whose softmax is `probs` (rows of a probability table)."""
    return torch.log(torch.tensor(probs, dtype=torch.float64))


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("k", [2, 10])
def test_accuracy_against_numpy(k):
    z, y = batch(500, k, seed=k)
    expected = np.mean(z.numpy().argmax(axis=1) == y.numpy())
    assert metrics.accuracy(z, y) == pytest.approx(expected, abs=1e-7)


def test_accuracy_hand_computed():
    z = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    y = torch.tensor([0, 1, 1, 0])
    assert metrics.accuracy(z, y) == pytest.approx(0.5)


# --------------------------------------------------------------------------- ece


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [0.5, 2.0, 8.0])
def test_ece_against_loop(k, scale):
    z, y = batch(400, k, scale=scale, seed=10 * k + int(scale))
    # labels agree with the argmax 60% of the time (plus chance), so accuracy varies
    # across bins instead of being ~1/K everywhere
    g = torch.Generator().manual_seed(k)
    y = torch.where(torch.rand(len(y), generator=g) < 0.6, z.argmax(dim=1), y)
    expected = ece_loop(np_softmax(z.numpy()), y.numpy())
    assert metrics.ece(z, y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n_bins", [1, 5, 10, 20])
def test_ece_other_bin_counts(n_bins):
    z, y = batch(300, 5, scale=2.0, seed=n_bins)
    expected = ece_loop(np_softmax(z.numpy()), y.numpy(), n_bins=n_bins)
    assert metrics.ece(z, y, n_bins=n_bins) == pytest.approx(expected, abs=1e-12)


def test_ece_perfectly_calibrated_is_zero():
    # confidence 0.75 on class 0 for four samples, three of which are class 0:
    # one non-empty bin with accuracy 0.75 == mean confidence 0.75.
    z = logits_for([[0.75, 0.25]] * 4)
    y = torch.tensor([0, 0, 0, 1])
    assert metrics.ece(z, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_two_calibrated_bins_is_zero():
    # conf 0.7 (bin (10/15, 11/15]) right 7 of 10 times, conf 0.9 (bin (13/15, 14/15])
    # right 9 of 10 times: each bin is calibrated.
    z = logits_for([[0.7, 0.3]] * 10 + [[0.1, 0.9]] * 10)
    y = torch.tensor([0] * 7 + [1] * 3 + [1] * 9 + [0])
    assert metrics.ece(z, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_bins_are_open_on_the_left():
    # Guo's bins are (lo, hi]: a confidence of exactly 0.5 belongs to (0.4, 0.5] with
    # 10 bins, not to (0.5, 0.6]. A: conf exactly 0.5, both right (gap sum +1.0);
    # B: conf 0.55, both wrong (gap sum -1.1). Separate bins: (1.0 + 1.1) / 4.
    # Were 0.5 put in [0.5, 0.6) with B, the gaps would cancel to |1.0 - 1.1| / 4.
    z = logits_for([[0.5, 0.25, 0.25]] * 2 + [[0.55, 0.45, 0.0]] * 2)
    y = torch.tensor([0, 0, 1, 1])
    probs = torch.softmax(z, dim=-1)
    assert probs[:2, 0].tolist() == [0.5, 0.5]  # the boundary is hit exactly
    assert metrics.ece(z, y, n_bins=10) == pytest.approx(0.525, abs=1e-12)
    assert ece_loop(probs.numpy(), y.numpy(), n_bins=10) == pytest.approx(0.525)


def test_ece_confident_and_wrong_is_one():
    z = torch.tensor([[1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0]])
    y = torch.tensor([2, 0])
    assert metrics.ece(z, y) == pytest.approx(1.0, abs=1e-12)


def test_ece_hand_computed_mixture():
    # bin of conf 0.9: 2 samples, 1 right -> |0.5 - 0.9| * 2/4
    # bin of conf 0.6: 2 samples, 2 right -> |1.0 - 0.6| * 2/4
    z = logits_for([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    y = torch.tensor([0, 1, 1, 1])
    assert metrics.ece(z, y) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4, abs=1e-12)


def test_ece_bins_do_not_cancel():
    # Two bins miscalibrated in opposite directions: Guo's ECE sums |gap| per bin,
    # so they must not cancel (a single global |acc - conf| would give 0 here).
    z = logits_for([[0.9, 0.1]] * 2 + [[0.6, 0.4]] * 2)
    y = torch.tensor([0, 1, 0, 0])  # conf 0.9 bin: acc 0.5; conf 0.6 bin: acc 1.0
    # gaps: 0.5-0.9 = -0.4, 1.0-0.6 = +0.4; weights 1/2 each
    assert metrics.ece(z, y) == pytest.approx(0.4, abs=1e-12)


# --------------------------------------------------------------------------- nll


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_nll_against_torch_and_numpy(k, scale):
    z, y = batch(300, k, scale=scale, seed=k)
    ref_numpy = -np_logp(z.numpy())[np.arange(len(y)), y.numpy()].mean()
    ref_torch = F.cross_entropy(z.double(), y).item()
    assert metrics.nll(z, y) == pytest.approx(ref_numpy, rel=1e-12, abs=1e-12)
    assert metrics.nll(z, y) == pytest.approx(ref_torch, rel=1e-12, abs=1e-12)


def test_nll_float32_input_is_scored_in_float64():
    z, y = batch(200, 10, scale=30.0, seed=5)
    z32 = z.float()
    ref = -np_logp(z32.double().numpy())[np.arange(len(y)), y.numpy()].mean()
    assert metrics.nll(z32, y) == pytest.approx(ref, rel=1e-12)


# --------------------------------------------------------------------------- brier


@pytest.mark.parametrize("k", [2, 10, 100])
def test_brier_against_numpy(k):
    z, y = batch(300, k, scale=2.0, seed=k)
    p = np_softmax(z.numpy())
    onehot = np.eye(k)[y.numpy()]
    expected = np.mean(np.sum((p - onehot) ** 2, axis=1))
    assert metrics.brier(z, y) == pytest.approx(expected, rel=1e-12)


def test_brier_binary_is_twice_sklearn():
    # sklearn's binary Brier scores the positive class only: mean (p_1 - y)^2. The
    # multiclass sum over both classes is (p_0 - y_0)^2 + (p_1 - y_1)^2 = 2 (p_1 - y)^2.
    z, y = batch(400, 2, scale=2.0, seed=1)
    p1 = np_softmax(z.numpy())[:, 1]
    ref = brier_score_loss(y.numpy(), p1)
    assert metrics.brier(z, y) == pytest.approx(2 * ref, rel=1e-12)


def test_brier_multiclass_against_sklearn():
    if "scale_by_half" not in inspect.signature(brier_score_loss).parameters:
        pytest.skip("this sklearn has no multiclass Brier score")
    k = 7
    z, y = batch(300, k, scale=2.0, seed=3)
    ref = brier_score_loss(
        y.numpy(), np_softmax(z.numpy()), labels=np.arange(k), scale_by_half=False
    )
    assert metrics.brier(z, y) == pytest.approx(ref, rel=1e-12)


def test_brier_extremes():
    z = torch.tensor([[1000.0, 0.0, 0.0], [0.0, 0.0, 1000.0]])
    assert metrics.brier(z, torch.tensor([0, 2])) == pytest.approx(0.0, abs=1e-12)
    assert metrics.brier(z, torch.tensor([1, 0])) == pytest.approx(2.0, abs=1e-12)


# --------------------------------------------------------------------------- auroc


def test_auroc_continuous_scores():
    rng = np.random.default_rng(0)
    pos = rng.random(500) < 0.3
    scores = rng.normal(size=500) + pos
    assert metrics.auroc(scores, pos) == pytest.approx(
        roc_auc_score(pos, scores), abs=1e-12
    )


@pytest.mark.parametrize("n_levels", [2, 3, 10])
@pytest.mark.parametrize("pos_rate", [0.02, 0.2, 0.5, 0.9])
def test_auroc_ties_and_imbalance(n_levels, pos_rate):
    rng = np.random.default_rng(n_levels * 100 + int(pos_rate * 100))
    n = 1000
    pos = rng.random(n) < pos_rate
    pos[0], pos[1] = True, False  # both classes present
    scores = rng.integers(0, n_levels, size=n) + pos * rng.integers(0, 2, size=n)
    assert metrics.auroc(scores, pos) == pytest.approx(
        roc_auc_score(pos, scores), abs=1e-12
    )


def test_auroc_hand_computed():
    # pairs (pos, neg): (3,1) win, (3,2) win, (2,1) win, (2,2) tie -> 3.5 / 4
    assert metrics.auroc([3, 2, 1, 2], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert metrics.auroc([1, 1, 1, 1], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert metrics.auroc([0, 1], [0, 1]) == pytest.approx(1.0)
    assert metrics.auroc([0, 1], [1, 0]) == pytest.approx(0.0)


@pytest.mark.parametrize("positive", [[0, 0, 0], [1, 1, 1], []])
def test_auroc_nan_when_a_class_is_empty(positive):
    scores = np.arange(len(positive), dtype=float)
    assert math.isnan(metrics.auroc(scores, np.array(positive, dtype=bool)))


def test_auroc_accepts_torch_tensors():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    pos = torch.tensor([False, False, True, True])
    assert metrics.auroc(scores, pos) == pytest.approx(
        roc_auc_score(pos.numpy(), scores.numpy())
    )


# --------------------------------------------------------------------------- memorization


def test_memorization_hand_built():
    clean = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    noisy = torch.tensor([1, 1, 0, 3, 0, 2, 1, 1])  # corrupted: idx 0, 2, 4, 5, 7
    pred = torch.tensor([1, 9, 2, 9, 0, 1, 9, 1])
    # idx 0: pred 1 == noisy; idx 2: pred 2 == clean; idx 4: pred 0 == noisy;
    # idx 5: pred 1, neither; idx 7: pred 1 == noisy  -> noisy 3/5, clean 1/5
    as_noisy, as_clean = metrics.memorization(pred, noisy, clean)
    assert as_noisy == pytest.approx(3 / 5)
    assert as_clean == pytest.approx(1 / 5)


def test_memorization_ignores_clean_samples():
    clean = torch.tensor([0, 1, 2, 3])
    noisy = torch.tensor([1, 1, 2, 3])  # only sample 0 corrupted
    pred = torch.tensor([0, 0, 0, 0])  # wrong on every clean sample
    assert metrics.memorization(pred, noisy, clean) == pytest.approx((0.0, 1.0))


def test_memorization_against_numpy():
    rng = np.random.default_rng(3)
    k, n = 10, 2000
    clean = rng.integers(0, k, n)
    noisy = np.where(rng.random(n) < 0.4, rng.integers(0, k, n), clean)
    pred = np.where(rng.random(n) < 0.5, noisy, rng.integers(0, k, n))
    bad = noisy != clean
    expected = ((pred[bad] == noisy[bad]).mean(), (pred[bad] == clean[bad]).mean())
    got = metrics.memorization(
        torch.from_numpy(pred), torch.from_numpy(noisy), torch.from_numpy(clean)
    )
    assert got == pytest.approx(expected, abs=1e-7)


def test_memorization_nan_when_nothing_corrupted():
    labels = torch.tensor([0, 1, 2])
    as_noisy, as_clean = metrics.memorization(torch.tensor([0, 0, 0]), labels, labels)
    assert math.isnan(as_noisy) and math.isnan(as_clean)


# --------------------------------------------------------------------------- flip detection


@pytest.mark.parametrize("k", [2, 10])
def test_flip_detection_auroc_against_sklearn(k):
    g = torch.Generator().manual_seed(k)
    n = 600
    clean = torch.randint(k, (n,), generator=g)
    flipped = torch.rand(n, generator=g) < 0.3
    noisy = torch.where(flipped, (clean + 1) % k, clean)
    # a model that learned the clean labels a bit: corrupted samples have higher loss
    z = torch.randn(n, k, generator=g, dtype=torch.float64)
    z[torch.arange(n), clean] += 1.5
    per_sample = -np_logp(z.numpy())[np.arange(n), noisy.numpy()]
    expected = roc_auc_score((noisy != clean).numpy(), per_sample)
    got = metrics.flip_detection_auroc(z, noisy, clean)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got > 0.5  # the direction: high loss means corrupted


def test_flip_detection_auroc_float32_logits():
    g = torch.Generator().manual_seed(1)
    n, k = 300, 5
    clean = torch.randint(k, (n,), generator=g)
    noisy = torch.where(torch.rand(n, generator=g) < 0.2, (clean + 2) % k, clean)
    z = torch.randn(n, k, generator=g)
    per_sample = -np_logp(z.double().numpy())[np.arange(n), noisy.numpy()]
    expected = roc_auc_score((noisy != clean).numpy(), per_sample)
    assert metrics.flip_detection_auroc(z, noisy, clean) == pytest.approx(
        expected, abs=1e-12
    )


def test_flip_detection_auroc_nan_when_nothing_corrupted():
    z, y = batch(20, 3, seed=0)
    assert math.isnan(metrics.flip_detection_auroc(z, y, y))


def test_average_ranks_match_scipy():
    from scipy.stats import rankdata

    from noisebench.ranks import average_ranks

    rng = np.random.default_rng(0)
    for values in (
        rng.normal(size=50),
        rng.integers(0, 5, size=200).astype(float),
        np.array([1.0]),
    ):
        np.testing.assert_allclose(average_ranks(values), rankdata(values))


# --------------------------------------------------------------------------- reliability
def test_reliability_bins_against_a_per_sample_loop():
    g = torch.Generator().manual_seed(5)
    z, y = torch.randn(500, 4, generator=g) * 2, torch.randint(4, (500,), generator=g)
    count, correct, confidence = metrics.reliability(z, y, n_bins=10)
    probs = torch.softmax(z.double(), -1)
    want_count, want_correct, want_conf = [0] * 10, [0] * 10, [0.0] * 10
    for p, label in zip(probs, y, strict=True):
        conf = float(p.max())
        b = min(max(math.ceil(conf * 10) - 1, 0), 9)  # (b/10, (b+1)/10]
        want_count[b] += 1
        want_correct[b] += int(int(p.argmax()) == int(label))
        want_conf[b] += conf
    assert count == want_count and correct == want_correct
    assert confidence == pytest.approx(want_conf, abs=1e-9)
    assert metrics.ece_of_bins(count, correct, confidence) == pytest.approx(
        metrics.ece(z, y, n_bins=10), abs=1e-12
    )


def test_reliability_bins_of_seeds_add_up_to_the_pooled_diagram():
    g = torch.Generator().manual_seed(6)
    z, y = torch.randn(300, 5, generator=g), torch.randint(5, (300,), generator=g)
    parts = [metrics.reliability(z[i::3], y[i::3]) for i in range(3)]
    pooled = metrics.reliability(z, y)
    for field in range(3):
        summed = [sum(p[field][b] for p in parts) for b in range(15)]
        assert summed == pytest.approx(pooled[field], abs=1e-9)


def test_memorization_curve_matches_memorization_per_member_and_epoch():
    g = torch.Generator().manual_seed(7)
    clean = torch.randint(4, (2, 50), generator=g)
    noisy = torch.where(
        torch.rand(2, 50, generator=g) < 0.5,
        torch.randint(4, (2, 50), generator=g),
        clean,
    )
    pred = torch.randint(4, (2, 3, 50), generator=g)
    fit_noisy, fit_clean = metrics.memorization_curve(pred, noisy, clean)
    for s in range(2):
        for e in range(3):
            want = metrics.memorization(pred[s, e], noisy[s], clean[s])
            assert (float(fit_noisy[s, e]), float(fit_clean[s, e])) == pytest.approx(
                want
            )
    labels = torch.zeros(1, 4, dtype=torch.long)
    assert metrics.memorization_curve(labels, labels, labels)[0].isnan().all()


# --------------------------------------------------------------------------- temperature scaling
def test_fit_temperature_recovers_the_temperature_labels_were_drawn_at():
    """Labels drawn from softmax(z / 2): the fitted T is the maximum-likelihood one, 2
    within its sampling error (n = 20,000: a few parts in a thousand; 3% allowed)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20_000, 5, generator=g, dtype=torch.float64) * 4
    y = torch.multinomial(torch.softmax(z / 2.0, -1), 1, generator=g).squeeze(-1)
    t = metrics.fit_temperature(z, y)
    assert t == pytest.approx(2.0, rel=0.03)
    best = metrics.nll(z / t, y)
    for other in (1.0, 0.9 * t, 1.1 * t):
        assert best <= metrics.nll(z / other, y) + 1e-12


def test_fit_temperature_scales_with_the_logits():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2_000, 4, generator=g, dtype=torch.float64) * 3
    y = torch.randint(4, (2_000,), generator=g)
    y = torch.where(torch.rand(2_000, generator=g) < 0.6, z.argmax(-1), y)
    t = metrics.fit_temperature(z, y)
    assert metrics.fit_temperature(3 * z, y) == pytest.approx(3 * t, rel=1e-4)
