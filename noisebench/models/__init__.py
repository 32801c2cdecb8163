"""Models as stacked ensembles, one file per family, registered by name (timm's
`register_model` pattern, on the method registry's loud `Registry`).

Every model maps a stacked batch `(S, B, *input_shape)`, or one batch `(B, *input_shape)`
shared by all members, to logits `(S, B, K)`. Its parameters and buffers carry a leading
member axis, and member s is initialized from seed s alone on the CPU, so a seed gets
the same network on every device and whatever its ensemble mates: members never
interact. A family file holds the module and a registered builder; importing this
package imports them all.

Every family is a `StackedModel`: a trunk up to the penultimate activations, then the
last linear layer (timm's `forward_features` / `forward_head` split), so `forward` and
`features` run the same code and cannot drift.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from noisebench.errors import UserError
from noisebench.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    name: str
    # (input_shape, hidden, num_classes, generators) -> a stacked module
    build: Callable[..., nn.Module]
    # (input_shape, hidden, num_classes) -> (parameters, activation units per sample)
    # of one member, computed without building it: memory is checked before allocating
    sizes: Callable[..., tuple[int, int]]
    takes: str  # "vector" (flat features), "image" (C, H, W) or "signal" (C, L)
    summary: str
    # the widths `hidden` means for this model when the card's widths are for another
    # (a ResNet's stage widths); None where the card's hidden layers apply as they are
    default_hidden: tuple[int, ...] | None = None


MODELS: Registry[ModelEntry] = Registry("model")


INPUTS = ("vector", "image", "signal")


def register_model(
    name: str,
    *,
    sizes: Callable[..., tuple[int, int]],
    takes: str = "vector",
    default_hidden: tuple[int, ...] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    if takes not in INPUTS:
        raise ValueError(f"model {name}: takes must be one of {INPUTS}, not {takes!r}")

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        summary = (build.__doc__ or "").strip().splitlines()[0]
        entry = ModelEntry(name, build, sizes, takes, summary, default_hidden)
        MODELS.register(name, entry, origin=build.__module__)
        return build

    return decorate


def get_model(name: str) -> ModelEntry:
    return MODELS.get(name)


def list_models() -> list[str]:
    return MODELS.names()


def input_shape(
    name: str, *, features: int, shapes: dict[str, Sequence[int] | None]
) -> tuple[int, ...]:
    """The shape one sample takes for model `name`: a flat vector, or the view the
    card declares for its kind (`shapes["image"]` from image_shape, `shapes["signal"]`
    from signal_shape)."""
    takes = get_model(name).takes
    if takes == "vector":
        return (features,)
    if shapes.get(takes) is None:
        raise UserError(
            f"model '{name}' takes {takes}s, and this dataset's card has no {takes}_shape"
        )
    return tuple(shapes[takes])


def build_model(
    name: str,
    *,
    input_shape: Sequence[int],
    hidden: Sequence[int],
    num_classes: int,
    seeds: Sequence[int],
) -> nn.Module:
    """A stacked model with one member per seed."""
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return get_model(name).build(
        input_shape=tuple(input_shape),
        hidden=tuple(hidden),
        num_classes=num_classes,
        generators=generators,
    )


def uniform(shape, fan_in: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """(S, *shape) drawn from U(±1/sqrt(fan_in)) with each member's own generator: the
    default init of nn.Linear and nn.Conv2d (kaiming_uniform with a = sqrt(5))."""
    bound = 1.0 / math.sqrt(fan_in)
    return torch.stack(
        [(torch.rand(shape, generator=g) * 2 - 1) * bound for g in generators]
    )


def kaiming_normal(
    shape, fan_out: int, generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """(S, *shape) drawn from N(0, 2/fan_out) with each member's own generator: the
    convolutions' init in torchvision's ResNets (kaiming_normal_, mode="fan_out",
    nonlinearity="relu"), which keeps the backward pass's variance through ReLUs."""
    std = math.sqrt(2.0 / fan_out)
    return torch.stack([torch.randn(shape, generator=g) * std for g in generators])


class StackedModel(nn.Module):
    """The contract of every family: S members, K classes, and

    - `trunk(x)`: the penultimate activations, those the last linear layer takes (after
      the final nonlinearity or the global pooling): (S, B, D), or (B, D) where a shared
      batch reaches the last layer untouched (an MLP without hidden layers);
    - `classify(h)`: the last linear layer, (S, B, D) -> logits (S, B, K);
    - `classifier()`: its weights (S, K, D) and biases (S, K), views of the parameters
      (gradients flow through them; detach to keep them).

    `forward(x)` is `classify(trunk(x))` and `features(x)` is `trunk(x)` with the
    member axis always present. A family whose last layer is `self.head`, a
    `DenseHead`, defines only `trunk`.
    """

    members: int
    num_classes: int

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return self.head.classify(h)

    def classifier(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.classifier()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (S, B, *input_shape) per-member batches, or (B, *input_shape) shared by
        every member -> logits (S, B, K)."""
        return self.classify(self.trunk(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x as `forward` takes it -> the penultimate activations (S, B, D); for a
        shared batch no layer has touched, an expanded view of it (read-only)."""
        h = self.trunk(x)
        return h if h.dim() == 3 else h.expand(self.members, *h.shape)


class DenseHead(nn.Module):
    """The hidden linear layers and the classifier of S members, each layer one batched
    matmul with ReLU between: (S, B, widths[0]) -> (S, B, widths[-1]). `hidden` runs
    all but the last layer (each with its ReLU), `classify` the last."""

    def __init__(
        self, widths: Sequence[int], generators: Sequence[torch.Generator]
    ) -> None:
        super().__init__()
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(widths):
            # each member draws weight then bias from its own generator
            self.weights.append(
                nn.Parameter(uniform((fan_in, fan_out), fan_in, generators))
            )
            self.biases.append(nn.Parameter(uniform((1, fan_out), fan_in, generators)))

    def hidden(self, h: torch.Tensor) -> torch.Tensor:
        for i in range(len(self.weights) - 1):
            h = torch.relu(torch.baddbmm(self.biases[i], h, self.weights[i]))
        return h

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.biases[-1], h, self.weights[-1])

    def classifier(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer's weights (S, K, D) and biases (S, K), views."""
        return self.weights[-1].transpose(1, 2), self.biases[-1][:, 0]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classify(self.hidden(h))


def dense_params(widths: Sequence[int]) -> int:
    """Weights and biases of linear layers of these widths."""
    return sum(a * b + b for a, b in itertools.pairwise(widths))


def side_by_side(x: torch.Tensor, members: int, sample_dims: int) -> torch.Tensor:
    """(S, B, C, ...) per-member batches, or (B, C, ...) shared by every member ->
    (B, S·C, ...), member s's channels at [s·C, (s+1)·C): the layout of a grouped
    convolution with groups=S, where no member sees another's channels."""
    if x.dim() == 1 + sample_dims:  # one batch for every member: each its own copy
        return x.repeat(1, members, *[1] * (sample_dims - 1))
    batch = x.shape[1]
    return x.transpose(0, 1).reshape(batch, members * x.shape[2], *x.shape[3:])


def per_member(h: torch.Tensor, members: int) -> torch.Tensor:
    """(B, S·C, ...) -> (S, B, C·...), each member's features flattened."""
    return h.reshape(h.shape[0], members, -1).transpose(0, 1)


from noisebench.models import cnn, cnn1d, mlp, resnet  # noqa: F401 - registers them
