"""The stacked convolutional pieces the image families share: S members' layers run as
one grouped operation on the side-by-side layout (B, S·C, H, W), member s's channels at
[s·C, (s+1)·C).

`conv2d` and `batch_norm` are the one implementation; `Conv2d` and `BatchNorm2d` hold
the parameters and buffers (member axis first) for the families built from modules.
Both work on contiguous and channels_last tensors alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from noisebench.models import kaiming_normal


def conv2d(
    h: torch.Tensor, weight: torch.Tensor, *, stride: int = 1, padding: int = 0
) -> torch.Tensor:
    """Every member's convolution at once. weight: (S, out, in, k, k), no bias; with
    groups=S, output channels [s·out, (s+1)·out) see only input channels [s·in, (s+1)·in)."""
    members, _, c_in, *kernel = weight.shape
    if (
        stride > 1
        and padding == 0
        and kernel == [1, 1]
        and members == 1
        and c_in < 16
        and h.device.type == "cpu"
        and h.is_contiguous(memory_format=torch.channels_last)
    ):
        # oneDNN's strided 1x1 weight gradient (torch 2.13, AVX-512) writes out of
        # bounds on such inputs with more than one thread: the process aborts or
        # segfaults (tests/test_cpu_conv_guard.py). A 1x1 kernel without padding reads
        # every stride-th pixel: the same convolution at stride 1, which is safe
        h, stride = h[:, :, ::stride, ::stride], 1
    return F.conv2d(
        h, weight.flatten(0, 1), stride=stride, padding=padding, groups=weight.shape[0]
    )


def batch_norm(
    h: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    training: bool,
) -> torch.Tensor:
    """Batch norm with statistics per member and channel: all (S, C). A channel of the
    side-by-side layout is one member's channel, so torch's batch norm over S·C channels
    keeps members apart. The running statistics are passed as flat views of the (S, C)
    buffers, so torch's in-place update reaches them."""
    return F.batch_norm(
        h,
        running_mean.view(-1),
        running_var.view(-1),
        weight.flatten(),
        bias.flatten(),
        training=training,
    )


class Conv2d(nn.Module):
    """S members' k x k convolutions without bias (batch norm's shift replaces it), each
    member's weights drawn from its own generator (Kaiming normal, fan_out), padded to
    keep the size at stride 1."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        generators: Sequence[torch.Generator],
        *,
        stride: int = 1,
    ) -> None:
        super().__init__()
        self.stride, self.padding = stride, kernel // 2
        shape = (c_out, c_in, kernel, kernel)
        self.weight = nn.Parameter(
            kaiming_normal(shape, c_out * kernel * kernel, generators)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return conv2d(h, self.weight, stride=self.stride, padding=self.padding)


class BatchNorm2d(nn.Module):
    """S members' batch norms over C channels: weight 1, bias 0, running statistics
    (0, 1), momentum 0.1 and eps 1e-5 as nn.BatchNorm2d."""

    def __init__(self, channels: int, members: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, channels))
        self.bias = nn.Parameter(torch.zeros(members, channels))
        self.register_buffer("running_mean", torch.zeros(members, channels))
        self.register_buffer("running_var", torch.ones(members, channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return batch_norm(
            h,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training=self.training,
        )
