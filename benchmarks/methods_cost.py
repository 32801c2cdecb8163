"""What each method costs the engine: training time per epoch, relative to cross-entropy.

The same experiment for every registered method (or those named): digits, the card's
MLP, 40% symmetric noise, the method's default params, S seeds in one stacked model.
Per-sample state (ELR) adds a gather and a scatter per batch; paired methods
(Co-teaching) train two networks per seed, so about twice the work. Prints seconds per
epoch of the whole run, metrics included (median of R repeats, after one warm-up run),
and the ratio to `ce`.

    python benchmarks/methods_cost.py [--seeds 5] [--epochs 10] [--repeat 3] [elr coteaching ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from noisebench import get_method, list_methods
from noisebench.data import resolve_card
from noisebench.experiment import RunSpec, prepare, run, train_config_for
from noisebench.noise import NoiseSpec


def seconds_per_epoch(name: str, seeds: int, epochs: int, repeat: int) -> float:
    """The whole run (training, then every metric), per epoch, as `evaluate` pays it."""
    spec = RunSpec(
        method=name,
        params=dict(get_method(name).defaults),
        dataset="digits",
        noise=NoiseSpec(kind="symmetric", rate=0.4),
        train=train_config_for(resolve_card("digits"), epochs=epochs),
        seeds=tuple(range(seeds)),
    )
    prepared = prepare(spec)
    times = []
    for _ in range(repeat + 1):  # the first run warms up allocators and kernels
        start = time.perf_counter()
        run(prepared)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="*", help="default: every registered method")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    names = args.methods or list_methods()
    if "ce" not in names:
        names = ["ce", *names]
    print(
        f"digits MLP, 40% symmetric noise, {args.seeds} seeds stacked, {args.epochs} "
        f"epochs, median of {args.repeat}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    cost = {
        n: seconds_per_epoch(n, args.seeds, args.epochs, args.repeat) for n in names
    }
    print(f"{'method':<16}{'s/epoch':>10}{'vs ce':>8}  needs")
    for name in names:
        needs = ", ".join(get_method(name).needs()) or "-"
        print(f"{name:<16}{cost[name]:>10.3f}{cost[name] / cost['ce']:>8.2f}  {needs}")


if __name__ == "__main__":
    main()
