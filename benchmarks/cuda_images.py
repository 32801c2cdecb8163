"""Checks the image path of the engine on CUDA (run on a machine with a GPU).

    python benchmarks/cuda_images.py [--device cpu --quick]   (cpu: to test the script)

1. The on-device augmentation: crop + flip on CUDA equal to the CPU's for the same
   draws (uint8, exact), and the normalization within float32 rounding.
2. Members on CUDA: a stacked ResNet-32 (reduced width) trained with crop + flip and
   bf16 autocast, member s of 8 against seed s alone (bf16: close, not bitwise), and
   the same run twice (deterministic draws).
3. channels_last: the memory format the convolutions actually run in.
4. It learns: CIFAR-shaped synthetic images (class = a colored square's position) to
   well above chance, for `cnn` and `resnet32`.

Imports only torch and the engine (no `datasets`, no optuna), so it runs on a bare GPU
machine with `PYTHONPATH=.`.
"""

from __future__ import annotations

import argparse
import time

import torch

from noisebench.config import TrainConfig
from noisebench.engine import Task, fit
from noisebench.inputs import Augmentation, Inputs, crop_and_flip
from noisebench.models import build_model
from noisebench.registry import get_method

K = 4


def squares(n: int, seed: int, side: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, side, side) uint8 images; class c has a bright square in quadrant c."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % K
    x = torch.randint(0, 90, (n, 3, side, side), generator=g, dtype=torch.uint8)
    half, q = side // 2, side // 4
    for c in range(K):
        top, left = (c // 2) * half + q // 2, (c % 2) * half + q // 2
        x[y == c, c % 3, top : top + q, left : left + q] = 230
    return x, y


def task(seeds, device, n=2000) -> Task:
    x, y = squares(n + 500, 0)
    s = len(seeds)
    perms = torch.stack(
        [torch.randperm(n, generator=torch.Generator().manual_seed(k)) for k in seeds]
    )
    return Task(
        x=x[:n].to(device),
        y_noisy=y[:n].expand(s, -1).contiguous().to(device),
        train_idx=perms[:, : int(0.9 * n)].to(device),
        val_idx=perms[:, int(0.9 * n) :].to(device),
        x_test=x[n:].to(device),
        y_test=y[n:].to(device),
        num_classes=K,
        seeds=list(seeds),
        inputs=Inputs.for_pixels(
            [0.2] * 3, [0.25] * 3, crop_padding=4, flip=True, device=device
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    args = parser.parse_args()
    cuda = torch.device(args.device)
    name = torch.cuda.get_device_name(0) if cuda.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}")
    epochs, n = (1, 200) if args.quick else (10, 5000)

    g = torch.Generator().manual_seed(0)
    images = torch.randint(256, (8, 64, 3, 32, 32), generator=g, dtype=torch.uint8)
    drawn = Augmentation(
        torch.randint(9, (8, 64, 2), generator=g), torch.rand(8, 64, generator=g) < 0.5
    )
    on_cpu = crop_and_flip(images, drawn, 4)
    on_gpu = crop_and_flip(
        images.to(cuda), Augmentation(drawn.offsets.to(cuda), drawn.flips.to(cuda)), 4
    )
    inputs = Inputs.for_pixels([0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
    normal_gap = (
        (
            inputs(on_cpu)
            - Inputs.for_pixels([0.49, 0.48, 0.45], [0.25, 0.24, 0.26], device=cuda)(
                on_gpu
            ).cpu()
        )
        .abs()
        .max()
    )
    print(
        f"[1] crop+flip cuda == cpu: {torch.equal(on_cpu, on_gpu.cpu())}; "
        f"normalization max |diff| {float(normal_gap):.2e}"
    )

    config = TrainConfig(
        model="resnet32",
        hidden=(8, 16, 32),
        epochs=min(6, epochs),
        batch_size=128,
        optimizer="sgd",
        lr=0.05,
        nesterov=True,
        weight_decay=5e-4,
        schedule="cosine",
    )
    ce = get_method("ce")
    together = fit(task(range(8), cuda, n=n), method=ce, params={}, config=config)
    worst = 0.0
    for s in (0, 5)[: 1 if args.quick else 2]:
        alone = fit(task([s], cuda, n=n), method=ce, params={}, config=config)
        worst = max(
            worst,
            float((alone.val_acc[0] - together.val_acc[s]).abs().max()),
            float(
                (alone.test_acc_at_best_val[0] - together.test_acc_at_best_val[s]).abs()
            ),
        )
    again = fit(task(range(8), cuda, n=n), method=ce, params={}, config=config)
    print(
        f"[2] resnet32 member of 8 vs alone on cuda (bf16): max |diff| of val curve and "
        f"test acc {worst:.4f}; same run twice identical: "
        f"{torch.equal(together.val_acc, again.val_acc)}"
    )

    model = build_model(
        "resnet32",
        input_shape=(3, 32, 32),
        hidden=(8, 16, 32),
        num_classes=K,
        seeds=[0, 1],
    ).to(cuda)
    formats = []
    hook = lambda module, args, out: formats.append(
        out.is_contiguous(memory_format=torch.channels_last)
    )
    for conv in [m for m in model.modules() if type(m).__name__ == "Conv2d"][:3]:
        conv.register_forward_hook(hook)
    with torch.autocast(cuda.type, dtype=torch.bfloat16, enabled=cuda.type == "cuda"):
        model(torch.randn(2, 16, 3, 32, 32, device=cuda))
    print(f"[3] resnet32 convolution outputs in channels_last: {formats}")

    for model_name, hidden in (("cnn", (128,)), ("resnet32", (16, 32, 64))):
        config = TrainConfig(
            model=model_name,
            hidden=hidden,
            epochs=epochs,
            batch_size=128,
            optimizer="sgd",
            lr=0.05,
            nesterov=True,
            weight_decay=5e-4,
            schedule="cosine",
        )
        t = task(range(10), cuda, n=n)
        if cuda.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fit(t, method=ce, params={}, config=config)
        seconds = time.perf_counter() - start
        acc = 100 * result.test_acc_at_best_val
        print(
            f"[4] {model_name} {hidden}, 10 seeds x {epochs} epochs of {int(0.9 * n)} 32x32 images: "
            f"{seconds:.1f} s; test acc at best noisy val {acc.mean():.1f} ± "
            f"{acc.std():.1f} (chance {100 / K:.0f})"
        )


if __name__ == "__main__":
    main()
