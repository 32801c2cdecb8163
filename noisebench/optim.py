"""Adam, AdamW and SGD for stacked parameters.

These are elementwise, so one optimizer over the stacked tensors is exactly S
independent optimizers. They reproduce torch.optim bit for bit (the tests hold them to
it) without importing `torch.optim`, whose first use pulls in torch._dynamo and costs
about a second of start-up. Adam uses torch's fused kernel (one pass over memory, what
`torch.optim.Adam(fused=True)` calls) where this torch has it for the device, and
otherwise the multi-tensor `torch._foreach_*` ops of `torch.optim.Adam(foreach=True)`.

Learning-rate schedules are pure functions of the global step, here for the same reason
(`torch.optim.lr_scheduler` is torch.optim too) and because a function of the step is
plain host-side float math: the engine sets `optimizer.lr = schedule(step)` before each
step, with no scheduler state and no device sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from noisebench.config import TrainConfig


class StackedOptimizer:
    """`step()` and `zero_grad()` over a fixed list of parameters; state on their device."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        *,
        lr: float,
        weight_decay: float = 0.0,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay = lr, weight_decay

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _grads(self) -> list[torch.Tensor]:
        return [
            p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params
        ]


class Adam(StackedOptimizer):
    """Adam (Kingma & Ba 2015); `decoupled=True` gives AdamW (Loshchilov & Hutter 2019)."""

    def __init__(
        self,
        params,
        *,
        lr: float,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        fused: bool | None = None,  # None: use the fused kernel when available
    ) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.beta1, self.beta2 = betas
        self.eps, self.decoupled = eps, decoupled
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        kernel = getattr(torch, "_fused_adamw_" if decoupled else "_fused_adam_", None)
        device = self.params[0].device if self.params else torch.device("cpu")
        self.kernel = (
            kernel if fused is not False and _kernel_works(kernel, device) else None
        )
        if fused and self.kernel is None:
            raise RuntimeError(f"this torch has no fused Adam kernel for {device}")
        # Step counts: a Python int for the foreach path (bias corrections need no device
        # sync), device tensors for the fused kernel, which reads them itself.
        self.steps = 0
        self.step_tensors = [torch.zeros((), device=p.device) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        if self.kernel is not None:
            torch._foreach_add_(self.step_tensors, 1)
            self.kernel(
                self.params,
                self._grads(),
                self.exp_avg,
                self.exp_avg_sq,
                [],
                self.step_tensors,
                lr=self.lr,
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=self.weight_decay,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
            return
        params, grads = self.params, self._grads()
        if self.weight_decay:
            if self.decoupled:
                torch._foreach_mul_(params, 1 - self.lr * self.weight_decay)
            else:
                grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        torch._foreach_lerp_(self.exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - self.beta2)
        step_size = self.lr / (1 - self.beta1**self.steps)
        bias_correction2_sqrt = math.sqrt(1 - self.beta2**self.steps)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, self.exp_avg, denom, -step_size)


def _kernel_works(kernel, device: torch.device) -> bool:
    """Whether a private fused kernel exists and runs on `device` (checked on a scalar)."""
    if kernel is None:
        return False
    probe = [torch.zeros(1, device=device) for _ in range(4)]
    try:
        kernel(
            [probe[0]],
            [probe[1]],
            [probe[2]],
            [probe[3]],
            [],
            [torch.ones((), device=device)],
            lr=0.0,
            beta1=0.9,
            beta2=0.999,
            weight_decay=0.0,
            eps=1e-8,
            amsgrad=False,
            maximize=False,
        )
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    return True


class SGD(StackedOptimizer):
    """SGD with heavy-ball or Nesterov momentum and L2 weight decay, as torch.optim.SGD
    (dampening 0): with buffer b <- momentum * b + g, the step is along b, or along
    g + momentum * b for Nesterov (Sutskever et al. 2013, as torch formulates it)."""

    def __init__(
        self,
        params,
        *,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if nesterov and momentum <= 0:  # torch.optim.SGD refuses it too
            raise ValueError("Nesterov momentum requires a momentum > 0")
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.momentum, self.nesterov = momentum, nesterov
        self.buffers: list[torch.Tensor] | None = None

    @torch.no_grad()
    def step(self) -> None:
        params, grads = self.params, self._grads()
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if self.momentum:
            # torch.optim starts the buffer at the first gradient
            if self.buffers is None:
                self.buffers = [g.clone() for g in grads]
            else:
                torch._foreach_mul_(self.buffers, self.momentum)
                torch._foreach_add_(self.buffers, grads)
            if self.nesterov:
                # out of place: torch adds into the gradients, but ours may be p.grad
                grads = torch._foreach_add(grads, self.buffers, alpha=self.momentum)
            else:
                grads = self.buffers
        torch._foreach_add_(params, grads, alpha=-self.lr)


# Learning-rate schedules: the learning rate at global step t (0-based, one step per
# batch), each equal to the torch.optim.lr_scheduler named in its docstring driven the
# way stated there. `lr` is the configured (base, or for one-cycle the peak) rate.


def constant(t: int, *, lr: float) -> float:
    """The configured rate throughout."""
    return lr


def step(
    t: int, *, lr: float, milestones: Sequence[int], gamma: float, steps_per_epoch: int
) -> float:
    """MultiStepLR stepped once per epoch: the rate is multiplied by `gamma` at the
    start of each milestone epoch, so 0-based epoch e runs at
    lr * gamma ** #(milestones <= e)."""
    epoch = t // steps_per_epoch
    for milestone in milestones:
        if milestone <= epoch:
            # one multiplication per milestone, as MultiStepLR does: lr * gamma**k can
            # differ from it in the last bit
            lr *= gamma
    return lr


def cosine(t: int, *, lr: float, total_steps: int) -> float:
    """CosineAnnealingLR(T_max=total_steps, eta_min=0) stepped once per batch: a half
    cosine from `lr` at the first step towards 0 after the last."""
    # this exact float expression is the one torch's recursive form telescopes to, so
    # the two agree even where 1 + cos(...) cancels near the end of the run
    return lr * (1 + math.cos(math.pi * t / total_steps)) / 2


def onecycle(
    t: int,
    *,
    lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    """OneCycleLR(max_lr=lr, total_steps) with its defaults (cosine annealing, two
    phases) stepped once per batch: cosine from lr / div_factor up to lr over the first
    pct_start of the steps, then down to lr / div_factor / final_div_factor at the last.
    Its momentum cycling is not reproduced: momentum stays as configured."""
    initial = lr / div_factor
    phases = (  # (last step of the phase, start rate, end rate), as torch lays them out
        (float(pct_start * total_steps) - 1, initial, lr),
        (total_steps - 1, lr, initial / final_div_factor),
    )
    start_step = 0.0
    for i, (end_step, start_lr, end_lr) in enumerate(phases):
        if t <= end_step or i == len(phases) - 1:
            pct = (t - start_step) / (end_step - start_step)
            return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1)
        start_step = end_step
    raise AssertionError("unreachable: the last phase always matches")


def lr_schedule(config: TrainConfig, *, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate at global step t = epoch * steps_per_epoch + batch (0-based),
    for t in [0, config.epochs * steps_per_epoch), from config.schedule.
    `steps_per_epoch` counts every batch, the last short one too: ceil(n_train / batch).

    The engine sets `optimizer.lr = schedule(t)` before each `optimizer.step()`: `lr` is
    a plain attribute the optimizers read at each step, and the schedule is host-side
    float math, so this costs no device sync. A step outside the run is a ValueError
    (the engine counted its steps differently from `steps_per_epoch`).
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    total = config.epochs * steps_per_epoch
    schedules: dict[str, Callable[[int], float]] = {
        "constant": partial(constant, lr=config.lr),
        "step": partial(
            step,
            lr=config.lr,
            milestones=config.milestones,
            gamma=config.gamma,
            steps_per_epoch=steps_per_epoch,
        ),
        "cosine": partial(cosine, lr=config.lr, total_steps=total),
        "onecycle": partial(onecycle, lr=config.lr, total_steps=total),
    }
    rate = schedules[config.schedule]

    def schedule(t: int) -> float:
        if not 0 <= t < total:
            raise ValueError(f"step {t} lies outside the run's {total} steps")
        return rate(t)

    return schedule
