"""How stored samples become model inputs, on the device, per batch (as airbench does).

Image datasets stay on the device as uint8 pixels, 4x smaller than floats; every batch
is augmented (random crop with zero padding, horizontal flip) while still uint8 and then
normalized to float. There is no DataLoader, no per-sample Python and no PIL here.

Each member draws its own augmentations from its own generator, once per epoch for its
whole epoch (one crop offset pair and one flip per sample), so a step draws nothing and
member s's draws never depend on its ensemble mates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Augmentation:
    """One epoch's draws for S members and their n training samples, in batch order."""

    offsets: torch.Tensor  # (S, n, 2) crop offsets (row, column) in [0, 2 * padding]
    flips: torch.Tensor  # (S, n) bool: mirror left to right

    def batch(self, start: int, stop: int) -> Augmentation:
        return Augmentation(self.offsets[:, start:stop], self.flips[:, start:stop])


@dataclass(frozen=True)
class Inputs:
    """What the engine does to a batch before the model sees it.

    `scale`/`shift` (per channel) map stored pixels to normalized floats:
    `x * scale + shift = (x / 255 - mean) / std`. Without them the stored features are
    the model's inputs already (tabular data, standardized on the host).
    """

    scale: torch.Tensor | None = None  # (C,)
    shift: torch.Tensor | None = None  # (C,)
    crop_padding: int = 0
    flip: bool = False
    flat: bool = False  # images for a model that takes vectors: flattened last

    @classmethod
    def for_pixels(
        cls,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        crop_padding: int = 0,
        flip: bool = False,
        flat: bool = False,
        device: torch.device | str = "cpu",
    ) -> Inputs:
        mean_t = torch.tensor(mean, dtype=torch.float64)
        std_t = torch.tensor(std, dtype=torch.float64)
        return cls(
            scale=(1 / (255 * std_t)).float().to(device),
            shift=(-mean_t / std_t).float().to(device),
            crop_padding=crop_padding,
            flip=flip,
            flat=flat,
        )

    def shape_of(self, stored: tuple[int, ...]) -> tuple[int, ...]:
        """The model's sample shape for stored samples of shape `stored`."""
        return (math.prod(stored),) if self.flat else stored

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.flip

    def draw(
        self, generators: Sequence[torch.Generator], n: int, device: torch.device
    ) -> Augmentation | None:
        """Each member's augmentations for an epoch of n samples, from its generator."""
        if not self.augments:
            return None
        span = 2 * self.crop_padding + 1
        offsets = torch.stack(
            [
                torch.randint(span, (n, 2), generator=g, device=device)
                for g in generators
            ]
        )
        if self.flip:
            flips = torch.stack(
                [torch.rand(n, generator=g, device=device) < 0.5 for g in generators]
            )
        else:
            flips = torch.zeros(offsets.shape[:2], dtype=torch.bool, device=device)
        return Augmentation(offsets, flips)

    def __call__(
        self, x: torch.Tensor, augmentation: Augmentation | None = None
    ) -> torch.Tensor:
        """Stored samples (..., C, H, W) or (..., D) -> float model inputs, augmented
        first when `augmentation` (whose leading dims match x's) is given."""
        if augmentation is not None:
            x = crop_and_flip(x, augmentation, self.crop_padding)
        if self.scale is not None:
            # pixels are (..., C, H, W): per-channel constants broadcast over H and W
            shift, scale = self.shift.view(-1, 1, 1), self.scale.view(-1, 1, 1)
            x = torch.addcmul(shift, x.float(), scale)
        return x.flatten(-3) if self.flat else x.float()


def crop_and_flip(
    x: torch.Tensor, augmentation: Augmentation, padding: int
) -> torch.Tensor:
    """(..., C, H, W) images, each cropped back to H x W at its offset from its copy
    padded by `padding` zeros on every side, then mirrored where flipped: one gather
    over the whole batch, in the input's dtype (uint8 pixels stay uint8)."""
    *lead, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4) if padding else x
    width = w + 2 * padding
    rows = augmentation.offsets[..., 0, None] + torch.arange(h, device=x.device)
    columns = torch.arange(w, device=x.device)
    mirrored = torch.where(augmentation.flips[..., None], w - 1 - columns, columns)
    columns = augmentation.offsets[..., 1, None] + mirrored  # (..., W)
    index = rows[..., :, None] * width + columns[..., None, :]  # (..., H, W)
    index = index.flatten(-2).unsqueeze(-2).expand(*lead, c, h * w)
    return padded.flatten(-2).gather(-1, index).view(*lead, c, h, w)
