"""Throughput: the noisebench engine against a typical research training loop.

The same experiment two ways, one after the other: digits, MLP 64-256-256-10, 40%
symmetric noise, label smoothing 0.1, Adam lr 1e-3, batch 128, 100 epochs, N seeds.

  (a) the typical way: a Dataset returning one sample per __getitem__, a shuffling
      DataLoader, one seed after another, a per-batch `.item()` for logging;
  (b) `noisebench evaluate`, as a subprocess: the whole command, start-up, data loading,
      metrics and all, training every seed at once.

Both train on the very same noisy labels and splits. Prints runs/minute, their ratio,
mean accuracies, and the fraction of the machine's `torch.mm` GFLOP/s each reaches.

    python benchmarks/throughput.py --seeds 20 [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from noisebench.data import load_dataset
from noisebench.experiment import draw_noise
from noisebench.noise import transition_matrix

HIDDEN, EPOCHS, BATCH, LR, SMOOTHING, NOISE = (256, 256), 100, 128, 1e-3, 0.1, 0.4


def matmul_gflops(device: torch.device, size: int = 1024, reps: int = 50) -> float:
    """Best-of float32 `torch.mm` throughput of this machine."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(5):
        a @ b
    best = float("inf")
    for _ in range(5):
        _sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * size**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class OneSample(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def typical_run(seed: int, x, noisy, train, val, x_test, y_test, device) -> float:
    """One seed, the way most noisy-label repositories train."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(x.shape[1], HIDDEN[0]),
        nn.ReLU(),
        nn.Linear(HIDDEN[0], HIDDEN[1]),
        nn.ReLU(),
        nn.Linear(HIDDEN[1], 10),
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loader = torch.utils.data.DataLoader(
        OneSample(x[train], noisy[train]), batch_size=BATCH, shuffle=True
    )
    for _ in range(EPOCHS):
        model.train()
        running = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb, label_smoothing=SMOOTHING)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item()
        model.eval()
        with torch.no_grad():
            (
                model(x[val].to(device)).argmax(1) == noisy[val].to(device)
            ).float().mean().item()
    with torch.no_grad():
        return (
            (model(x_test.to(device)).argmax(1) == y_test.to(device))
            .float()
            .mean()
            .item()
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--skip-loop", action="store_true", help="only time the engine")
    args = parser.parse_args()
    device = torch.device(args.device)

    ds = load_dataset("digits")
    t = transition_matrix("symmetric", ds.num_classes, NOISE)
    draws = [draw_noise(ds, t, "exact", seed, 0.1) for seed in range(args.seeds)]
    n_train = len(draws[0][1])
    sizes = [ds.x.shape[1], *HIDDEN, ds.num_classes]
    forward_flops = sum(2 * a * b for a, b in itertools.pairwise(sizes))
    run_flops = 3 * forward_flops * n_train * EPOCHS
    peak = matmul_gflops(device)
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(
        f"torch.mm 1024^2 float32: {peak:.1f} GFLOP/s; one run = {run_flops / 1e9:.1f} GFLOP "
        f"({n_train} samples x {EPOCHS} epochs)"
    )

    results = {}
    if not args.skip_loop:
        x, x_test, y_test = (
            torch.as_tensor(ds.x),
            torch.as_tensor(ds.x_test),
            torch.as_tensor(ds.y_test),
        )
        accs = []
        start = time.perf_counter()
        for seed, (noisy, train, val) in enumerate(draws):
            accs.append(
                typical_run(
                    seed, x, torch.as_tensor(noisy), train, val, x_test, y_test, device
                )
            )
        results["(a) DataLoader loop"] = (time.perf_counter() - start, accs)

    command = [
        sys.executable,
        "-m",
        "noisebench.cli",
        "evaluate",
        "--method",
        "ls",
        "--param",
        f"smoothing={SMOOTHING}",
        "--noise",
        str(NOISE),
        "--seeds",
        str(args.seeds),
        "--device",
        args.device,
        "--no-record",
        "--json",
    ]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    runs = json.loads(out.stdout)["runs"]
    results["(b) noisebench evaluate"] = (wall, [r["test_acc"] for r in runs])
    train_seconds = (
        runs[0]["wall_time_s"] * args.seeds if "wall_time_s" in runs[0] else None
    )

    print(f"\n{args.seeds} seeds")
    print(
        f"{'variant':26} {'wall s':>8} {'runs/min':>9} {'of mm peak':>11} {'test acc':>14}"
    )
    for name, (seconds, accs) in results.items():
        gflops = args.seeds * run_flops / seconds / 1e9
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(
            f"{name:26} {seconds:8.1f} {60 * args.seeds / seconds:9.1f} {gflops / peak:10.0%} "
            f"{100 * statistics.fmean(accs):7.2f} ± {100 * spread:4.2f}"
        )
    if train_seconds:
        gflops = args.seeds * run_flops / train_seconds / 1e9
        print(
            f"{'  engine training only':26} {train_seconds:8.1f} {60 * args.seeds / train_seconds:9.1f} "
            f"{gflops / peak:10.0%}"
        )
    if len(results) == 2:
        (loop_s, _), (engine_s, _) = results.values()
        print(
            f"\nspeed-up {loop_s / engine_s:.2f}x (engine wall time = {engine_s / loop_s:.2f} of the loop's)"
        )


if __name__ == "__main__":
    main()
