"""ResNets for small images (CIFAR's 32x32), stacked: S networks as grouped convolutions.

- `resnet32`: He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition",
  CVPR 2016, §4.2: a 3x3 stem of 16 channels, three stages of n = 5 basic blocks
  (6n + 2 = 32 layers) at 16, 32 and 64 channels, and the parameter-free shortcut of
  option A (subsample by 2, zero-pad the new channels, half before and half after as in
  the reference CIFAR code, akamaster/pytorch_resnet_cifar10). 464,154 parameters for
  10 classes (that code's table: 0.46M).
- `resnet34`: basic blocks [3, 4, 6, 3] at 64 to 512 channels with a CIFAR stem (3x3,
  stride 1, no max-pool) and 1x1 conv + batch norm projections where the shape
  changes: the network of Wei et al. 2022 (CIFAR-N) and its baselines. 21,282,122
  parameters for 10 classes.
- `preact_resnet18`: He, Zhang, Ren and Sun, "Identity Mappings in Deep Residual
  Networks", ECCV 2016: pre-activation blocks [2, 2, 2, 2] at 64 to 512 channels, a
  bare 3x3 stem, 1x1 conv projections (no batch norm: the block's input is already
  normalized), and batch norm + ReLU before pooling. 11,172,170 parameters for 10
  classes (DivideMix's PreResNet18 has the last batch norm after the stem instead:
  11,171,274).

Each ends in global average pooling and a linear classifier. `hidden` gives the stage
widths. Convolutions start from Kaiming normal (fan_out), batch norms at (1, 0), the
classifier as nn.Linear, as torchvision's ResNets do; each member draws from its own
generator. The members' channels sit side by side (`groups=S`, see `layers`), and batch
norm keeps statistics per member.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from noisebench.errors import UserError
from noisebench.models import (
    DenseHead,
    StackedModel,
    per_member,
    register_model,
    side_by_side,
)
from noisebench.models.layers import BatchNorm2d, Conv2d


@dataclass(frozen=True)
class Arch:
    name: str
    depths: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...]  # default stage widths
    preact: bool  # pre-activation blocks (and batch norm before pooling)
    pad_shortcut: bool  # option A shortcuts, else 1x1 projections


RESNET32 = Arch("resnet32", (5, 5, 5), (16, 32, 64), preact=False, pad_shortcut=True)
RESNET34 = Arch(
    "resnet34", (3, 4, 6, 3), (64, 128, 256, 512), preact=False, pad_shortcut=False
)
PREACT18 = Arch(
    "preact_resnet18",
    (2, 2, 2, 2),
    (64, 128, 256, 512),
    preact=True,
    pad_shortcut=False,
)


@dataclass(frozen=True)
class Block:
    c_in: int
    c_out: int
    stride: int
    pixels_in: int  # per channel, at the block's input
    pixels_out: int

    @property
    def reshapes(self) -> bool:
        """The shortcut cannot be the identity."""
        return self.stride != 1 or self.c_in != self.c_out


def stage_widths(arch: Arch, hidden: Sequence[int]) -> tuple[int, ...]:
    """`hidden` read as the stage widths, checked: the CLI passes it from the user."""
    widths = tuple(int(w) for w in hidden)
    default = ",".join(map(str, arch.widths))
    if len(widths) != len(arch.depths):
        raise UserError(
            f"{arch.name} takes {len(arch.depths)} stage widths as hidden "
            f"(default {default}), got {len(widths)}: {','.join(map(str, widths))}"
        )
    if arch.pad_shortcut and any(b < a for a, b in itertools.pairwise(widths)):
        raise UserError(
            f"{arch.name}'s zero-padding shortcuts only widen: its stage widths must not "
            f"decrease, got {','.join(map(str, widths))}"
        )
    return widths


def plan(arch: Arch, input_shape: Sequence[int], widths: Sequence[int]) -> list[Block]:
    """Every block in order; a stage after the first starts with stride 2, and a 3x3
    convolution of stride 2 and padding 1 maps a side of n to ceil(n / 2)."""
    _, h, w = input_shape
    blocks, c = [], widths[0]
    for stage, (depth, width) in enumerate(zip(arch.depths, widths, strict=True)):
        for i in range(depth):
            stride = 2 if stage > 0 and i == 0 else 1
            h_out, w_out = math.ceil(h / stride), math.ceil(w / stride)
            blocks.append(Block(c, width, stride, h * w, h_out * w_out))
            c, h, w = width, h_out, w_out
    return blocks


class PadShortcut(nn.Module):
    """Option A: the input subsampled by the stride, its channels zero-padded to c_out
    (half the new channels before, half after, as the reference code's
    `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`); per member."""

    def __init__(self, block: Block, members: int) -> None:
        super().__init__()
        self.members, self.c_in, self.stride = members, block.c_in, block.stride
        extra = block.c_out - block.c_in
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h[:, :, :: self.stride, :: self.stride]
        # pad each member's own channels, last in memory: (B, S·C, H, W) in channels_last
        # is (B, H, W, S, C) contiguous, and the padded result goes back to channels_last
        # without a copy
        h = h.permute(0, 2, 3, 1).unflatten(3, (self.members, self.c_in))
        return F.pad(h, self.pad).flatten(3).permute(0, 3, 1, 2)


class Projection(nn.Module):
    """A 1x1 convolution of the block's stride, and batch norm unless pre-activation
    blocks, whose shortcut sees an already normalized input."""

    def __init__(
        self, block: Block, generators: Sequence[torch.Generator], *, norm: bool
    ) -> None:
        super().__init__()
        self.conv = Conv2d(block.c_in, block.c_out, 1, generators, stride=block.stride)
        self.norm = BatchNorm2d(block.c_out, len(generators)) if norm else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.conv(h)
        return h if self.norm is None else self.norm(h)


def shortcut(arch: Arch, block: Block, generators) -> nn.Module:
    if not block.reshapes:
        return nn.Identity()
    if arch.pad_shortcut:
        return PadShortcut(block, len(generators))
    return Projection(block, generators, norm=not arch.preact)


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU."""

    def __init__(self, arch: Arch, block: Block, generators) -> None:
        super().__init__()
        members = len(generators)
        self.conv1 = Conv2d(block.c_in, block.c_out, 3, generators, stride=block.stride)
        self.norm1 = BatchNorm2d(block.c_out, members)
        self.conv2 = Conv2d(block.c_out, block.c_out, 3, generators)
        self.norm2 = BatchNorm2d(block.c_out, members)
        self.shortcut = shortcut(arch, block, generators)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # in place where autograd allows: batch norm's backward reads its input, not
        # its output, so ReLU and the sum may overwrite the latter
        out = F.relu_(self.norm1(self.conv1(h)))
        out = self.norm2(self.conv2(out))
        return F.relu_(out.add_(self.shortcut(h)))


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv, plus the shortcut (of the activated input where it
    projects, as in the paper's code), nothing after the sum."""

    def __init__(self, arch: Arch, block: Block, generators) -> None:
        super().__init__()
        members = len(generators)
        self.norm1 = BatchNorm2d(block.c_in, members)
        self.conv1 = Conv2d(block.c_in, block.c_out, 3, generators, stride=block.stride)
        self.norm2 = BatchNorm2d(block.c_out, members)
        self.conv2 = Conv2d(block.c_out, block.c_out, 3, generators)
        self.shortcut = shortcut(arch, block, generators)
        self.projects = block.reshapes

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pre = F.relu_(self.norm1(h))  # in place on batch norm's output, not on h
        skip = self.shortcut(pre) if self.projects else h
        out = self.conv2(F.relu_(self.norm2(self.conv1(pre))))
        return out.add_(skip)


class StackedResNet(StackedModel):
    """S ResNets; every parameter and buffer has the member axis first."""

    def __init__(
        self,
        arch: Arch,
        input_shape: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
        generators: Sequence[torch.Generator],
    ) -> None:
        super().__init__()
        members = len(generators)
        self.members, self.num_classes = members, num_classes
        self.stem = Conv2d(input_shape[0], widths[0], 3, generators)
        # a plain ResNet normalizes the stem's output; a pre-activation one normalizes
        # the last block's, since each block normalizes its own input
        self.stem_norm = None if arch.preact else BatchNorm2d(widths[0], members)
        kind = PreActBlock if arch.preact else BasicBlock
        self.blocks = nn.Sequential(
            *[kind(arch, b, generators) for b in plan(arch, input_shape, widths)]
        )
        self.final_norm = BatchNorm2d(widths[-1], members) if arch.preact else None
        self.head = DenseHead([widths[-1], num_classes], generators)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """x: (S, B, C, H, W) per-member batches, or (B, C, H, W) shared -> the pooled
        features (S, B, C)."""
        # channels_last: measured 15-25% faster a step on this project's CPU than NCHW
        h = side_by_side(x, self.members, sample_dims=3)
        h = self.stem(h.contiguous(memory_format=torch.channels_last))
        if self.stem_norm is not None:
            h = F.relu_(self.stem_norm(h))
        h = self.blocks(h)
        if self.final_norm is not None:
            h = F.relu_(self.final_norm(h))
        # global average pooling: (B, S·C, H, W) -> (S, B, C)
        return per_member(h.mean((2, 3)), self.members)


def sizes_of(
    arch: Arch, input_shape: Sequence[int], hidden: Sequence[int], num_classes: int
) -> tuple[int, int]:
    """Parameters, and activations per sample (the output of every convolution, batch
    norm, ReLU, shortcut and sum, the pooled features and the logits), of one member."""
    widths = stage_widths(arch, hidden)
    c, h, w = input_shape
    first = widths[0] * h * w
    params = 9 * c * widths[0]
    units = first
    if not arch.preact:
        params += 2 * widths[0]  # the stem's batch norm
        units += 2 * first  # its output and the ReLU's
    for b in plan(arch, input_shape, widths):
        convs = 9 * b.c_in * b.c_out + 9 * b.c_out * b.c_out
        params += convs + 2 * b.c_out + 2 * (b.c_in if arch.preact else b.c_out)
        if b.reshapes and not arch.pad_shortcut:
            params += b.c_in * b.c_out + (0 if arch.preact else 2 * b.c_out)
        units += _block_units(arch, b)
    if arch.preact:
        params += 2 * widths[-1]  # the batch norm before pooling
        units += 2 * widths[-1] * plan(arch, input_shape, widths)[-1].pixels_out
    params += widths[-1] * num_classes + num_classes
    return params, units + widths[-1] + num_classes


def _block_units(arch: Arch, b: Block) -> int:
    out = b.c_out * b.pixels_out
    if arch.preact:
        # BN and ReLU of the input; conv, BN, ReLU, conv, sum; a projection's output
        return 2 * b.c_in * b.pixels_in + 5 * out + (out if b.reshapes else 0)
    # conv, BN, ReLU, conv, BN, sum, ReLU; a padded input, or a projection's conv and BN
    shortcut = 0 if not b.reshapes else out if arch.pad_shortcut else 2 * out
    return 7 * out + shortcut


def _build(arch: Arch, input_shape, hidden, num_classes, generators) -> StackedResNet:
    widths = stage_widths(arch, hidden)
    return StackedResNet(arch, input_shape, widths, num_classes, generators)


@register_model(
    "resnet32",
    sizes=functools.partial(sizes_of, RESNET32),
    takes="image",
    default_hidden=RESNET32.widths,
)
def resnet32(*, input_shape, hidden, num_classes, generators) -> StackedResNet:
    """ResNet-32 for CIFAR (He et al. 2016): 3 stages of 5 basic blocks, option-A shortcuts."""
    return _build(RESNET32, input_shape, hidden, num_classes, generators)


@register_model(
    "resnet34",
    sizes=functools.partial(sizes_of, RESNET34),
    takes="image",
    default_hidden=RESNET34.widths,
)
def resnet34(*, input_shape, hidden, num_classes, generators) -> StackedResNet:
    """ResNet-34, CIFAR stem (Wei et al. 2022): basic blocks [3, 4, 6, 3], projections."""
    return _build(RESNET34, input_shape, hidden, num_classes, generators)


@register_model(
    "preact_resnet18",
    sizes=functools.partial(sizes_of, PREACT18),
    takes="image",
    default_hidden=PREACT18.widths,
)
def preact_resnet18(*, input_shape, hidden, num_classes, generators) -> StackedResNet:
    """Pre-activation ResNet-18, CIFAR stem (He et al. 2016): blocks [2, 2, 2, 2]."""
    return _build(PREACT18, input_shape, hidden, num_classes, generators)
