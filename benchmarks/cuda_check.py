"""Checks the CUDA path of the engine and prints its figures (run on a machine with a GPU).

    python benchmarks/cuda_check.py [--seeds 100]

1. The README's main job (ls 0.1, digits, 40% symmetric noise, 100 epochs) with every
   seed in one stacked model on the GPU: wall time, runs per minute, accuracy; and the
   first three seeds on the CPU, whose accuracy must agree within the seed spread (the
   GPU runs the forward in bf16, so members are not bitwise equal to CPU runs).
2. Determinism on the GPU: the same command twice.
3. Independence on the GPU: member s of a 20-member ensemble against seed s alone.
4. Divergence per member on the GPU: backward correction at 85% noise with SGD.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import torch

from noisebench.data import resolve_card
from noisebench.experiment import RunSpec, prepare, run, train_config_for
from noisebench.noise import NoiseSpec


def spec(method, rate, seeds, device, params=None, **train) -> RunSpec:
    return RunSpec(
        method=method,
        params=params or {},
        dataset="digits",
        noise=NoiseSpec(kind="symmetric", rate=rate),
        train=train_config_for(resolve_card("digits"), **train),
        seeds=tuple(seeds),
        device=device,
    )


def timed(s: RunSpec):
    prepared = prepare(s)
    if s.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    records = run(prepared)
    return records, time.perf_counter() - start


def acc(records, key="test_acc") -> str:
    values = [100 * r[key] for r in records if r["status"] == "ok"]
    spread = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):.1f} ± {spread:.1f} (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=100)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")

    ls = {"smoothing": 0.1}
    timed(
        spec("ls", 0.4, range(2), "cuda", ls, epochs=2)
    )  # warm-up: CUDA context, kernels
    gpu, seconds = timed(spec("ls", 0.4, range(args.seeds), "cuda", ls))
    print(
        f"[1] {args.seeds} seeds x 100 epochs on cuda: {seconds:.1f} s, "
        f"{60 * args.seeds / seconds:.0f} runs/min; test acc last {acc(gpu)}, "
        f"at best noisy val {acc(gpu, 'test_acc_at_best_val')}"
    )
    cpu, seconds = timed(spec("ls", 0.4, range(3), "cpu", ls))
    print(f"    3 seeds on cpu: {seconds:.1f} s; test acc last {acc(cpu)}")
    print(f"    the same 3 seeds on cuda: test acc last {acc(gpu[:3])}")

    a, _ = timed(spec("ls", 0.4, range(5), "cuda", ls, epochs=20))
    b, _ = timed(spec("ls", 0.4, range(5), "cuda", ls, epochs=20))
    same = all(x["val_acc_curve"] == y["val_acc_curve"] for x, y in zip(a, b))
    diff = max(abs(x["test_acc"] - y["test_acc"]) for x, y in zip(a, b))
    print(
        f"[2] same command twice on cuda: curves identical {same}, max test acc diff {diff}"
    )

    together, _ = timed(spec("ls", 0.4, range(20), "cuda", ls, epochs=20))
    worst = 0.0
    for s in (0, 7, 19):
        (alone,) = timed(spec("ls", 0.4, [s], "cuda", ls, epochs=20))[0]
        worst = max(
            worst,
            max(
                abs(u - v)
                for u, v in zip(alone["val_acc_curve"], together[s]["val_acc_curve"])
            ),
            abs(alone["test_acc"] - together[s]["test_acc"]),
        )
    print(
        f"[3] member of 20 vs alone on cuda: max |diff| of val curve and test acc {worst:.4f}"
    )

    div, _ = timed(
        spec("backward", 0.85, range(8), "cuda", optimizer="sgd", lr=0.01, epochs=7)
    )
    print(
        f"[4] backward 0.85, sgd lr 0.01, 7 epochs on cuda: "
        f"{dict(Counter(r['status'] for r in div))}, "
        f"errors {sorted({r['error'] for r in div if r['error']})}"
    )


if __name__ == "__main__":
    main()
