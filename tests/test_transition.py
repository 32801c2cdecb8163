"""T estimation (DESIGN.md §5) against Patrini et al.'s rule written out in numpy, and
the two-stage protocol end to end."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from noisebench import get_method
from noisebench.engine import TrainConfig, fit
from noisebench.noise import transition_matrix
from noisebench.testing import blobs_task
from noisebench.transition import estimate_transition, estimation_error

pytestmark = pytest.mark.usefixtures("single_thread")


def patrini_reference(eta: np.ndarray, filter_outlier: bool) -> np.ndarray:
    """The anchor rule of the paper's code, one member (N, K) at a time, in float64."""
    k = eta.shape[1]
    t = np.empty((k, k))
    for i in range(k):
        column = eta[:, i].copy()
        if filter_outlier:
            cut = np.percentile(column, 97, method="higher")
            column[column >= cut] = 0.0
        t[i] = eta[np.argmax(column)]
    return t / t.sum(axis=1, keepdims=True)


def noisy_posteriors(t: np.ndarray, n: int, anchors: bool, seed: int) -> np.ndarray:
    """η = p(clean | x) @ T for Dirichlet clean posteriors, plus one exact anchor per
    class (a one-hot clean posterior) when `anchors`."""
    rng = np.random.default_rng(seed)
    k = t.shape[0]
    clean = rng.dirichlet(np.full(k, 0.3), size=n)
    if anchors:
        clean[:k] = np.eye(k)
    return clean @ t


@pytest.mark.parametrize("filter_outlier", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_papers_rule(filter_outlier, seed):
    t = transition_matrix("pairflip", 6, 0.3)
    etas = np.stack([noisy_posteriors(t, 300, False, seed + 10 * s) for s in range(3)])
    got = estimate_transition(torch.as_tensor(etas), filter_outlier=filter_outlier)
    for s in range(3):
        ref = patrini_reference(etas[s], filter_outlier)
        np.testing.assert_allclose(got[s].numpy(), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
def test_exact_anchors_recover_t_exactly(kind):
    # For a T whose columns peak on the diagonal, η_i is largest at class i's anchor,
    # where η equals row i of T: the unfiltered rule recovers T to float precision.
    t = transition_matrix(kind, 5, 0.4)
    eta = noisy_posteriors(t, 500, True, seed=0)
    got = estimate_transition(torch.as_tensor(eta[None]), filter_outlier=False)[0]
    np.testing.assert_allclose(got.numpy(), t, atol=1e-6)


def test_a_column_tied_everywhere_picks_what_the_papers_rule_picks():
    # every value of column 0 equals its 97th percentile, so all are discarded
    rng = np.random.default_rng(0)
    eta = rng.dirichlet(np.ones(3), size=40)
    eta[:, 0] = 0.2
    eta[:, 1:] *= 0.8 / eta[:, 1:].sum(axis=1, keepdims=True)
    got = estimate_transition(torch.as_tensor(eta[None]))[0]
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(
        got.numpy(), patrini_reference(eta, True), rtol=1e-6, atol=1e-7
    )


def test_estimation_error_is_the_relative_l1_distance():
    # the identity against symmetric T(r): each row differs by r on the diagonal and
    # r in total off it, so ||I - T||_1 / ||T||_1 = 2rK / K = 2r
    for k, r in [(4, 0.2), (10, 0.6)]:
        t = torch.as_tensor(transition_matrix("symmetric", k, r))
        error = estimation_error(torch.eye(k)[None], t)
        torch.testing.assert_close(error, torch.tensor([2 * r]), rtol=1e-6, atol=1e-6)
    a, b = np.random.default_rng(0).random((2, 3, 5, 5))
    ref = np.abs(a - b).sum(axis=(1, 2)) / np.abs(b).sum(axis=(1, 2))
    np.testing.assert_allclose(
        estimation_error(torch.as_tensor(a), torch.as_tensor(b)).numpy(), ref
    )


def test_members_with_their_own_t_equal_their_one_member_runs():
    """Per-member T (S, K, K) goes to each member's loss, vmapped like the rest."""
    forward = get_method("forward")
    task = blobs_task(num_classes=3, noise=0.3, method=forward, seeds=(0, 1, 2), n=300)
    own = torch.stack(
        [torch.as_tensor(transition_matrix("symmetric", 3, r)) for r in (0.1, 0.3, 0.5)]
    ).float()
    task.transition = own
    config = TrainConfig(hidden=(16,), epochs=3, batch_size=32, lr=3e-3)
    together = fit(task, method=forward, params={}, config=config)
    for s in range(3):
        alone_task = task.members(slice(s, s + 1))
        alone_task.transition = own[s]  # a shared (K, K) T, the oracle path
        alone = fit(alone_task, method=forward, params={}, config=config)
        torch.testing.assert_close(
            together.test_logits[s], alone.test_logits[0], rtol=1e-4, atol=1e-5
        )
    # and the members really did train with different T
    assert not torch.allclose(together.test_logits[0], together.test_logits[2])


def test_two_stage_estimate_is_closer_to_t_than_the_identity():
    """On digits with 40% symmetric noise, the estimate beats the trivial guess T = I,
    whose error is 2r = 0.8, by a wide margin."""
    from noisebench.data import resolve_card
    from noisebench.experiment import RunSpec, prepare, run, train_config_for
    from noisebench.noise import NoiseSpec

    spec = RunSpec(
        method="forward",
        params={},
        dataset="digits",
        noise=NoiseSpec(kind="symmetric", rate=0.4),
        train=train_config_for(resolve_card("digits"), epochs=30),
        seeds=(0, 1),
        device="cpu",
        transition="estimated",
    )
    records = run(prepare(spec))
    errors = [r["transition_error"] for r in records]
    assert all(r["transition_source"] == "estimated" for r in records)
    assert all(0 <= e < 0.5 for e in errors), errors


def test_runs_that_differ_only_in_params_share_the_estimator(monkeypatch):
    """Tuning trials retrain the method, not the CE estimator; other seeds or another
    training setup do get their own estimate."""
    from noisebench import engine, stages
    from noisebench.data import resolve_card
    from noisebench.experiment import RunSpec, prepare, run, train_config_for
    from noisebench.noise import NoiseSpec

    monkeypatch.setattr(stages, "_ESTIMATES", {})  # what earlier tests left
    estimator_fits = []
    real_fit = engine.fit

    def counting_fit(task, *, method, **kwargs):
        if method.name == "ce":
            estimator_fits.append(tuple(task.seeds))
        return real_fit(task, method=method, **kwargs)

    monkeypatch.setattr(engine, "fit", counting_fit)
    train = train_config_for(resolve_card("digits"), epochs=2)
    spec = RunSpec(
        method="backward",
        params={},
        dataset="digits",
        noise=NoiseSpec(kind="symmetric", rate=0.3),
        train=train,
        seeds=(0, 1),
        device="cpu",
        transition="estimated",
    )
    first = run(prepare(spec))
    again = run(prepare(spec))
    assert len(estimator_fits) == 1
    # the estimator trains on seeds of its own, independent of the corrected model's
    assert len(set(estimator_fits[0])) == 2 and not set(estimator_fits[0]) & {0, 1}
    assert [r["transition_error"] for r in first] == [
        r["transition_error"] for r in again
    ]
    run(prepare(replace(spec, seeds=(0, 2))))
    run(prepare(replace(spec, train=replace(train, lr=2e-3))))
    assert len(estimator_fits) == 3
    first_seeds, other_seeds, other_setup = estimator_fits
    assert other_seeds[0] == first_seeds[0] and other_seeds[1] != first_seeds[1]
    assert other_setup == first_seeds
