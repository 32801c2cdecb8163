"""A small 1-D CNN for signals (MNIST-1D), stacked: S networks as one grouped convolution.

Three convolutions of kernel 5 and stride 2 with ReLU (32 channels each; the MNIST-1D
paper's CNN has three such layers of 25), then the hidden linear layers and the
classifier. As in `cnn`, the members' channels sit side by side (`groups=S`), so no
member sees another's.
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
    per_member,
    register_model,
    side_by_side,
    uniform,
)

CHANNELS = (32, 32, 32)
KERNEL, STRIDE, PADDING = 5, 2, 2


def _lengths(length: int) -> list[int]:
    """The signal's length after each convolution."""
    out = []
    for _ in CHANNELS:
        length = (length + 2 * PADDING - KERNEL) // STRIDE + 1
        out.append(length)
    return out


class StackedCNN1d(StackedModel):
    """S small 1-D CNNs; every parameter has the member axis first."""

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden: Sequence[int],
        num_classes: int,
        generators: Sequence[torch.Generator],
    ) -> None:
        super().__init__()
        self.members, self.num_classes = len(generators), num_classes
        c, length = input_shape
        self.convs, self.conv_biases = nn.ParameterList(), nn.ParameterList()
        for out in CHANNELS:
            fan_in = c * KERNEL
            self.convs.append(
                nn.Parameter(uniform((out, c, KERNEL), fan_in, generators))
            )
            self.conv_biases.append(nn.Parameter(uniform((out,), fan_in, generators)))
            c = out
        self.head = DenseHead(
            [c * _lengths(length)[-1], *hidden, num_classes], generators
        )

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """x: (S, B, C, L) per-member batches, or (B, C, L) shared -> the last hidden
        layer's activations (S, B, D)."""
        s = self.members
        h = side_by_side(x, s, sample_dims=2)
        for conv, bias in zip(self.convs, self.conv_biases, strict=True):
            h = F.conv1d(
                h,
                conv.flatten(0, 1),
                bias.flatten(),
                stride=STRIDE,
                padding=PADDING,
                groups=s,
            )
            h = F.relu(h)
        return self.head.hidden(per_member(h, s))


def sizes(input_shape, hidden, num_classes) -> tuple[int, int]:
    """Parameters, and activations per sample (each convolution's and ReLU's outputs,
    then the dense layers), of one member."""
    c, length = input_shape
    params = units = 0
    for out, after in zip(CHANNELS, _lengths(length), strict=True):
        params += out * c * KERNEL + out
        units += 2 * out * after
        c = out
    widths = [c * _lengths(length)[-1], *hidden, num_classes]
    params += dense_params(widths)
    return params, units + sum(widths[1:])


@register_model("cnn1d", sizes=sizes, takes="signal")
def cnn1d(*, input_shape, hidden, num_classes, generators) -> StackedCNN1d:
    """Small 1-D CNN: three stride-2 convolutions (32 channels), then the hidden layers."""
    return StackedCNN1d(input_shape, hidden, num_classes, generators)
