"""The template projection (Müller, Kornblith and Hinton 2019, §2), against what a
hand computes: a toy network whose templates sit on the axes of R^3, the plane's
geometry in float64, and the spread ratio of a few points."""

from __future__ import annotations

import math

import pytest
import torch

from noisebench.models import build_model
from noisebench.projection import project, spread_ratio, template_basis

R2, R6 = math.sqrt(2), math.sqrt(6)


def toy_network():
    """An MLP 3 -> 3 -> 3 whose hidden layer is the identity (features = relu(x)) and
    whose templates are the axes e1, e2, e3; in float64."""
    model = build_model("mlp", input_shape=(3,), hidden=(3,), num_classes=3, seeds=[0])
    model.double()
    with torch.no_grad():
        model.weights[0][0] = torch.eye(3)
        model.biases[0].zero_()
        model.weights[1].zero_()
        model.weights[1][0, :, :3] = torch.eye(3)  # (D, K): column k is template k
    return model


def test_a_toy_networks_projection_is_known_by_hand():
    """Templates e1, e2, e3: u = (e2 - e1)/sqrt 2; v is e3 - e1 less its part along
    u, (-1/2, -1/2, 1), over its norm sqrt(3/2): (-1, -1, 2)/sqrt 6. So e1 lands at
    (-1/sqrt 2, -1/sqrt 6), e2 at (1/sqrt 2, -1/sqrt 6), e3 at (0, 2/sqrt 6), and
    (1, 1, 1), orthogonal to the plane's directions, at the origin."""
    model = toy_network()
    weights, _ = model.classifier()
    torch.testing.assert_close(weights[0], torch.eye(3, dtype=torch.float64))
    basis = template_basis(weights[0])
    expected_basis = torch.tensor(
        [[-1 / R2, 1 / R2, 0], [-1 / R6, -1 / R6, 2 / R6]], dtype=torch.float64
    )
    torch.testing.assert_close(basis, expected_basis, rtol=0, atol=1e-15)

    x = torch.tensor(
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [2, 0, 1], [-1, 0, 0]],
        dtype=torch.float64,
    )
    features = model.features(x[None])[0]
    torch.testing.assert_close(features, x.clamp(min=0))  # the hidden layer's ReLU
    expected = torch.tensor(
        [
            [-1 / R2, -1 / R6],
            [1 / R2, -1 / R6],
            [0, 2 / R6],
            [0, 0],
            [-2 / R2, 0],  # 2 e1 + e3: (-2/sqrt 2, -2/sqrt 6 + 2/sqrt 6)
            [0, 0],  # the ReLU zeroes -e1
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(
        project(features, basis=basis), expected, rtol=0, atol=1e-15
    )


def random_templates(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, d, dtype=torch.float64, generator=g)


@pytest.mark.parametrize("d", [3, 10, 512])
def test_the_basis_is_orthonormal_and_spans_the_templates_plane(d):
    w = random_templates(d, seed=d)
    basis = template_basis(w)
    assert basis.shape == (2, d) and basis.dtype == torch.float64
    torch.testing.assert_close(
        basis @ basis.T, torch.eye(2, dtype=torch.float64), rtol=0, atol=1e-12
    )
    for diff in (w[1] - w[0], w[2] - w[0], w[2] - w[1]):
        # a vector of the plane is its own projection back into R^d
        torch.testing.assert_close((diff @ basis.T) @ basis, diff, rtol=0, atol=1e-12)
    # u points from w_a to w_b; v is on w_c's side of that line
    assert torch.allclose(basis[0] * (w[1] - w[0]).norm(), w[1] - w[0], atol=1e-12)
    assert (w[2] - w[0]) @ basis[1] > 0


def test_the_basis_takes_the_templates_in_float32_too():
    w = random_templates(64, seed=1)
    torch.testing.assert_close(
        template_basis(w.float()), template_basis(w), rtol=0, atol=1e-5
    )


def test_projection_ignores_what_is_orthogonal_to_the_plane():
    w = random_templates(20, seed=2)
    basis = template_basis(w)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 20, dtype=torch.float64, generator=g)
    r = torch.randn(50, 20, dtype=torch.float64, generator=g) * 10
    normal = r - (r @ basis.T) @ basis  # r without its part in the plane
    assert (normal @ basis.T).abs().max() < 1e-12
    torch.testing.assert_close(
        project(x + normal, basis=basis), project(x, basis=basis), rtol=0, atol=1e-12
    )
    # and keeps leading axes: (S, N, D) -> (S, N, 2)
    assert project(x.expand(4, 50, 20), basis=basis).shape == (4, 50, 2)


def test_the_spread_ratio_of_a_hand_computed_example():
    """Class 0 at (0, 0) and (2, 0), mean (1, 0); class 1 at (1, 3) and (1, 5), mean
    (1, 4). Each point is 1 from its class mean: within 1. The overall mean is (1, 2),
    2 from each class mean: between 4. Ratio 1/4."""
    points = torch.tensor([[0.0, 0], [2, 0], [1, 3], [1, 5]])
    labels = torch.tensor([0, 0, 1, 1])
    assert spread_ratio(points, labels=labels) == pytest.approx(0.25, abs=1e-15)
    # three classes, labels neither sorted nor from 0: (0, 0) +- (1, 0) for label 7,
    # (6, 0) +- (0, 2) for label 2, (3, 3) alone for label 5. Within: (1 + 1 + 4 + 4
    # + 0) / 5 = 2. Overall mean (3, 0.6); class means' squared distances to it, once
    # per point: 9.36 (x2), 9.36 (x2), 5.76: 43.2 / 5 = 8.64. Ratio 2 / 8.64.
    points = torch.tensor([[-1.0, 0], [6, 2], [1, 0], [3, 3], [6, -2]])
    labels = torch.tensor([7, 2, 7, 5, 2])
    assert spread_ratio(points, labels=labels) == pytest.approx(2 / 8.64, rel=1e-12)


def test_the_spread_ratio_is_zero_for_points_at_their_class_means():
    means = torch.tensor([[0.0, 1.0], [3.0, -2.0], [5.0, 5.0]])
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0])
    assert spread_ratio(means[labels], labels=labels) == 0.0


def test_within_and_between_add_up_to_the_total_variance():
    """The weighting, pinned down where classes have different sizes: both spreads are
    means over points, so they split the mean squared distance to the overall mean."""
    g = torch.Generator().manual_seed(4)
    labels = torch.tensor([0] * 3 + [1] * 10 + [2] * 30)
    points = torch.randn(43, 2, dtype=torch.float64, generator=g) + labels[:, None] * 2
    ratio = spread_ratio(points, labels=labels)
    total = (points - points.mean(0)).square().sum(1).mean()
    means = torch.stack([points[labels == c].mean(0) for c in range(3)])
    within = (points - means[labels]).square().sum(1).mean()
    assert ratio == pytest.approx(float(within / (total - within)), rel=1e-12)


@pytest.mark.parametrize(
    "templates",
    [
        [[0.0, 0, 0], [1, 1, 0], [3, 3, 0]],  # on one line
        [[1.0, 2, 3], [1, 2, 3], [4, 0, 1]],  # two coincide
        [[1.0, 2, 3], [1, 2, 3], [1, 2, 3]],  # all three coincide
        [[0.1, 0.2, 0.3], [1.1, 1.7, 0.3], [3.1, 4.7, 0.3]],  # up to rounding
    ],
)
def test_collinear_templates_are_refused(templates):
    with pytest.raises(ValueError, match="collinear"):
        template_basis(torch.tensor(templates, dtype=torch.float64))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: template_basis(torch.eye(4)), r"templates of 3 classes, \(3, D\)"),
        (lambda: project(torch.ones(5, 4), basis=torch.eye(3)), "basis must be"),
        (lambda: project(torch.ones(5, 4), basis=torch.eye(2, 3)), "4 dimensions"),
        (
            lambda: spread_ratio(torch.ones(4, 2), labels=torch.zeros(3)),
            "points \\(N, 2\\) and labels \\(N,\\)",
        ),
        (
            lambda: spread_ratio(torch.rand(4, 2), labels=torch.zeros(4)),
            "at least 2 classes",
        ),
        (
            lambda: spread_ratio(
                torch.tensor([[0.0, 1], [0, -1], [1, 0], [-1, 0]]),
                labels=torch.tensor([0, 0, 1, 1]),
            ),
            "same mean",
        ),
    ],
)
def test_wrong_inputs_are_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()
