"""Every registered model, tested without a test of its own (timm's pattern): shapes,
gradients, independence of members, and agreement with torch's own layers."""

from __future__ import annotations

import itertools
from dataclasses import replace

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
    # odd sides: a stride-2 convolution and the shortcut's subsampling agree on ceil(n/2).
    # Not resnet34 on 5x5 or 8x8: after 33 layers, batch norm over the few values of a
    # 1x1 last stage blows the grouped and the plain convolutions' different rounding up
    # to 1e-4 in logits (measured), past the 1e-5 the test allows
    "resnet32": [(3, 8, 8), (2, 9, 7)],
    "resnet34": [(3, 12, 12), (2, 13, 11)],
    "preact_resnet18": [(3, 32, 32), (2, 7, 9)],
}
HIDDEN = (16, 8)
# a ResNet's hidden are its stage widths: tiny ones keep the tests fast; a repeated width
# at a stride-2 stage (4, 4) still needs a projection
STAGE_WIDTHS = {
    "resnet32": (4, 8, 16),
    "resnet34": (4, 4, 8, 8),
    "preact_resnet18": (4, 4, 8, 8),
}
# blocks per stage, from the papers, for the references built here
DEPTHS = {
    "resnet32": (5, 5, 5),
    "resnet34": (3, 4, 6, 3),
    "preact_resnet18": (2, 2, 2, 2),
}
RESNETS = tuple(STAGE_WIDTHS)


def hidden_of(name: str) -> tuple[int, ...]:
    return STAGE_WIDTHS.get(name, HIDDEN)


def cases():
    return [(name, shape) for name in list_models() for shape in SHAPES[name]]


def test_every_registered_model_has_test_shapes():
    assert set(list_models()) == set(SHAPES)


@pytest.mark.parametrize(("name", "shape"), cases())
def test_forward_shapes_gradients_and_finiteness(name, shape):
    model = build_model(
        name, input_shape=shape, hidden=hidden_of(name), num_classes=5, seeds=[0, 1, 2]
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
    hidden = hidden_of(name)
    together = build_model(
        name, input_shape=shape, hidden=hidden, num_classes=5, seeds=[4, 7, 9]
    )
    alone = build_model(
        name, input_shape=shape, hidden=hidden, num_classes=5, seeds=[7]
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
    hidden = hidden_of(name)
    params, units = get_model(name).sizes(shape, hidden, 5)
    reference = _reference(name, shape, hidden, 5)
    assert params == sum(p.numel() for p in reference.parameters())
    assert units > 0


@pytest.mark.parametrize(("name", "shape"), cases())
def test_sizes_count_the_parameters_of_the_stacked_model(name, shape):
    """What the memory check counts is what gets built: a member's share, exactly."""
    hidden = hidden_of(name)
    model = build_model(
        name, input_shape=shape, hidden=hidden, num_classes=5, seeds=[0, 1]
    )
    params, _ = get_model(name).sizes(shape, hidden, 5)
    # the MLP pads its classifier to 16 columns that never train (see mlp.py)
    padded = (hidden[-1] + 1) * (16 - 5) if name == "mlp" else 0
    assert params == sum(p.numel() for p in model.parameters()) // 2 - padded


def _reference(name, shape, hidden, k) -> nn.Module:
    if name in RESNETS:
        return ReferenceResNet(name, shape[0], hidden, k)
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


@pytest.mark.parametrize(
    ("model", "hidden"),
    [("cnn", (16,)), ("resnet32", (4, 8, 16)), ("preact_resnet18", (4, 4, 8, 8))],
)
def test_a_trained_member_equals_its_seed_trained_alone(model, hidden):
    """Through the engine: batch norm, the optimizer and the best-epoch snapshot of
    its buffers keep members apart. Bitwise: changing the neighbours' labels leaves a
    member's logits unchanged over 3 epochs. Alone: the same within float rounding
    after one epoch, since a convolution of 3 groups and one of 1 round differently
    and training amplifies it (measured on one thread: within 2e-6 after epoch 1 for
    all three; after epoch 3 PreAct ResNet-18, whose batch norm sees 1x1 maps of an
    8-sample last batch here, is 1.8e-3 apart; at lr 1e-2 ResNet-32's logits reach ~60
    in one epoch and a 2e-4 difference grows to 0.2)."""
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
    config = TrainConfig(model=model, hidden=hidden, epochs=3, batch_size=32, lr=1e-3)
    ce = get_method("ce")
    together = fit(task, method=ce, params={}, config=config, best_pool=True)
    relabeled = replace(task, y_noisy=task.y_noisy.clone())
    relabeled.y_noisy[0] = (relabeled.y_noisy[0] + 1) % 4
    relabeled.y_noisy[2] = torch.randint(4, (240,), generator=g)
    neighbours = fit(relabeled, method=ce, params={}, config=config, best_pool=True)
    assert torch.equal(together.test_logits[1], neighbours.test_logits[1])
    assert torch.equal(together.best_pool_logits[1], neighbours.best_pool_logits[1])
    assert not torch.equal(together.test_logits[0], neighbours.test_logits[0])
    config = replace(config, epochs=1)
    together = fit(task, method=ce, params={}, config=config, best_pool=True)
    alone = fit(
        task.members(slice(1, 2)), method=ce, params={}, config=config, best_pool=True
    )
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
    full = fit(task, method=ce, params={}, config=config, best_pool=True)
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


class Shortcut(nn.Module):
    """Option A as the reference CIFAR code writes it (akamaster/pytorch_resnet_cifar10):
    subsample by 2, pad planes // 4 zero channels on each side."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.planes = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.planes // 4
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))


class ReferenceBlock(nn.Module):
    """A basic or pre-activation block of torch's own layers, written from the papers;
    modules registered in the order the stacked blocks register theirs."""

    def __init__(self, c_in: int, c_out: int, stride: int, name: str) -> None:
        super().__init__()
        self.preact = name == "preact_resnet18"
        if self.preact:
            self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        if not self.preact:
            self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        self.projects = stride != 1 or c_in != c_out
        if self.projects and name == "resnet32":
            self.shortcut = Shortcut(c_out)
        elif self.projects:
            conv = nn.Conv2d(c_in, c_out, 1, stride, bias=False)
            norm = [] if self.preact else [nn.BatchNorm2d(c_out)]
            self.shortcut = nn.Sequential(conv, *norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            out = F.relu(self.bn1(x))
            skip = self.shortcut(out) if self.projects else x
            return self.conv2(F.relu(self.bn2(self.conv1(out)))) + skip
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ReferenceResNet(nn.Module):
    """The CIFAR ResNets of torch's own layers: 3x3 stem, stages whose first block
    strides by 2 (but the first stage's), global average pooling, nn.Linear."""

    def __init__(self, name: str, c: int, widths, k: int) -> None:
        super().__init__()
        preact = name == "preact_resnet18"
        self.conv1 = nn.Conv2d(c, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.Identity() if preact else nn.BatchNorm2d(widths[0])
        blocks, c = [], widths[0]
        for stage, (depth, width) in enumerate(zip(DEPTHS[name], widths, strict=True)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(ReferenceBlock(c, width, stride, name))
                c = width
        self.layers = nn.Sequential(*blocks)
        self.bn_final = nn.BatchNorm2d(c) if preact else nn.Identity()
        self.linear = nn.Linear(c, k)
        self.preact = preact

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if not self.preact:
            out = F.relu(self.bn1(out))
        out = self.layers(out)
        if self.preact:
            out = F.relu(self.bn_final(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _of_type(module: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("seeds", [[5], [3, 5, 8]])
@pytest.mark.parametrize("name", RESNETS)
def test_a_resnet_member_computes_what_torchs_layers_compute(name, seeds):
    """Member s (alone, or among others), loaded into a ResNet of nn.Conv2d /
    nn.BatchNorm2d / nn.Linear, gives the same logits in training mode, moves the same
    running statistics, and gives the same logits in evaluation mode."""
    from noisebench.models import layers

    shape, s, widths = (3, 11, 9), seeds.index(5), STAGE_WIDTHS[name]  # odd sides
    model = build_model(
        name, input_shape=shape, hidden=widths, num_classes=5, seeds=seeds
    )
    reference = ReferenceResNet(name, shape[0], widths, 5)
    convs = list(
        zip(_of_type(model, layers.Conv2d), _of_type(reference, nn.Conv2d), strict=True)
    )
    norms = list(
        zip(
            _of_type(model, layers.BatchNorm2d),
            _of_type(reference, nn.BatchNorm2d),
            strict=True,
        )
    )
    with torch.no_grad():
        for ours, theirs in convs:
            assert ours.weight[s].shape == theirs.weight.shape
            theirs.weight.copy_(ours.weight[s])
        for ours, theirs in norms:
            assert ours.weight[s].shape == theirs.weight.shape
            # not the init's (1, 0), so a mixed-up pair of norms shows
            ours.weight.uniform_(0.5, 1.5), ours.bias.uniform_(-0.5, 0.5)
            theirs.weight.copy_(ours.weight[s]), theirs.bias.copy_(ours.bias[s])
        reference.linear.weight.copy_(model.head.weights[0][s].T)
        reference.linear.bias.copy_(model.head.biases[0][s, 0])
    x = torch.randn(len(seeds), 16, *shape)
    torch.testing.assert_close(model(x)[s], reference(x[s]), rtol=1e-4, atol=1e-5)
    for ours, theirs in norms:
        torch.testing.assert_close(ours.running_mean[s], theirs.running_mean)
        torch.testing.assert_close(ours.running_var[s], theirs.running_var)
    model.eval(), reference.eval()
    torch.testing.assert_close(model(x)[s], reference(x[s]), rtol=1e-4, atol=1e-5)


# (stage widths, classes) -> parameters of one member, from the papers' layouts
KNOWN_PARAMS = {
    # 0.46M in the reference code's table; 6n + 2 = 32 layers, option A adds nothing
    "resnet32": 464_154,
    # torchvision-style CIFAR ResNet-34 (as in the CIFAR-N baselines)
    "resnet34": 21_282_122,
    # kuangliu/pytorch-cifar's PreActResNet18 (11,171,146) and the last batch norm
    "preact_resnet18": 11_171_146 + 2 * 512,
}


def _resnet32_params(n: int, widths, k: int) -> int:
    """He et al.'s 6n + 2 network, counted by hand: stem conv + BN; per stage n blocks
    of two 3x3 convs and two BNs (the first conv of a stage widens); linear."""
    total = 9 * 3 * widths[0] + 2 * widths[0]
    c_in = widths[0]
    for w in widths:
        total += 9 * c_in * w + 9 * w * w + 4 * w  # the stage's first block
        total += (n - 1) * (2 * 9 * w * w + 4 * w)
        c_in = w
    return total + widths[-1] * k + k


@pytest.mark.parametrize("name", RESNETS)
def test_resnets_have_the_papers_parameter_counts(name):
    default = get_model(name).default_hidden
    params, units = get_model(name).sizes((3, 32, 32), default, 10)
    assert params == KNOWN_PARAMS[name]
    assert params == sum(
        p.numel() for p in _reference(name, (3, 32, 32), default, 10).parameters()
    )
    if name == "resnet32":
        assert params == _resnet32_params(5, (16, 32, 64), 10)
    # a member's forward pass holds more than its 16-channel 32x32 stem output
    assert units > 16 * 32 * 32


def test_only_resnets_read_hidden_as_stage_widths():
    assert get_model("resnet32").default_hidden == (16, 32, 64)
    assert get_model("resnet34").default_hidden == (64, 128, 256, 512)
    assert get_model("preact_resnet18").default_hidden == (64, 128, 256, 512)
    assert all(get_model(n).default_hidden is None for n in ("mlp", "cnn", "cnn1d"))


@pytest.mark.parametrize(
    ("name", "hidden", "message"),
    [
        ("resnet32", (16, 32), "resnet32 takes 3 stage widths as hidden"),
        ("resnet34", (256, 256), "resnet34 takes 4 stage widths as hidden"),
        ("preact_resnet18", (8, 8, 8, 8, 8), "preact_resnet18 takes 4 stage widths"),
        ("resnet32", (16, 8, 64), "zero-padding shortcuts only widen"),
    ],
)
def test_wrong_stage_widths_are_a_users_error(name, hidden, message):
    from noisebench.errors import UserError

    for make in (
        lambda: get_model(name).sizes((3, 8, 8), hidden, 10),
        lambda: build_model(
            name, input_shape=(3, 8, 8), hidden=hidden, num_classes=10, seeds=[0]
        ),
    ):
        with pytest.raises(UserError, match=message) as caught:
            make()
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", RESNETS)
def test_resnets_start_as_torchvision_does_from_each_members_seed(name):
    """Convolutions: torch's kaiming_normal_(mode="fan_out", nonlinearity="relu") drawn
    with member s's generator; batch norms (1, 0); the classifier nn.Linear's bounds."""
    from noisebench.models import layers

    widths = STAGE_WIDTHS[name]
    model = build_model(
        name, input_shape=(3, 8, 8), hidden=widths, num_classes=5, seeds=[6, 2]
    )
    for s, seed in enumerate([6, 2]):
        stem = torch.empty(widths[0], 3, 3, 3)
        nn.init.kaiming_normal_(
            stem,
            mode="fan_out",
            nonlinearity="relu",
            generator=torch.Generator().manual_seed(seed),
        )
        torch.testing.assert_close(model.stem.weight[s], stem)
    for norm in _of_type(model, layers.BatchNorm2d):
        assert (norm.weight == 1).all() and (norm.bias == 0).all()
    assert model.head.weights[0].abs().max() <= 1 / widths[-1] ** 0.5
    # the widest stage's convolutions, all members: std sqrt(2 / fan_out)
    wide = torch.cat(
        [
            c.weight.flatten()
            for c in _of_type(model, layers.Conv2d)
            if c.weight.shape[1:3] == (widths[-1], widths[-1])
        ]
    )
    assert abs(wide.std().item() / (2 / (9 * widths[-1])) ** 0.5 - 1) < 0.1
