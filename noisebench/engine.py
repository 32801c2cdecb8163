"""THE training loop, shared by every method. It trains all seeds of a configuration at once.

The seeds of one configuration are the members of a stacked model (`models.py`). Each
member has its own initialization, noisy labels, train/validation split, batch order,
random stream and (elementwise, hence independent) optimizer state. Data stays on the
device; batches are index slices of a per-member `randperm`; nothing syncs with the
host inside an epoch. A method is only a loss: `method(logits, labels, ctx, **params)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from noisebench.errors import UserError
from noisebench.models import build_model
from noisebench.registry import Context, Method, get_method

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters. Dataset cards set defaults; the CLI can override them."""

    model: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 100
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    val_fraction: float = (
        0.1  # of the (noisy) training pool, held out for model selection
    )
    warmup: float = (
        0.0  # fraction of epochs trained with plain CE before the method's loss
    )

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (
                self.weight_decay >= 0,
                f"weight decay must be >= 0, got {self.weight_decay}",
            ),
            (
                0 < self.val_fraction < 1,
                f"val fraction must lie in (0, 1), got {self.val_fraction}",
            ),
            (0 <= self.warmup < 1, f"warmup must lie in [0, 1), got {self.warmup}"),
            (
                self.optimizer in OPTIMIZERS,
                f"unknown optimizer '{self.optimizer}'; choose from: {', '.join(OPTIMIZERS)}",
            ),
            (
                all(h >= 1 for h in self.hidden),
                f"hidden sizes must be >= 1, got {self.hidden}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


@dataclass
class Task:
    """What the engine trains on, already on the device. S members, N pool samples."""

    x: torch.Tensor  # (N, D) features of the training pool, shared by all members
    y_noisy: torch.Tensor  # (S, N) each member's noisy labels
    train_idx: torch.Tensor  # (S, n_train) indices into the pool
    val_idx: torch.Tensor  # (S, n_val) the noisy validation split
    x_test: torch.Tensor  # (M, D) clean test set
    y_test: torch.Tensor  # (M,)
    num_classes: int
    seeds: list[int]
    transition: torch.Tensor | None = None  # (K, K), for methods that require it
    transition_source: str = "oracle"


@dataclass
class FitResult:
    """Per-member curves and final outputs, on the CPU."""

    val_acc: torch.Tensor  # (S, E) noisy-validation accuracy after each epoch
    test_acc: torch.Tensor  # (S, E) clean test accuracy after each epoch
    diverged_at: torch.Tensor  # (S,) first epoch with a non-finite loss, -1 if none
    pool_logits: torch.Tensor  # (S, N, K) final model on the whole training pool
    test_logits: torch.Tensor  # (S, M, K) final model on the test set
    seconds: float


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"unknown device '{device}'; choose from: auto, cpu, cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA GPU")
    return torch.device(device)


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    # Adam and SGD are elementwise, so one optimizer over stacked tensors is exactly
    # S independent optimizers. foreach=True avoids the per-tensor Python loop.
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            foreach=True,
        )
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def fit(
    task: Task,
    *,
    method: Method,
    params: Mapping[str, Any],
    config: TrainConfig,
    on_epoch: Callable[[int], None] | None = None,
) -> FitResult:
    """Train one stacked model (a member per seed) with `method`'s loss; score every epoch."""
    device = task.x.device
    members, n_train = task.train_idx.shape
    epochs, batch = config.epochs, config.batch_size
    started = time.perf_counter()
    model = build_model(
        config.model,
        in_features=task.x.shape[1],
        hidden=config.hidden,
        num_classes=task.num_classes,
        seeds=task.seeds,
    ).to(device)
    optimizer = make_optimizer(config, model.parameters())
    # One random stream per member, on the device: batch order and the method's draws.
    generators = [
        torch.Generator(device=device).manual_seed(int(s)) for s in task.seeds
    ]
    ce = get_method("ce")
    warmup_epochs = round(config.warmup * epochs)
    autocast = torch.autocast(
        "cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"
    )

    val_hist = torch.zeros(members, epochs, device=device)
    test_hist = torch.zeros(members, epochs, device=device)
    bad = torch.zeros(members, dtype=torch.bool, device=device)
    diverged_at = torch.full((members,), -1, dtype=torch.long, device=device)
    y_val = task.y_noisy.gather(1, task.val_idx)

    for epoch in range(epochs):
        loss_fn, loss_params = (ce, {}) if epoch < warmup_epochs else (method, params)
        contexts = [
            Context(
                num_classes=task.num_classes,
                transition=task.transition,
                transition_source=task.transition_source,
                epoch=epoch,
                progress=epoch / epochs,
                generator=g,
            )
            for g in generators
        ]
        perm = torch.stack(
            [torch.randperm(n_train, generator=g, device=device) for g in generators]
        )
        order = task.train_idx.gather(1, perm)
        model.train()
        for start in range(0, n_train, batch):
            idx = order[:, start : start + batch]  # (S, B)
            with autocast:
                logits = model(task.x[idx])
            labels = task.y_noisy.gather(1, idx)
            losses = torch.stack(
                [
                    loss_fn(logits[s], labels[s], contexts[s], **loss_params)
                    for s in range(members)
                ]
            )
            bad |= ~torch.isfinite(losses)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # members share no parameters: each gets its own gradient
            optimizer.step()
        diverged_at = torch.where(bad & (diverged_at < 0), epoch, diverged_at)
        model.eval()
        with torch.no_grad(), autocast:
            val_pred = model(task.x[task.val_idx]).argmax(-1)
            test_pred = model(task.x_test).argmax(-1)
        val_hist[:, epoch] = (val_pred == y_val).float().mean(-1)
        test_hist[:, epoch] = (test_pred == task.y_test).float().mean(-1)
        if on_epoch is not None:
            on_epoch(epoch + 1)
        if bool(
            bad.all()
        ):  # one host sync per epoch: stop when every member has diverged
            val_hist[:, epoch + 1 :] = float("nan")
            test_hist[:, epoch + 1 :] = float("nan")
            break

    with torch.no_grad(), autocast:
        pool_logits = model(task.x).float()
        test_logits = model(task.x_test).float()
    return FitResult(
        val_acc=val_hist.cpu(),
        test_acc=test_hist.cpu(),
        diverged_at=diverged_at.cpu(),
        pool_logits=pool_logits.cpu(),
        test_logits=test_logits.cpu(),
        seconds=time.perf_counter() - started,
    )
