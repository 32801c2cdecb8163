"""Image throughput: the engine's uint8-on-device path against a typical research loop.

    python benchmarks/throughput.py images --seeds 20 [--model cnn] [--device cuda]
        [--epochs E] [--samples N] [--hidden 16,32,64] [--workers W] [--repeat R]

Synthetic images that a CNN can learn (each class a few strokes at its own places, in
its own colours; every sample shifted, jittered, thickened and lit at random, on a
noisy background), stored as uint8: 1x28x28 for `cnn` (random crop with zero padding 2,
no flip, as for digits), 3x32x32 for the ResNets (padding 4 and horizontal flip, as for
CIFAR). 40% symmetric noise and a 10% noisy validation split, drawn once per seed; label
smoothing 0.1; batch 128; the same epochs everywhere. Three ways to train every seed:

  (a) the typical way: a Dataset returning one sample per `__getitem__`, augmented and
      normalized there (torch ops on the uint8 tensor, what torchvision's RandomCrop,
      RandomHorizontalFlip, ToTensor and Normalize do, minus PIL), a shuffling
      DataLoader, one seed after another, the same network as a plain `nn.Sequential`
      (`cnn`) or `nn.Module` (`resnet32`), torch.optim, per-batch `.item()` logging and
      per-epoch validation;
  (b) `engine.fit` on a `Task` whose pixels live on the device, with the chunk size the
      engine chooses itself (`engine.stack_limit` and its memory limit, printed);
  (c) `engine.fit` one member at a time (`max_members=1`).

All three train on the very same noisy labels and splits, from the same pixels and
normalization. They are timed block by block (`main`), so that a shared machine's
drifting speed falls on all three alike. Prints runs per minute, the ratios (b)/(a) and (b)/(c), the clean test
accuracy of the last epoch's model (mean ± std over seeds), and how much of the
engine's wall time is evaluation: every epoch on the validation split, and once at the
end on the whole pool and the test set (the records' pool logits, and the test accuracy
of the final and of the best-validation model), where the loop scores only the test set
with its final model.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from noisebench import engine, get_method
from noisebench.config import TrainConfig
from noisebench.inputs import Inputs
from noisebench.models import get_model
from noisebench.noise import corrupt, transition_matrix

NOISE, SMOOTHING, BATCH, VAL_FRACTION, CLASSES = 0.4, 0.1, 128, 0.1, 10


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a model family is benchmarked on, and how it is trained."""

    shape: tuple[int, int, int]
    crop_padding: int
    flip: bool
    optimizer: dict  # TrainConfig fields


ADAM = {"optimizer": "adam", "lr": 1e-3}
# SGD with Nesterov momentum, as CIFAR ResNets are trained (nesterov where the config
# has the field)
SGD = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}
if any(f.name == "nesterov" for f in dataclasses.fields(TrainConfig)):
    SGD["nesterov"] = True
OPTIMIZER_NAMES = ("optimizer", "nesterov")
DIGITS = Setup((1, 28, 28), crop_padding=2, flip=False, optimizer=ADAM)
CIFAR = Setup((3, 32, 32), crop_padding=4, flip=True, optimizer=SGD)


def setup_for(model: str) -> Setup:
    return DIGITS if model == "cnn" else CIFAR


# ---------------------------------------------------------------- synthetic images


def synthetic_images(
    n: int, shape: tuple[int, int, int], *, seed: int, classes: int = CLASSES
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, C, H, W) uint8 images and their (n,) balanced clean labels.

    The classes (three strokes each, with a colour per stroke) come from a fixed
    generator, so a training pool and a test set drawn with different `seed`s share
    them; `seed` draws the samples: their labels, a shift of up to 10% of the side,
    endpoint jitter, stroke width and brightness, background colour and pixel noise.
    """
    c, h, w = shape
    strokes = 3
    side = torch.tensor([h, w], dtype=torch.float32)
    classes_g = torch.Generator().manual_seed(1_000_003 * c + 1009 * h + w)
    ends = (0.15 + 0.7 * torch.rand(classes, strokes, 2, 2, generator=classes_g)) * side
    colours = 0.5 + 0.5 * torch.rand(classes, strokes, c, generator=classes_g)
    if c == 1:
        colours = torch.ones_like(colours)

    g = torch.Generator().manual_seed(seed)
    y = torch.randperm(n, generator=g) % classes
    pixels = torch.stack(
        torch.meshgrid(
            torch.arange(h, dtype=torch.float32),
            torch.arange(w, dtype=torch.float32),
            indexing="ij",
        ),
        -1,
    ).view(-1, 2)  # (H·W, 2)
    out = torch.empty(n, c, h, w, dtype=torch.uint8)
    for lo in range(0, n, 1024):  # in pieces: (piece, strokes, H·W) floats
        yb = y[lo : lo + 1024]
        m = len(yb)
        shift = (torch.rand(m, 1, 1, 2, generator=g) - 0.5) * 0.2 * side
        jitter = torch.randn(m, strokes, 2, 2, generator=g) * 0.03 * side
        seg = ends[yb] + shift + jitter  # (m, strokes, 2 ends, 2)
        a, b = seg[:, :, 0, None, :], seg[:, :, 1, None, :]  # (m, strokes, 1, 2)
        ab = b - a
        t = ((pixels - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-6)
        nearest = a + t.clamp(0, 1)[..., None] * ab
        d2 = ((pixels - nearest) ** 2).sum(-1)  # (m, strokes, H·W)
        width = 0.7 + 0.7 * torch.rand(m, 1, 1, generator=g)
        ink = torch.exp(-d2 / (2 * width**2))
        light = 0.7 + 0.3 * torch.rand(m, 1, 1, generator=g)
        # (m, strokes, C, H·W): each stroke in its colour; strokes overlap as a maximum
        drawn = (light * ink)[:, :, None, :] * colours[yb][..., None]
        image = drawn.amax(1)
        background = 0.3 * torch.rand(m, c, 1, generator=g)
        noise = 0.12 * torch.randn(m, c, h * w, generator=g)
        image = (background + image + noise).clamp(0, 1)
        out[lo : lo + m] = (255 * image).round().to(torch.uint8).view(m, c, h, w)
    return out, y


@dataclasses.dataclass
class Data:
    """A pool with every seed's noisy labels and splits, and a clean test set (CPU)."""

    x: torch.Tensor  # (N, C, H, W) uint8
    y: torch.Tensor  # (N,) clean
    y_noisy: torch.Tensor  # (S, N)
    train_idx: torch.Tensor  # (S, n_train)
    val_idx: torch.Tensor  # (S, n_val)
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: list[float]  # per channel, of the pool's pixels in [0, 1]
    std: list[float]


def make_data(
    samples: int, test: int, shape, seeds: int, *, noise: float = NOISE
) -> Data:
    """The pool, test set, and per seed s: noisy labels (noisebench's exact symmetric
    noise, noise seed s) and a random split of the pool (10% noisy validation)."""
    x, y = synthetic_images(samples, shape, seed=0)
    x_test, y_test = synthetic_images(test, shape, seed=1)
    t = transition_matrix("symmetric", CLASSES, noise)
    y_noisy = torch.stack([corrupt(y, t, seed=s) for s in range(seeds)])
    n_val = max(1, round(VAL_FRACTION * samples))
    orders = torch.stack(
        [
            torch.randperm(samples, generator=torch.Generator().manual_seed(10_000 + s))
            for s in range(seeds)
        ]
    )
    pixels = x.float().div(255).transpose(0, 1).flatten(1)  # (C, N·H·W)
    return Data(
        x=x,
        y=y,
        y_noisy=y_noisy,
        train_idx=orders[:, n_val:],
        val_idx=orders[:, :n_val],
        x_test=x_test,
        y_test=y_test,
        mean=pixels.mean(1).tolist(),
        std=pixels.std(1).tolist(),
    )


def engine_task(
    data: Data, setup: Setup, device: torch.device, members: slice = slice(None)
) -> engine.Task:
    """The engine's task for these seeds: the pixels on the device as uint8, augmented
    there."""
    return engine.Task(
        x=data.x.to(device),
        y_noisy=data.y_noisy[members].to(device),
        train_idx=data.train_idx[members].to(device),
        val_idx=data.val_idx[members].to(device),
        x_test=data.x_test.to(device),
        y_test=data.y_test.to(device),
        num_classes=CLASSES,
        seeds=list(range(len(data.y_noisy)))[members],
        inputs=Inputs.for_pixels(
            data.mean,
            data.std,
            crop_padding=setup.crop_padding,
            flip=setup.flip,
            device=device,
        ),
    )


# --------------------------------------------------------------- (a) the typical way


class OneSample(torch.utils.data.Dataset):
    """One augmented, normalized sample per `__getitem__`."""

    def __init__(self, x, y, mean, std, *, padding: int = 0, flip: bool = False):
        self.x, self.y, self.padding, self.flip = x, y, padding, flip
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        img = self.x[i]  # (C, H, W) uint8
        if self.padding:  # RandomCrop(size, padding): zero pad, then crop at random
            _, h, w = img.shape
            img = F.pad(img, (self.padding,) * 4)
            top = int(torch.randint(0, 2 * self.padding + 1, (1,)))
            left = int(torch.randint(0, 2 * self.padding + 1, (1,)))
            img = img[:, top : top + h, left : left + w]
        if self.flip and torch.rand(1) < 0.5:  # RandomHorizontalFlip
            img = img.flip(-1)
        return (img.float() / 255 - self.mean) / self.std, self.y[i]


def plain_cnn(shape, hidden, classes: int) -> nn.Module:
    """models/cnn.py's network for one member, as most repositories write it."""
    c, h, w = shape
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * (h // 4) * (w // 4), hidden[0]),
        *[
            m
            for a, b in itertools.pairwise(hidden)
            for m in (nn.ReLU(), nn.Linear(a, b))
        ],
        nn.ReLU(),
        nn.Linear(hidden[-1], classes),
    )


class PlainBlock(nn.Module):
    """A basic block with option A's zero-padding shortcut (akamaster's CIFAR code)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, extra = stride, c_out - c_in
        self.pad = (0, 0, 0, 0, extra // 2, extra - extra // 2)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x
        if self.stride != 1 or any(self.pad):
            skip = F.pad(x[:, :, :: self.stride, :: self.stride], self.pad)
        return F.relu(out + skip)


def plain_resnet32(shape, hidden, classes: int) -> nn.Module:
    """models/resnet.py's resnet32 for one member, as most repositories write it."""
    layers, c = [], hidden[0]
    for stage, width in enumerate(hidden):
        for i in range(5):
            layers.append(PlainBlock(c, width, 2 if stage and not i else 1))
            c = width
    model = nn.Sequential(
        nn.Conv2d(shape[0], hidden[0], 3, padding=1, bias=False),
        nn.BatchNorm2d(hidden[0]),
        nn.ReLU(),
        *layers,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c, classes),
    )
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


PLAIN = {"cnn": plain_cnn, "resnet32": plain_resnet32}


def typical_run(seed: int, data: Data, setup: Setup, config, args, device) -> float:
    """One seed, the way most noisy-label repositories train; its clean test accuracy."""
    torch.manual_seed(seed)
    model = PLAIN[config.model](setup.shape, config.hidden, CLASSES).to(device)
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=getattr(config, "nesterov", False),
        )
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    noisy, train, val = data.y_noisy[seed], data.train_idx[seed], data.val_idx[seed]
    norm = (data.mean, data.std)
    aug = {"padding": setup.crop_padding, "flip": setup.flip}
    loader = torch.utils.data.DataLoader(
        OneSample(data.x[train], noisy[train], *norm, **aug),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    val_loader = torch.utils.data.DataLoader(
        OneSample(data.x[val], noisy[val], *norm), batch_size=512
    )
    autocast = engine.mixed_precision(device) if args.loop_amp else _off(device)
    for _ in range(config.epochs):
        model.train()
        running = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            with autocast:
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=SMOOTHING)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item()
        model.eval()
        correct = 0
        with torch.no_grad(), autocast:
            for xb, yb in val_loader:
                correct += (
                    (model(xb.to(device)).argmax(1) == yb.to(device)).sum().item()
                )
    test_loader = torch.utils.data.DataLoader(
        OneSample(data.x_test, data.y_test, *norm), batch_size=512
    )
    correct = 0
    with torch.no_grad(), autocast:
        for xb, yb in test_loader:
            correct += (model(xb.to(device)).argmax(1) == yb.to(device)).sum().item()
    return correct / len(data.y_test)


def _off(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, enabled=False)


# ------------------------------------------------------------------------ timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loop(data, seeds: range, setup, config, args, device):
    """Wall seconds of the typical loop over these seeds, and their test accuracies."""
    sync(device)
    start = time.perf_counter()
    accs = [typical_run(s, data, setup, config, args, device) for s in seeds]
    sync(device)
    return time.perf_counter() - start, accs


def time_engine(
    data, seeds: range, setup, config, device, max_members: int | None
) -> tuple[float, list[float], dict[str, float]]:
    """Wall seconds of `engine.fit` on these seeds (the pixels' copy to the device
    included), each member's clean test accuracy after the last epoch, and the seconds
    of that wall spent evaluating (`evaluation_clock`)."""
    sync(device)
    with evaluation_clock(device) as spent:
        start = time.perf_counter()
        task = engine_task(data, setup, device, slice(seeds.start, seeds.stop))
        result = engine.fit(
            task,
            method=get_method("ls"),
            params={"smoothing": SMOOTHING},
            config=config,
            max_members=max_members,
        )
        sync(device)
        wall = time.perf_counter() - start
    accs = (result.test_logits.argmax(-1) == data.y_test).float().mean(-1)
    return wall, accs.tolist(), spent


@contextlib.contextmanager
def evaluation_clock(device: torch.device):
    """Seconds `engine.fit` spends in `engine.predict` while the block runs: on each
    member's validation split every epoch ("validation"), and at the end on the whole
    pool and the test set, with the final and with the best-validation model ("final",
    and the forward passes it made, all members together: "final_passes"). The engine
    calls the module's function by name, so it is wrapped for the block."""
    spent = {"validation": 0.0, "final": 0.0, "final_passes": 0}
    real = engine.predict

    def timed(model, x, *, shared: bool, **kwargs):
        sync(device)
        start = time.perf_counter()
        out = real(model, x, shared=shared, **kwargs)
        sync(device)
        spent["final" if shared else "validation"] += time.perf_counter() - start
        if shared:  # every member of the chunk scores all of x
            spent["final_passes"] += x.shape[0] * kwargs["members"]
        return out

    engine.predict = timed
    try:
        yield spent
    finally:
        engine.predict = real


def chunking(
    data, setup, config, device, members: slice = slice(None)
) -> dict[str, int]:
    """The chunk size `engine.fit` picks, the two limits it picks it from (as `fit`
    computes them), and its memory estimate for one member."""
    task = engine_task(data, setup, device, members)
    member = engine.bytes_per_member(task, config)
    memory = engine.available_bytes(device) // member
    stack = engine.stack_limit(task, config)
    return {
        "stack_limit": stack,
        "memory_limit": memory,
        "chosen": max(1, min(memory, stack)),
        "bytes_per_member": member,
    }


def warm_up(data, setup, config, chunk: int, loop: bool, args, device) -> None:
    """One epoch of each variant on the real data, before any clock: the CUDA context,
    and the kernels of every shape the timed runs meet (a CPU's oneDNN compiles its own
    per shape, and a first call pays for it)."""
    short = dataclasses.replace(config, epochs=1)
    time_engine(data, range(chunk), setup, short, device, chunk)
    time_engine(data, range(1), setup, short, device, 1)
    if loop:
        typical_run(0, data, setup, short, args, device)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="throughput.py images", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--model", default="cnn")
    parser.add_argument(
        "--hidden", default="", help="comma-separated (default: the model's own)"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=4000, help="training pool size")
    parser.add_argument("--test", type=int, default=1000, help="test set size")
    parser.add_argument(
        "--workers", type=int, default=0, help="the loop's DataLoader workers"
    )
    parser.add_argument(
        "--loop-amp",
        action="store_true",
        help="run the loop's forward under the engine's autocast too (bf16 on CUDA)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="time each variant this often (median)"
    )
    parser.add_argument("--skip-loop", action="store_true", help="only time the engine")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (default: torch's own)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    setup = setup_for(args.model)
    entry = get_model(args.model)
    if entry.takes != "image":
        raise SystemExit(f"model {args.model} takes {entry.takes}s, not images")
    hidden = (
        tuple(int(h) for h in args.hidden.split(","))
        if args.hidden
        else entry.default_hidden or (128,)
    )
    config = TrainConfig(
        model=args.model,
        hidden=hidden,
        epochs=args.epochs,
        batch_size=BATCH,
        val_fraction=VAL_FRACTION,
        **setup.optimizer,
    )
    data = make_data(args.samples, args.test, setup.shape, args.seeds)
    loop = args.model in PLAIN and not args.skip_loop
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    optimizer = ", ".join(
        f"{k} {v:g}" for k, v in setup.optimizer.items() if k not in OPTIMIZER_NAMES
    )
    optimizer = f"{setup.optimizer['optimizer']} ({optimizer})" + (
        " nesterov" if setup.optimizer.get("nesterov") else ""
    )
    print(
        f"device {device} ({name}), {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, load average {_load()}\n"
        f"{args.model} hidden {','.join(map(str, hidden))} on {setup.shape} uint8, "
        f"{CLASSES} classes: pool {args.samples} ({data.train_idx.shape[1]} train, "
        f"{data.val_idx.shape[1]} noisy val), {args.test} clean test; "
        f"{NOISE:.0%} symmetric noise; ls {SMOOTHING}; {optimizer}; batch {BATCH}; "
        f"{args.epochs} epochs; crop padding {setup.crop_padding}, "
        f"flip {setup.flip}; loop: {args.workers} DataLoader workers, "
        f"{'autocast' if args.loop_amp else 'float32'}"
    )
    chunks = chunking(data, setup, config, device)
    print(
        f"engine chunk size: {chunks['chosen']} members (stack_limit "
        f"{chunks['stack_limit']}, memory limit {chunks['memory_limit']}) "
        f"for {args.seeds} seeds"
    )

    names = {
        "a": "(a) DataLoader loop, seed by seed",
        "b": f"(b) engine, chunks of {min(chunks['chosen'], args.seeds)} (its own)",
        "c": "(c) engine, one member at a time",
    }
    # Timed block by block (blocks of the engine's chunk size; one block on a GPU),
    # each variant on the block in turn, in rotating order: a shared machine's speed
    # drifts from minute to minute, and this spreads the drift over all three. (b) on
    # a block is exactly one of the chunks `engine.fit` cuts all seeds into.
    chunk = min(chunks["chosen"], args.seeds)
    warm_up(data, setup, config, chunk, loop, args, device)
    blocks = [
        range(lo, min(lo + chunk, args.seeds)) for lo in range(0, args.seeds, chunk)
    ]
    keys = ["a", "b", "c"] if loop else ["b", "c"]
    limit = {"b": chunk, "c": 1}
    walls: dict[str, list[float]] = {k: [] for k in keys}
    evals: dict[str, list[dict[str, float]]] = {k: [] for k in keys if k != "a"}
    accs: dict[str, list[float]] = {}
    for r in range(args.repeat):
        total = dict.fromkeys(keys, 0.0)
        spent_all = {
            k: {"validation": 0.0, "final": 0.0, "final_passes": 0} for k in evals
        }
        accs = {k: [] for k in keys}
        for i, block in enumerate(blocks):
            turn = (i + r) % len(keys)
            for key in keys[turn:] + keys[:turn]:
                if key == "a":
                    wall, acc = time_loop(data, block, setup, config, args, device)
                else:
                    wall, acc, spent = time_engine(
                        data, block, setup, config, device, limit[key]
                    )
                    for part, seconds in spent.items():
                        spent_all[key][part] += seconds
                total[key] += wall
                accs[key].extend(acc)
        for key in keys:
            walls[key].append(total[key])
        for key, spent in spent_all.items():
            evals[key].append(spent)
        print(
            f"repeat {r + 1}: "
            + ", ".join(f"({k}) {total[k]:.1f} s" for k in keys)
            + f"; load {_load()}",
            file=sys.stderr,
            flush=True,
        )

    print(
        f"\n{args.seeds} seeds, median of {args.repeat}; load average after {_load()}"
    )
    print(
        f"{'variant':36} {'wall s':>8} {'runs/min':>9} {'test acc (last epoch)':>22}"
        f"  {'each wall s' if args.repeat > 1 else ''}"
    )
    median = {k: statistics.median(v) for k, v in walls.items()}
    for key, wall in median.items():
        acc = accs[key]
        spread = statistics.stdev(acc) if len(acc) > 1 else math.nan
        each = " ".join(f"{w:.1f}" for w in walls[key]) if args.repeat > 1 else ""
        print(
            f"{names[key]:36} {wall:8.1f} {60 * args.seeds / wall:9.1f} "
            f"{100 * statistics.fmean(acc):13.2f} ± {100 * spread:5.2f}  {each}"
        )
    for key, spent in evals.items():
        validation = statistics.median(e["validation"] for e in spent)
        final = statistics.median(e["final"] for e in spent)
        passes = spent[-1]["final_passes"] // args.seeds
        print(
            f"  {key}: of which validation {validation:.1f} s, final evaluation "
            f"{final:.1f} s (pool and test: {passes} forward passes a seed; "
            f"the loop's: {args.test})"
        )
    print()
    if "a" in median:
        final = statistics.median(e["final"] for e in evals["b"])
        print(
            f"(b)/(a) {median['a'] / median['b']:.2f}x; without (b)'s final evaluation "
            f"{median['a'] / (median['b'] - final):.2f}x"
        )
    print(f"(b)/(c) {median['c'] / median['b']:.2f}x")


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
