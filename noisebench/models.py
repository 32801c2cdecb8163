"""Models as stacked ensembles: S independent networks with parameters on a leading axis.

Training all seeds of a configuration at once turns S small matmuls into one batched
matmul. Member s sees only slice s of every parameter, so members never interact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from noisebench.errors import UserError

MODELS = ("mlp",)


class StackedMLP(nn.Module):
    """S multilayer perceptrons with ReLU, initialized like `nn.Linear` (one generator each)."""

    def __init__(
        self, sizes: Sequence[int], generators: Sequence[torch.Generator]
    ) -> None:
        super().__init__()
        self.num_classes = sizes[-1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            # nn.Linear's default init, kaiming_uniform(a=sqrt(5)), is U(+-1/sqrt(fan_in))
            bound = 1.0 / math.sqrt(fan_in)
            w = torch.stack([_uniform((fan_in, fan_out), bound, g) for g in generators])
            b = torch.stack([_uniform((1, fan_out), bound, g) for g in generators])
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        # CPU GEMM kernels run a 10-column output at a sixth of their speed; zero columns
        # up to a multiple of 16 (sliced off, so they never get a gradient) fix that.
        pad = -self.num_classes % 16
        self.weights[-1] = nn.Parameter(
            nn.functional.pad(self.weights[-1].data, (0, pad))
        )
        self.biases[-1] = nn.Parameter(
            nn.functional.pad(self.biases[-1].data, (0, pad))
        )

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (S, B, D) per-member batches, or (B, D) shared by all members -> (S, B, K)."""
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w) if x.dim() == 3 else torch.matmul(x, w) + b
            if i < last:
                x = torch.relu_(
                    x
                )  # in place: baddbmm's backward does not need its output
        return x[..., : self.num_classes]


def _uniform(
    shape: tuple[int, int], bound: float, generator: torch.Generator
) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def build_model(
    name: str,
    *,
    in_features: int,
    hidden: Sequence[int],
    num_classes: int,
    seeds: Sequence[int],
) -> nn.Module:
    """A stacked model with one member per seed, initialized on the CPU so that a seed
    gets the same initial weights on every device and whatever its ensemble mates."""
    if name != "mlp":
        raise UserError(f"unknown model '{name}'; choose from: {', '.join(MODELS)}")
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return StackedMLP([in_features, *hidden, num_classes], generators)
