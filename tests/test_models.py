"""Every registered model, tested without a test of its own (timm's pattern): shapes,
gradients, independence of members, and agreement with torch's own layers."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisebench.config import TrainConfig
from noisebench.models import build_model, get_model, list_models

SHAPES = {
    "mlp": [(12,)],
    "cnn": [(1, 8, 8), (3, 9, 7), (2, 1, 1)],
    "cnn1d": [(1, 40), (2, 17), (1, 1)],
}
HIDDEN = (16, 8)


def cases():
    return [(name, shape) for name in list_models() for shape in SHAPES[name]]


def test_every_registered_model_has_test_shapes():
    assert set(list_models()) == set(SHAPES)


@pytest.mark.parametrize(("name", "shape"), cases())
def test_forward_shapes_gradients_and_finiteness(name, shape):
    model = build_model(
        name, input_shape=shape, hidden=HIDDEN, num_classes=5, seeds=[0, 1, 2]
    )
    x = torch.randn(3, 4, *shape)
    logits = model(x)
    assert logits.shape == (3, 4, 5) and torch.isfinite(logits).all()
    assert model(x[0]).shape == (3, 4, 5)  # one batch shared by every member
    logits.square().sum().backward()
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
        # every parameter and buffer carries the member axis first
        assert p.shape[0] == 3
    assert all(b.shape[0] == 3 for b in model.buffers())


@pytest.mark.parametrize(("name", "shape"), cases())
def test_a_member_is_its_seed_alone(name, shape):
    """Same initial weights, same logits in training mode (batch statistics per
    member) and in evaluation mode, whatever its ensemble mates."""
    together = build_model(
        name, input_shape=shape, hidden=HIDDEN, num_classes=5, seeds=[4, 7, 9]
    )
    alone = build_model(
        name, input_shape=shape, hidden=HIDDEN, num_classes=5, seeds=[7]
    )
    for p, q in zip(together.parameters(), alone.parameters(), strict=True):
        assert torch.equal(p[1], q[0])
    x = torch.randn(3, 6, *shape)
    torch.testing.assert_close(together(x)[1], alone(x[1:2])[0], rtol=1e-5, atol=1e-5)
    together.eval(), alone.eval()
    torch.testing.assert_close(together(x)[1], alone(x[1:2])[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "shape"), cases())
def test_sizes_count_the_parameters_of_torchs_own_layers(name, shape):
    """The memory check's parameter count, against the same network in torch's layers."""
    params, units = get_model(name).sizes(shape, HIDDEN, 5)
    reference = _reference(name, shape, HIDDEN, 5)
    assert params == sum(p.numel() for p in reference.parameters())
    assert units > 0


def _reference(name, shape, hidden, k) -> nn.Module:
    layers: list[nn.Module] = []
    if name == "cnn":
        c, h, w = shape
        for out in (32, 64):
            layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out)]
            layers += [nn.ReLU()]
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        layers.append(nn.Flatten())
        widths = [c * h * w, *hidden, k]
    elif name == "cnn1d":
        c, length = shape
        for out in (32, 32, 32):
            layers += [nn.Conv1d(c, out, 5, stride=2, padding=2), nn.ReLU()]
            c, length = out, (length + 4 - 5) // 2 + 1
        layers.append(nn.Flatten())
        widths = [c * length, *hidden, k]
    else:
        widths = [shape[0], *hidden, k]
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def load_head(reference: nn.Module, head, s: int) -> None:
    """Member s's dense layers into the reference's nn.Linear layers."""
    linears = [m for m in reference if isinstance(m, nn.Linear)]
    for linear, w, b in zip(linears, head.weights, head.biases, strict=True):
        linear.weight.copy_(w[s].T)
        linear.bias.copy_(b[s, 0])


def test_a_cnn_member_computes_what_torchs_layers_compute():
    """Member s of the stacked CNN, loaded into nn.Conv2d / nn.BatchNorm2d / nn.Linear,
    gives the same logits, in training mode (batch statistics) and after it."""
    shape, s = (3, 9, 7), 1
    model = build_model(
        "cnn", input_shape=shape, hidden=HIDDEN, num_classes=5, seeds=[3, 5]
    )
    reference = _reference("cnn", shape, HIDDEN, 5)
    convs = [m for m in reference if isinstance(m, nn.Conv2d)]
    norms = [m for m in reference if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for i, (conv, norm) in enumerate(zip(convs, norms, strict=True)):
            conv.weight.copy_(model.convs[i][s])
            norm.weight.copy_(model.norm_weights[i][s])
            norm.bias.copy_(model.norm_biases[i][s])
        load_head(reference, model.head, s)
    x = torch.randn(2, 16, *shape)
    torch.testing.assert_close(model(x)[s], reference(x[s]), rtol=1e-5, atol=1e-5)
    for i, norm in enumerate(norms):  # running statistics moved per member
        torch.testing.assert_close(
            getattr(model, f"running_mean{i}")[s], norm.running_mean
        )
        torch.testing.assert_close(
            getattr(model, f"running_var{i}")[s], norm.running_var
        )
    model.eval(), reference.eval()
    torch.testing.assert_close(model(x)[s], reference(x[s]), rtol=1e-5, atol=1e-5)
    assert F.softmax(model(x)[s], -1).sum(-1).allclose(torch.ones(16))


def test_a_trained_member_equals_its_seed_trained_alone():
    """Through the engine: batch norm, the optimizer and the best-epoch snapshot of
    its buffers keep members apart."""
    from noisebench import get_method
    from noisebench.engine import Task, fit

    g = torch.Generator().manual_seed(0)
    x = torch.randn(240, 1, 6, 6, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long() + 2 * (x[:, 0, 0, 0] > 0).long()
    idx = torch.stack([torch.randperm(240, generator=g) for _ in range(3)])
    task = Task(
        x=x,
        y_noisy=y.expand(3, -1).clone(),
        train_idx=idx[:, :200],
        val_idx=idx[:, 200:],
        x_test=x[:50],
        y_test=y[:50],
        num_classes=4,
        seeds=[11, 12, 13],
    )
    config = TrainConfig(model="cnn", hidden=(16,), epochs=3, batch_size=32, lr=1e-2)
    ce = get_method("ce")
    together = fit(task, method=ce, params={}, config=config)
    alone = fit(task.members(slice(1, 2)), method=ce, params={}, config=config)
    torch.testing.assert_close(together.val_acc[1], alone.val_acc[0])
    torch.testing.assert_close(
        together.test_logits[1], alone.test_logits[0], rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(
        together.best_pool_logits[1], alone.best_pool_logits[0], rtol=1e-4, atol=1e-4
    )


def test_the_engine_stacks_convolutions_on_a_cpu_only_while_it_pays():
    from noisebench.engine import Task, stack_limit

    def task(shape):
        return Task(
            x=torch.zeros(4, *shape), y_noisy=torch.zeros(20, 4, dtype=torch.long),
            train_idx=torch.zeros(20, 2, dtype=torch.long),
            val_idx=torch.zeros(20, 2, dtype=torch.long), x_test=None, y_test=None,
            num_classes=10, seeds=list(range(20)),
        )  # fmt: skip

    mlp = TrainConfig(model="mlp", hidden=(256, 256))
    cnn = TrainConfig(model="cnn", hidden=(128,))
    assert stack_limit(task((64,)), mlp) >= 20  # stacked MLPs: 5x faster
    assert stack_limit(task((1, 28, 28)), cnn) == 1  # measured 1.4x slower stacked
    assert 2 <= stack_limit(task((1, 8, 8)), cnn) < 20


def test_the_best_epoch_snapshot_includes_batch_norm_statistics():
    """The model kept for the best noisy-validation epoch e is the model a run stopped
    after epoch e ends with: weights and batch norm's running statistics alike."""
    from noisebench import get_method
    from noisebench.engine import Task, fit

    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 1, 6, 6, generator=g)
    y = (x[:, 0, :3].mean((1, 2)) > 0).long()
    noisy = torch.where(torch.rand(300, generator=g) < 0.3, 1 - y, y)
    idx = torch.randperm(300, generator=g)[None]
    task = Task(
        x=x, y_noisy=noisy[None], train_idx=idx[:, :240], val_idx=idx[:, 240:],
        x_test=x[:60], y_test=y[:60], num_classes=2, seeds=[5],
    )  # fmt: skip
    config = TrainConfig(model="cnn", hidden=(8,), epochs=8, batch_size=32, lr=3e-2)
    ce = get_method("ce")
    full = fit(task, method=ce, params={}, config=config)
    best = int(full.best_epoch[0])
    assert (
        best < config.epochs - 1
    )  # a best epoch before the last, or this shows nothing
    stopped = fit(
        task,
        method=ce,
        params={},
        config=TrainConfig(**{**config.__dict__, "epochs": best + 1}),
    )
    torch.testing.assert_close(
        full.best_pool_logits[0], stopped.pool_logits[0], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("shared", [True, False])
def test_evaluation_in_pieces_equals_one_pass(monkeypatch, shared):
    """Past EVAL_ACTIVATIONS, the engine evaluates in pieces of samples (a 100-member
    CNN on 2,000 28x28 images overflowed a convolution's indexing on an H200)."""
    from noisebench import engine

    model = build_model(
        "cnn", input_shape=(1, 6, 6), hidden=(8,), num_classes=3, seeds=[0, 1]
    )
    model.eval()
    x = torch.randn(50, 1, 6, 6) if shared else torch.randn(2, 50, 1, 6, 6)
    _, units = get_model("cnn").sizes((1, 6, 6), (8,), 3)
    whole = engine.predict(model, x, members=2, units=units, shared=shared)
    monkeypatch.setattr(engine, "EVAL_ACTIVATIONS", 2 * units * 7)  # pieces of 7
    pieces = engine.predict(model, x, members=2, units=units, shared=shared)
    assert whole.shape == pieces.shape == (2, 50, 3)
    torch.testing.assert_close(whole, pieces, rtol=1e-5, atol=1e-5)


def test_a_cnn1d_member_computes_what_torchs_layers_compute():
    shape, s = (2, 17), 2
    model = build_model(
        "cnn1d", input_shape=shape, hidden=HIDDEN, num_classes=5, seeds=[1, 2, 3]
    )
    reference = _reference("cnn1d", shape, HIDDEN, 5)
    convs = [m for m in reference if isinstance(m, nn.Conv1d)]
    with torch.no_grad():
        for i, conv in enumerate(convs):
            conv.weight.copy_(model.convs[i][s])
            conv.bias.copy_(model.conv_biases[i][s])
        load_head(reference, model.head, s)
    x = torch.randn(3, 8, *shape)
    torch.testing.assert_close(model(x)[s], reference(x[s]), rtol=1e-5, atol=1e-5)
