"""Adam, AdamW and SGD for stacked parameters.

These are elementwise, so one optimizer over the stacked tensors is exactly S
independent optimizers. They reproduce torch.optim bit for bit (the tests hold them to
it) without importing `torch.optim`, whose first use pulls in torch._dynamo and costs
about a second of start-up. Adam uses torch's fused kernel (one pass over memory, what
`torch.optim.Adam(fused=True)` calls) where this torch has it for the device, and
otherwise the multi-tensor `torch._foreach_*` ops of `torch.optim.Adam(foreach=True)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


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
    """SGD with (heavy-ball) momentum and L2 weight decay, as torch.optim.SGD."""

    def __init__(
        self, params, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.momentum = momentum
        self.buffers: list[torch.Tensor] | None = None

    @torch.no_grad()
    def step(self) -> None:
        params, grads = self.params, self._grads()
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if self.momentum:
            if (
                self.buffers is None
            ):  # torch.optim starts the buffer at the first gradient
                self.buffers = [g.clone() for g in grads]
            else:
                torch._foreach_mul_(self.buffers, self.momentum)
                torch._foreach_add_(self.buffers, grads)
            grads = self.buffers
        torch._foreach_add_(params, grads, alpha=-self.lr)
