"""Penultimate features of every registered model (timm's pattern: a new family is
tested without a test of its own): their shape, the last layer they feed, and their
independence of the ensemble mates."""

from __future__ import annotations

import pytest
import torch

from noisebench.models import StackedModel, build_model, get_model, list_models

# one small sample of each kind a model takes; images with odd sides and at least 2x2
# in a ResNet-34's last stage (batch norm over the few values of a 1x1 stage magnifies
# the grouped convolutions' rounding, see test_models.py)
SHAPES = {"vector": (12,), "image": (3, 12, 11), "signal": (2, 17)}
K, B = 5, 6


def tiny_hidden(name: str) -> list[tuple[int, ...]]:
    """Tiny widths: a ResNet's stage widths (as many as its default, never
    decreasing); for the others one hidden layer and none (the features are then the
    flattened trunk, or for the MLP the input itself)."""
    default = get_model(name).default_hidden
    if default is not None:
        return [tuple(min(4 << i, 16) for i in range(len(default)))]
    return [(8,), ()]


def cases():
    return [
        pytest.param(name, hidden, id=f"{name}-{','.join(map(str, hidden)) or 'none'}")
        for name in list_models()
        for hidden in tiny_hidden(name)
    ]


def build(name, hidden, seeds) -> StackedModel:
    shape = SHAPES[get_model(name).takes]
    return build_model(
        name, input_shape=shape, hidden=hidden, num_classes=K, seeds=seeds
    )


def width(model: StackedModel) -> int:
    weights, _ = model.classifier()
    return weights.shape[-1]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize(("name", "hidden"), cases())
def test_features_feed_the_last_layer_into_the_logits(name, hidden, mode):
    """features(x) @ W_s^T + b_s is forward(x), per member, for per-member batches and
    for one batch shared by every member."""
    model = build(name, hidden, seeds=[0, 1, 2])
    assert isinstance(model, StackedModel)
    model.train(mode == "train")
    weights, biases = model.classifier()
    d = width(model)
    assert weights.shape == (3, K, d) and biases.shape == (3, K)
    x = torch.randn(3, B, *SHAPES[get_model(name).takes])
    for batch in (x, x[0]):
        h = model.features(batch)
        assert h.shape == (3, B, d) and torch.isfinite(h).all()
        # taken after the last ReLU (or the pooling of one), but where no layer acts
        if (name, hidden) != ("mlp", ()):
            assert (h >= 0).all()
        logits = model(batch)
        for s in range(3):
            torch.testing.assert_close(
                h[s] @ weights[s].T + biases[s], logits[s], rtol=1e-5, atol=1e-6
            )


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize(("name", "hidden"), cases())
def test_a_members_features_are_its_seed_alone(name, hidden, mode):
    together = build(name, hidden, seeds=[4, 7, 9])
    alone = build(name, hidden, seeds=[7])
    together.train(mode == "train"), alone.train(mode == "train")
    x = torch.randn(3, B, *SHAPES[get_model(name).takes])
    torch.testing.assert_close(
        together.features(x)[1], alone.features(x[1:2])[0], rtol=1e-5, atol=1e-5
    )
    for ours, theirs in zip(together.classifier(), alone.classifier(), strict=True):
        assert torch.equal(ours[1], theirs[0])


@pytest.mark.parametrize(("name", "hidden"), cases())
def test_the_classifier_is_a_view_of_the_last_layers_parameters(name, hidden):
    """Not a copy: a loss on the templates trains the last layer, and only the
    classes' own entries (not the MLP's padding columns)."""
    model = build(name, hidden, seeds=[0, 1])
    weights, biases = model.classifier()
    (weights.sum() + biases.sum()).backward()
    for view in (weights, biases):
        ptr = view.untyped_storage().data_ptr()
        (owner,) = [
            p for p in model.parameters() if p.untyped_storage().data_ptr() == ptr
        ]
        assert owner.grad.sum() == view.numel() == owner.grad.count_nonzero()
