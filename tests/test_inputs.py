"""The on-device input pipeline: crop, flip and normalization against per-sample
references, the draws' distribution, and augmentation kept per member in training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from noisebench import get_method
from noisebench.engine import Task, TrainConfig, fit
from noisebench.inputs import Augmentation, Inputs, crop_and_flip


def _reference_crop_and_flip(image, offset, flip, padding):
    """One image, the way torchvision's RandomCrop(padding) + RandomHorizontalFlip do
    it: pad with zeros, cut an H x W window at the offset, mirror the columns."""
    h, w = image.shape[-2:]
    padded = F.pad(image, (padding,) * 4)
    top, left = int(offset[0]), int(offset[1])
    crop = padded[:, top : top + h, left : left + w]
    return crop.flip(-1) if flip else crop


@pytest.mark.parametrize("padding", [0, 1, 4])
def test_crop_and_flip_equals_the_per_sample_reference(padding):
    g = torch.Generator().manual_seed(padding)
    images = torch.randint(256, (3, 5, 3, 6, 9), generator=g, dtype=torch.uint8)
    offsets = torch.randint(2 * padding + 1, (3, 5, 2), generator=g)
    flips = torch.rand(3, 5, generator=g) < 0.5
    out = crop_and_flip(images, Augmentation(offsets, flips), padding)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    for s in range(3):
        for b in range(5):
            ref = _reference_crop_and_flip(
                images[s, b], offsets[s, b], bool(flips[s, b]), padding
            )
            assert torch.equal(out[s, b], ref)


def test_centre_crop_without_flip_is_the_identity():
    images = torch.randint(256, (2, 4, 1, 7, 5), dtype=torch.uint8)
    centre = torch.full((2, 4, 2), 3)
    none = torch.zeros(2, 4, dtype=torch.bool)
    assert torch.equal(crop_and_flip(images, Augmentation(centre, none), 3), images)


def test_normalization_is_torchvisions_formula():
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    pixels = torch.randint(256, (4, 3, 5, 5), dtype=torch.uint8)
    out = Inputs.for_pixels(mean, std)(pixels)
    ref = (pixels.double() / 255 - torch.tensor(mean).double().view(3, 1, 1)) / (
        torch.tensor(std).double().view(3, 1, 1)
    )
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)
    flat = Inputs.for_pixels(mean, std, flat=True)(pixels)
    assert torch.equal(flat, out.flatten(1))


def test_stored_features_pass_through_unchanged():
    x = torch.randn(3, 6)
    assert Inputs()(x) is x


def test_draws_are_uniform_and_fair():
    """Offsets uniform over the 2p+1 positions and flips with probability 1/2, within
    5 standard errors of the counts' binomial sampling error."""
    n, padding = 20_000, 2
    inputs = Inputs(crop_padding=padding, flip=True)
    drawn = inputs.draw(
        [torch.Generator().manual_seed(s) for s in (0, 1)], n, torch.device("cpu")
    )
    assert drawn.offsets.shape == (2, n, 2) and drawn.flips.shape == (2, n)
    span = 2 * padding + 1
    counts = torch.bincount(drawn.offsets.flatten(), minlength=span).double()
    total = drawn.offsets.numel()
    p = 1 / span
    assert (counts - total * p).abs().max() < 5 * math.sqrt(total * p * (1 - p))
    flips = drawn.flips.double().sum()
    assert abs(flips - drawn.flips.numel() / 2) < 5 * math.sqrt(drawn.flips.numel() / 4)
    # the two members drew differently
    assert not torch.equal(drawn.offsets[0], drawn.offsets[1])


def test_no_flip_card_never_mirrors_and_no_augmentation_draws_nothing():
    g = [torch.Generator().manual_seed(0)]
    drawn = Inputs(crop_padding=1).draw(g, 100, torch.device("cpu"))
    assert not drawn.flips.any()
    assert Inputs().draw(g, 100, torch.device("cpu")) is None


def _pixel_task(seeds, n=240, k=3):
    """Images whose class is a bright square in one of k places: learnable, uint8."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(k, (n,), generator=g)
    x = torch.randint(60, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    for c in range(k):
        x[y == c, :, 2 * c : 2 * c + 3, 1:5] += 150
    s = len(seeds)
    # each member's split from its own seed, so a member is the same run in any ensemble
    perm = torch.stack(
        [torch.randperm(200, generator=torch.Generator().manual_seed(s)) for s in seeds]
    )
    return Task(
        x=x[:200],
        y_noisy=y[:200].expand(s, -1).clone(),
        train_idx=perm[:, :160],
        val_idx=perm[:, 160:],
        x_test=x[200:],
        y_test=y[200:],
        num_classes=k,
        seeds=list(seeds),
        inputs=Inputs.for_pixels([0.3], [0.3], crop_padding=1, flip=True),
    )


def test_augmented_members_do_not_depend_on_their_ensemble_mates():
    config = TrainConfig(model="cnn", hidden=(16,), epochs=3, batch_size=32, lr=3e-3)
    ce = get_method("ce")
    together = fit(_pixel_task((3, 5, 8)), method=ce, params={}, config=config)
    alone = fit(_pixel_task((5,)), method=ce, params={}, config=config)
    torch.testing.assert_close(
        together.test_logits[1], alone.test_logits[0], rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(together.val_acc[1], alone.val_acc[0])
    assert together.test_acc_at_best_val.min() > 0.6  # it learns through the pipeline


def test_augmentation_changes_training():
    """The draws reach the model: the same seed trained without augmentation ends
    elsewhere (a pipeline that silently skipped augmentation would pass the rest)."""
    config = TrainConfig(model="cnn", hidden=(16,), epochs=2, batch_size=32, lr=3e-3)
    ce = get_method("ce")
    task = _pixel_task((5,))
    plain = Inputs.for_pixels([0.3], [0.3])
    with_aug = fit(task, method=ce, params={}, config=config)
    without = fit(
        Task(**{**task.__dict__, "inputs": plain}), method=ce, params={}, config=config
    )
    assert not torch.allclose(with_aug.test_logits, without.test_logits, atol=1e-3)
