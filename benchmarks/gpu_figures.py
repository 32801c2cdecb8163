"""GPU figures of the image models, through `engine.fit` (bf16 autocast and all).

    export PYTHONPATH=$PWD; python3 benchmarks/gpu_figures.py [--out figures.json]
    python benchmarks/gpu_figures.py --quick --device cpu    # tiny sizes, a smoke test

On synthetic uint8 images (`images.synthetic_images`; 10 classes, 40% symmetric noise,
a 10% noisy validation split, batch 128), one `engine.fit` per row, with the chunk size
the engine chooses itself:

- resnet32 (16, 32, 64) at 1 and 20 members and resnet34 (64, 128, 256, 512) at 1 and
  5 members on 3x32x32 (crop padding 4 + flip; SGD lr 0.1, Nesterov momentum 0.9,
  weight decay 5e-4): seconds per epoch (epoch 1 is the warm-up; epochs 2.. are timed,
  each training and validating every member, with `torch.cuda.synchronize()`), and
  peak memory (`torch.cuda.max_memory_allocated`, reset between rows) during those
  epochs and over the whole fit (model build and the final evaluation included);
- 20 one-member runs of resnet32 (`max_members=1`): wall time against the stacked fit;
- cnn (hidden 128) at 1 and 100 members on 1x28x28 (crop padding 2; Adam lr 1e-3):
  seeds per minute, whole fits; and the 100 in one chunk (`max_members=100`) where the
  engine's memory estimate (`est GB/mbr`, `engine.bytes_per_member`) splits them.

Each row is printed, and the JSON (`--out`) rewritten, as soon as it is measured, so a
run cut short keeps what it finished; rows that would start after `--deadline` seconds
are skipped. Imports only what the engine path needs (no optuna, no datasets).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # images.py, beside this file

import images

from noisebench import engine, get_method
from noisebench.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Case:
    model: str
    hidden: tuple[int, ...]
    members: int
    setup: images.Setup
    max_members: int | None = None  # None: the engine's own choice

    @property
    def label(self) -> str:
        runs = {1: " (one at a time)", self.members: " (one chunk)"}
        return f"{self.model} x{self.members}{runs.get(self.max_members, '')}"


def cases(quick: bool) -> list[Case]:
    d, c = images.DIGITS, images.CIFAR
    r32 = (4, 8, 16) if quick else (16, 32, 64)
    # quick widths of 16 and up: torch 2.13's CPU backward of a 1x1 stride-2
    # convolution on channels_last input with 4 or 8 channels and some batch sizes
    # (115, 127, 13, 7) crashes the process (resnet34's projection shortcuts)
    r34 = (16, 16, 16, 16) if quick else (64, 128, 256, 512)
    many, stacked = (3, 2) if quick else (100, 20)
    return [
        Case("cnn", (128,), 1, d),
        Case("cnn", (128,), many, d),
        # only where the engine's memory estimate splits them (see `main`)
        Case("cnn", (128,), many, d, max_members=many),
        Case("resnet32", r32, 1, c),
        Case("resnet32", r32, stacked, c),
        Case("resnet34", r34, 1, c),
        Case("resnet34", r34, 2 if quick else 5, c),
        # last: the longest, and the best predicted (members x the one-member fit)
        Case("resnet32", r32, stacked, c, max_members=1),
    ]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 1e9


def measure(case: Case, data: images.Data, epochs: int, device: torch.device) -> dict:
    """One `engine.fit` of `case`; its figures."""
    config = TrainConfig(
        model=case.model,
        hidden=case.hidden,
        epochs=epochs,
        batch_size=images.BATCH,
        val_fraction=images.VAL_FRACTION,
        **case.setup.optimizer,
    )
    task = images.engine_task(data, case.setup, device, slice(case.members))
    chunks = images.chunking(data, case.setup, config, device, slice(case.members))
    chunk = case.max_members or chunks["chosen"]
    # per chunk: when each epoch ended (after its validation), device synced
    ends: list[list[float]] = []
    peaks = {"before": 0.0, "epochs": 0.0}

    def on_epoch(epoch: int, _val) -> None:
        sync(device)
        now = time.perf_counter()
        if epoch == 1:
            ends.append([])
            if device.type == "cuda" and len(ends) == 1:  # epochs 2.. of chunk 1
                peaks["before"] = torch.cuda.max_memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
        ends[-1].append(now)
        if device.type == "cuda" and len(ends) == 1 and epoch == epochs:
            peaks["epochs"] = torch.cuda.max_memory_allocated(device)

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    result = engine.fit(
        task,
        method=get_method("ls"),
        params={"smoothing": images.SMOOTHING},
        config=config,
        on_epoch=on_epoch,
        max_members=case.max_members,
    )
    sync(device)
    wall = time.perf_counter() - start
    # one epoch of every member: each chunk's epochs 2.., averaged, summed over chunks
    timed = [(e[-1] - e[0]) / (len(e) - 1) for e in ends if len(e) > 1]
    epoch_s = sum(timed) if len(timed) == len(ends) else None
    acc = (result.test_logits.argmax(-1) == data.y_test).float().mean()
    row = {
        "case": case.label,
        "model": case.model,
        "hidden": list(case.hidden),
        "shape": list(case.setup.shape),
        "members": case.members,
        "chunk": chunk,
        "chunks": len(ends),
        "engine_limits": chunks,
        "epochs": epochs,
        "train_samples": int(task.train_idx.shape[1]),
        "epoch_s": epoch_s,
        "fit_s": wall,
        "seeds_per_min": 60 * case.members / wall,
        "peak_epochs_gb": peaks["epochs"] / 1e9 if device.type == "cuda" else None,
        "peak_fit_gb": (
            max(peaks["before"] / 1e9, peak_gb(device))
            if device.type == "cuda"
            else None
        ),
        "estimate_gb_per_member": chunks["bytes_per_member"] / 1e9,
        "test_acc": float(acc),
        # members whose loss or weights went non-finite (their accuracy is chance)
        "diverged": int((result.diverged_at >= 0).sum()),
    }
    return row


def fmt(value, spec: str) -> str:
    width = int(spec.split(".")[0] or 0)
    return f"{'n/a':>{width}}" if value is None else format(value, spec)


HEADER = (
    f"{'case':28} {'chunk':>9} {'epoch s':>8} {'fit s':>8} {'seeds/min':>10} "
    f"{'peak GB epochs':>14} {'peak GB fit':>12} {'est GB/mbr':>10} {'test acc':>8}"
)


def line(row: dict) -> str:
    chunk = f"{row['chunk']}x{row['chunks']}"
    return (
        f"{row['case']:28} {chunk:>9} {fmt(row['epoch_s'], '8.2f')} "
        f"{row['fit_s']:8.1f} {row['seeds_per_min']:10.1f} "
        f"{fmt(row['peak_epochs_gb'], '14.2f')} {fmt(row['peak_fit_gb'], '12.2f')} "
        f"{row['estimate_gb_per_member']:10.2f} {100 * row['test_acc']:8.1f}"
        + (f"  ({row['diverged']} diverged)" if row["diverged"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU test)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--out",
        default=str(Path(os.environ["OUT"], "gpu_figures.json"))
        if "OUT" in os.environ
        else "",
        help="write the table as JSON here (default: $OUT/gpu_figures.json if $OUT is set)",
    )
    parser.add_argument("--samples", type=int, help="training pool (default 10,000)")
    parser.add_argument("--epochs", type=int, help="per fit, >= 2 (default 3)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=300.0,
        help="skip rows that would start after this many seconds",
    )
    args = parser.parse_args()
    began = time.perf_counter()
    device = engine.resolve_device(args.device)
    samples = args.samples or (256 if args.quick else 10_000)
    epochs = args.epochs or (2 if args.quick else 3)
    test = 64 if args.quick else 1000
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    header = {
        "device": name,
        "torch": torch.__version__,
        "samples": samples,
        "test": test,
        "epochs": epochs,
        "batch": images.BATCH,
        "sgd": images.SGD,
        "adam": images.ADAM,
        "nesterov_built": nesterov_built(),
    }
    print(
        f"{name}, torch {torch.__version__}; pool {samples} "
        f"({samples - round(images.VAL_FRACTION * samples)} train a member), "
        f"{test} test, {epochs} epochs a fit (epoch 1 untimed), batch {images.BATCH}; "
        f"engine's SGD nesterov={header['nesterov_built']}",
        flush=True,
    )
    all_cases = cases(args.quick)
    data = {  # one pool per image shape, with noise for its largest row's seeds
        shape: images.make_data(
            samples,
            test,
            shape,
            max(c.members for c in all_cases if c.setup.shape == shape),
        )
        for shape in {c.setup.shape for c in all_cases}
    }
    warm_up(device)
    print(HEADER, flush=True)
    rows, skipped = [], []
    for case in all_cases:
        if case.max_members == case.members > 1:
            config = TrainConfig(model=case.model, hidden=case.hidden)
            chosen = images.chunking(
                data[case.setup.shape], case.setup, config, device, slice(case.members)
            )["chosen"]
            if chosen >= case.members:
                continue  # the engine's own choice, measured already
        elapsed = time.perf_counter() - began
        guess = estimate(case, rows)
        if elapsed + guess > args.deadline:
            skipped.append(case.label)
            print(
                f"{case.label:28} skipped: {elapsed:.0f} s gone, about {guess:.0f} s "
                f"more, deadline {args.deadline:.0f} s",
                flush=True,
            )
            continue
        row = measure(case, data[case.setup.shape], epochs, device)
        rows.append(row)
        print(line(row), flush=True)
        write(args.out, header, rows, skipped)
    stacked = [r for r in rows if r["model"] == "resnet32" and r["members"] > 1]
    if len(stacked) == 2 and None not in (stacked[0]["epoch_s"], stacked[1]["epoch_s"]):
        together, alone = stacked
        print(
            f"\nresnet32 x{together['members']}: the engine's fit (chunks of "
            f"{together['chunk']}) {together['fit_s']:.1f} s, "
            f"{together['members']} one-member fits {alone['fit_s']:.1f} s: "
            f"{alone['fit_s'] / together['fit_s']:.2f}x (per epoch "
            f"{alone['epoch_s'] / together['epoch_s']:.2f}x)"
        )
    cnn = [r for r in rows if r["model"] == "cnn"]
    for row in cnn[1:]:
        if cnn[0]["members"] == 1:
            print(
                f"{row['case']} against cnn x1: "
                f"{row['seeds_per_min'] / cnn[0]['seeds_per_min']:.2f}x seeds per minute"
            )
    write(args.out, header, rows, skipped)
    print(f"total {time.perf_counter() - began:.0f} s")


def nesterov_built() -> bool:
    """Whether `engine.make_optimizer` gives the SGD config Nesterov momentum."""
    config = TrainConfig(batch_size=images.BATCH, **images.SGD)
    optimizer = engine.make_optimizer(config, [torch.nn.Parameter(torch.zeros(1))])
    return bool(getattr(optimizer, "nesterov", False))


def warm_up(device: torch.device) -> None:
    """CUDA context, kernels and allocator, before any clock."""
    for setup, model, hidden in (
        (images.DIGITS, "cnn", (128,)),
        (images.CIFAR, "resnet32", (4, 8, 16)),
    ):
        config = TrainConfig(
            model=model, hidden=hidden, epochs=1, batch_size=images.BATCH
        )
        engine.fit(
            images.engine_task(
                images.make_data(256, 64, setup.shape, 2), setup, device
            ),
            method=get_method("ls"),
            params={"smoothing": images.SMOOTHING},
            config=config,
        )
    sync(device)


def estimate(case: Case, rows: list[dict]) -> float:
    """Seconds this row will likely take, from the rows of its model measured so far
    (0 if none): one-member fits add up; a stacked fit of m times the members of the
    largest one measured is guessed at sqrt(m) times its time (on a GPU, stacking
    costs less than linear time until the device is full)."""
    alike = [r for r in rows if r["model"] == case.model]
    if not alike:
        return 0.0
    if case.max_members == 1:
        one = min(alike, key=lambda r: r["members"])
        return case.members / one["members"] * one["fit_s"]
    ref = max(alike, key=lambda r: (r["members"], r["fit_s"]))
    return max(1.0, case.members / ref["members"]) ** 0.5 * ref["fit_s"]


def write(path: str, header: dict, rows: list[dict], skipped: list[str]) -> None:
    if path:
        Path(path).write_text(
            json.dumps({**header, "rows": rows, "skipped": skipped}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
