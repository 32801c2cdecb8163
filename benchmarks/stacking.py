"""When does stacking members pay? Times the engine at several chunk sizes and prints
seeds per minute (run it on each device whose rule you want to check).

    python benchmarks/stacking.py [--device cuda] [--seeds 100]

For each model and input (the MLP on flat digits-sized vectors, the CNN on 8x8 and on
28x28 images; synthetic data, 2,000 samples, 128 a batch, 2 epochs), the same seeds
are trained in chunks of every size given: 1 is one member at a time through the same
code path, `--seeds` is the whole ensemble at once. The engine's own choice on the
device (`engine.stack_limit`) is printed beside them.
"""

from __future__ import annotations

import argparse
import time

import torch

from noisebench import engine, get_method
from noisebench.config import TrainConfig

CASES = [
    ("mlp", (64,), (256, 256)),
    ("cnn", (1, 8, 8), (128,)),
    ("cnn", (1, 28, 28), (128,)),
]


def task_for(shape, seeds: int, device: torch.device) -> engine.Task:
    g = torch.Generator().manual_seed(0)
    n = 2000
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(10, (seeds, n), generator=g)
    order = torch.stack([torch.randperm(n, generator=g) for _ in range(seeds)])
    return engine.Task(
        x=x.to(device),
        y_noisy=y.to(device),
        train_idx=order[:, :1800].to(device),
        val_idx=order[:, 1800:].to(device),
        x_test=x[:500].to(device),
        y_test=y[0, :500].to(device),
        num_classes=10,
        seeds=list(range(seeds)),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--chunks", default="")
    args = parser.parse_args()
    device = torch.device(args.device)
    chunks = [int(c) for c in args.chunks.split(",") if c] or sorted({1, 5, args.seeds})
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, {args.seeds} seeds, 2 epochs of 1,800")
    for model, shape, hidden in CASES:
        task = task_for(shape, args.seeds, device)
        config = TrainConfig(model=model, hidden=hidden, epochs=2, batch_size=128)
        ce = get_method("ce")
        warm = task.members(slice(0, 2))  # kernels and allocator, before the clock
        engine.fit(warm, method=ce, params={}, config=config, max_members=1)
        engine.fit(warm, method=ce, params={}, config=config, max_members=2)
        for chunk in chunks:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            engine.fit(task, method=ce, params={}, config=config, max_members=chunk)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            print(
                f"{model} {shape}: chunk {chunk:>3}: {seconds:7.2f} s, "
                f"{60 * args.seeds / seconds:8.0f} seeds/min"
            )
        print(
            f"{model} {shape}: the engine picks chunks of {engine.stack_limit(task, config)}"
        )


if __name__ == "__main__":
    main()
