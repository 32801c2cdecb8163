"""A small CNN for small images, stacked: S networks run as one grouped convolution.

Two blocks of 3x3 convolution, batch norm, ReLU and 2x2 max-pooling (32 and 64
channels; a block on a side shorter than 2 skips its pooling), then the hidden linear
layers and the classifier. The members' channels are side by side (S·C channels,
`groups=S`, as Packed-Ensembles do), so one convolution serves every member and no
member sees another's channels. Batch norm keeps statistics per member and channel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from noisebench.models import (
    DenseHead,
    StackedModel,
    dense_params,
    layers,
    per_member,
    register_model,
    side_by_side,
    uniform,
)

CHANNELS = (32, 64)


class StackedCNN(StackedModel):
    """S small CNNs; every parameter and buffer has the member axis first."""

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int],
        hidden: Sequence[int],
        num_classes: int,
        generators: Sequence[torch.Generator],
    ) -> None:
        super().__init__()
        members = len(generators)
        self.members, self.num_classes = members, num_classes
        self.convs = nn.ParameterList()
        self.norm_weights, self.norm_biases = nn.ParameterList(), nn.ParameterList()
        self.pools: list[bool] = []
        blocks, flat = _blocks(input_shape, channels)
        for i, (c, out, _, pool) in enumerate(blocks):
            # no conv bias: batch norm's shift takes its place
            self.convs.append(nn.Parameter(uniform((out, c, 3, 3), c * 9, generators)))
            self.norm_weights.append(nn.Parameter(torch.ones(members, out)))
            self.norm_biases.append(nn.Parameter(torch.zeros(members, out)))
            self.register_buffer(f"running_mean{i}", torch.zeros(members, out))
            self.register_buffer(f"running_var{i}", torch.ones(members, out))
            self.pools.append(pool)
        self.head = DenseHead([flat, *hidden, num_classes], generators)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """x: (S, B, C, H, W) per-member batches, or (B, C, H, W) shared -> the last hidden
        layer's activations (S, B, D)."""
        s = self.members
        h = side_by_side(x, s, sample_dims=3)
        for i, (conv, gamma, beta) in enumerate(
            zip(self.convs, self.norm_weights, self.norm_biases, strict=True)
        ):
            h = layers.conv2d(h, conv, padding=1)
            h = layers.batch_norm(
                h,
                getattr(self, f"running_mean{i}"),
                getattr(self, f"running_var{i}"),
                gamma,
                beta,
                training=self.training,
            )
            h = F.relu(h)
            if self.pools[i]:
                h = F.max_pool2d(h, 2)
        return self.head.hidden(per_member(h, s))


def _blocks(input_shape, channels):
    """[(in channels, out channels, pixels, pools)] per block, and the flattened size
    after the last: a block pools 2x2 unless a side is shorter than 2."""
    c, h, w = input_shape
    blocks = []
    for out in channels:
        pool = min(h, w) >= 2
        blocks.append((c, out, h * w, pool))
        c, h, w = (out, h // 2, w // 2) if pool else (out, h, w)
    return blocks, c * h * w


def sizes(input_shape, hidden, num_classes) -> tuple[int, int]:
    """Parameters, and activations per sample (each block's convolution, batch norm
    and ReLU outputs, then the dense layers), of one member."""
    blocks, flat = _blocks(input_shape, CHANNELS)
    params = sum(out * c * 9 + 2 * out for c, out, _, _ in blocks)
    units = sum(3 * out * pixels for _, out, pixels, _ in blocks)
    widths = [flat, *hidden, num_classes]
    params += dense_params(widths)
    return params, units + sum(widths[1:])


@register_model("cnn", sizes=sizes, takes="image")
def cnn(*, input_shape, hidden, num_classes, generators) -> StackedCNN:
    """Small CNN: two conv blocks (32, 64 channels), then the hidden layers."""
    return StackedCNN(input_shape, CHANNELS, hidden, num_classes, generators)
