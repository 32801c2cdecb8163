"""Models as stacked ensembles, one file per family, registered by name (timm's
`register_model` pattern, on the method registry's loud `Registry`).

Every model maps a stacked batch `(S, B, *input_shape)`, or one batch `(B, *input_shape)`
shared by all members, to logits `(S, B, K)`. Its parameters and buffers carry a leading
member axis, and member s is initialized from seed s alone on the CPU, so a seed gets
the same network on every device and whatever its ensemble mates: members never
interact. A family file holds the module and a registered builder; importing this
package imports them all.
"""

from __future__ import annotations

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


MODELS: Registry[ModelEntry] = Registry("model")


INPUTS = ("vector", "image", "signal")


def register_model(
    name: str, *, sizes: Callable[..., tuple[int, int]], takes: str = "vector"
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    if takes not in INPUTS:
        raise ValueError(f"model {name}: takes must be one of {INPUTS}, not {takes!r}")

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        summary = (build.__doc__ or "").strip().splitlines()[0]
        entry = ModelEntry(name, build, sizes, takes, summary)
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


from noisebench.models import cnn, cnn1d, mlp  # noqa: F401 - registers the families
