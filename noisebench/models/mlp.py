"""The multilayer perceptron, stacked: S networks with parameters on a leading axis.

Training all seeds of a configuration at once turns S small matmuls into one batched
matmul. Member s sees only slice s of every parameter, so members never interact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from noisebench.models import StackedModel, dense_params, register_model, uniform


class StackedMLP(StackedModel):
    """S multilayer perceptrons with ReLU, initialized like `nn.Linear` (one generator each)."""

    def __init__(
        self, sizes: Sequence[int], generators: Sequence[torch.Generator]
    ) -> None:
        super().__init__()
        self.num_classes = sizes[-1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            # each member draws weight then bias from its own generator, as before
            # the registry: a seed's MLP (and the committed leaderboard) is unchanged
            self.weights.append(
                nn.Parameter(uniform((fan_in, fan_out), fan_in, generators))
            )
            self.biases.append(nn.Parameter(uniform((1, fan_out), fan_in, generators)))
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

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """x: (S, B, D) per-member batches, or (B, D) shared by all members -> the last
        hidden layer's activations (S, B, H); x itself without hidden layers."""
        for i in range(len(self.weights) - 1):
            w, b = self.weights[i], self.biases[i]
            x = torch.baddbmm(b, x, w) if x.dim() == 3 else torch.matmul(x, w) + b
            x = torch.relu_(x)  # in place: baddbmm's backward does not need its output
        return x

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        w, b = self.weights[-1], self.biases[-1]
        h = torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b
        return h[..., : self.num_classes]

    def classifier(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer's weights (S, K, H) and biases (S, K), views without the
        padding columns."""
        k = self.num_classes
        return self.weights[-1][..., :k].transpose(1, 2), self.biases[-1][:, 0, :k]


def sizes(input_shape, hidden, num_classes) -> tuple[int, int]:
    widths = [math.prod(input_shape), *hidden, num_classes]
    params = dense_params(widths)
    return params, sum(widths[1:])


@register_model("mlp", sizes=sizes)
def mlp(*, input_shape, hidden, num_classes, generators) -> StackedMLP:
    """Multilayer perceptron with ReLU: input -> hidden widths -> classes."""
    return StackedMLP([math.prod(input_shape), *hidden, num_classes], generators)
