"""THE training loop, shared by every method. It trains all seeds of a configuration at once.

The seeds of one configuration are the members of a stacked model (`models/`). Each
member has its own initialization, noisy labels, train/validation split, batch order,
random stream and (elementwise, hence independent) optimizer state. Data stays on the
device; batches are index slices of a per-member `randperm`; nothing syncs with the
host inside an epoch. A method is only a loss: `method(logits, labels, ctx, **params)`.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from noisebench.config import TrainConfig
from noisebench.errors import UserError
from noisebench.inputs import Inputs
from noisebench.metrics import memorization_curve
from noisebench.models import build_model, get_model
from noisebench.optim import SGD, Adam, StackedOptimizer, lr_schedule
from noisebench.registry import Context, Method, get_method


@dataclass(frozen=True)
class Teacher:
    """Distillation (Hinton et al. 2015; DESIGN.md §5): member s of the student learns
    from member s of a teacher ensemble, through the teacher's probabilities on the
    pool at `temperature`. The student's loss per member is

        (1 - alpha) * method(logits, hard labels) + alpha * T² * KL(q_T ‖ softmax(z / T))

    (T² keeps the soft term's gradient scale independent of T, as Hinton et al. do).
    With alpha = 1 the student sees the teacher's soft targets only."""

    probs: torch.Tensor  # (S, N, K) softmax(teacher logits / T) on the training pool
    temperature: float = 1.0
    alpha: float = 1.0

    def members(self, which: slice) -> Teacher:
        return replace(self, probs=self.probs[which])

    def loss(self, logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """(S,) the soft term for a batch: logits (S, B, K), idx (S, B) pool indices."""
        k = logits.shape[-1]
        q = self.probs.gather(1, idx.unsqueeze(-1).expand(-1, -1, k))
        log_p = (logits / self.temperature).log_softmax(-1)
        # xlogy: a target of exactly 0 adds 0, as 0 log 0 does in the KL's definition
        kl = (torch.xlogy(q, q) - q * log_p).sum(-1).mean(-1)
        return self.temperature**2 * kl


@dataclass
class Task:
    """What the engine trains on, already on the device. S members, N pool samples."""

    x: torch.Tensor  # (N, *shape) stored samples of the training pool (uint8 pixels
    # or float features), shared by all members; `inputs` makes model inputs of them
    y_noisy: torch.Tensor  # (S, N) each member's noisy labels
    train_idx: torch.Tensor  # (S, n_train) indices into the pool
    val_idx: torch.Tensor  # (S, n_val) the noisy validation split
    x_test: (
        torch.Tensor | None
    )  # (M, D) clean test set; None while tuning, so it cannot leak
    y_test: torch.Tensor | None  # (M,)
    num_classes: int
    seeds: list[int]
    # for methods that require T: (K, K) shared, or (S, K, K) one per member (estimated)
    transition: torch.Tensor | None = None
    transition_source: str = "oracle"
    inputs: Inputs = field(default_factory=Inputs)
    # (N,) the pool's clean labels, shared: with them the engine records memorization
    # curves (how many corrupted training samples are fit to which label, per epoch)
    y_clean: torch.Tensor | None = None
    teacher: Teacher | None = None  # distillation: soft targets from a teacher ensemble
    # each member's initialization seed, when it is not its seed (paired networks)
    init_seeds: list[int] | None = None
    is_paired: bool = False  # members 2s and 2s + 1 are the two networks of seed s

    def members(self, which: slice) -> Task:
        """The same task for a subset of the members."""
        per_member = self._per_member_fields()
        return replace(
            self,
            **{f: getattr(self, f)[which] for f in per_member},
            seeds=self.seeds[which],
            init_seeds=None if self.init_seeds is None else self.init_seeds[which],
            teacher=None if self.teacher is None else self.teacher.members(which),
        )

    def _per_member_fields(self) -> set[str]:
        """The tensors with a leading member axis (T too, when each member has its own)."""
        fields = {"y_noisy", "train_idx", "val_idx"}
        if self.transition is not None and self.transition.dim() == 3:
            fields.add("transition")
        return fields

    @property
    def model_seeds(self) -> list[int]:
        return self.seeds if self.init_seeds is None else self.init_seeds

    def paired(self, *, same_init: bool = False) -> Task:
        """Every member twice, as the two networks of a pair (members 2s and 2s + 1):
        the same seed, hence the same labels, split, batch order, augmentation and
        random draws, but the second network initialized from `peer_seed` (from the
        same seed with `same_init`, which makes the two identical)."""
        per_member = self._per_member_fields()
        teacher = self.teacher
        if teacher is not None:
            teacher = replace(teacher, probs=teacher.probs.repeat_interleave(2, 0))
        return replace(
            self,
            **{f: getattr(self, f).repeat_interleave(2, 0) for f in per_member},
            seeds=[s for s in self.seeds for _ in range(2)],
            init_seeds=[
                i
                for s in self.model_seeds
                for i in (s, s if same_init else peer_seed(s))
            ],
            teacher=teacher,
            is_paired=True,
        )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample as the model takes it."""
        return self.inputs.shape_of(tuple(self.x.shape[1:]))

    def transition_of(self, member: int) -> torch.Tensor | None:
        t = self.transition
        return t[member] if t is not None and t.dim() == 3 else t


@dataclass
class FitResult:
    """Per-member results, on the CPU. S members, E epochs."""

    val_acc: torch.Tensor  # (S, E) noisy-validation accuracy per epoch; NaN if not run
    best_epoch: torch.Tensor  # (S,) 0-based epoch of the best noisy-validation accuracy
    test_acc_at_best_val: torch.Tensor  # (S,) clean test accuracy of that epoch's model
    diverged_at: torch.Tensor  # (S,) first epoch with a non-finite loss, -1 if none
    pool_logits: torch.Tensor  # (S, N, K) final model on the whole training pool
    # (S, N, K) the best-validation model on it; (S, 0, K) unless asked for
    # (`best_pool=True`): only the transition estimator needs it
    best_pool_logits: torch.Tensor
    test_logits: torch.Tensor  # (S, M, K) final model on the test set (M = 0: none)
    # (S, E) of the corrupted training samples, the fraction the epoch's training
    # forward passes predicted as the noisy (resp. clean) label; NaN without y_clean
    mem_noisy: torch.Tensor
    mem_clean: torch.Tensor
    # the final model's penultimate activations on the pool (S, N, D), and its last
    # layer (S, K, D) and (S, K); empty unless asked for (`features=True`)
    pool_features: torch.Tensor
    classifier_weight: torch.Tensor
    classifier_bias: torch.Tensor
    # (S, E) for a method that selects samples (a `PerSample` with selection=True): the
    # fraction of training samples its loss used in the epoch, and the fraction of those
    # whose noisy label is clean (Co-teaching's "pure ratio"); NaN otherwise
    selected: torch.Tensor
    selected_clean: torch.Tensor
    seconds: float


def peer_seed(seed: int) -> int:
    """The initialization seed of the second network of seed `seed`'s pair: a hash, so
    it never coincides with another run's seed by construction of a seed range."""
    import hashlib

    return int(hashlib.sha256(f"peer:{seed}".encode()).hexdigest()[:8], 16)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"unknown device '{device}'; choose from: auto, cpu, cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA GPU")
    return torch.device(device)


def make_optimizer(config: TrainConfig, params) -> StackedOptimizer:
    if config.optimizer == "sgd":
        return SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
    decoupled = config.optimizer == "adamw"
    return Adam(
        params, lr=config.lr, weight_decay=config.weight_decay, decoupled=decoupled
    )


class MemberLosses:
    """`(logits (S, B, K), labels (S, B), contexts, rows, peers) -> (S,), new rows`:
    the method applied per member, with each member's own state rows (S, B, ...) and,
    for a paired method, its peer's logits (S, B, K).

    A method that draws no random numbers runs once, vmapped over the members (one call
    instead of S). One that uses `ctx.generator`, or that vmap cannot trace, runs member
    by member, each with its own generator, so its randomness stays per member.
    """

    def __init__(
        self,
        method: Method,
        params: Mapping[str, Any],
        transition: torch.Tensor | None = None,
    ) -> None:
        self.method, self.params = method, dict(params)
        # (S, K, K) when each member has its own T (estimated): vmapped with the rest
        own = transition is not None and transition.dim() == 3
        self.own_transitions = transition if own else None
        self.batched: bool | None = None

    def _vmapped(self, logits, labels, contexts: list[Context], rows, peers):
        # Under vmap the context has no generator, so a method that needs one fails the probe.
        shared = replace(contexts[0], generator=None)

        def member(z, y, t, r, p):
            ctx = replace(shared, state=r, peer_logits=p)
            if t is not None:
                ctx = replace(ctx, transition=t)
            return self.method.step(z, y, ctx, **self.params)

        transitions = self.own_transitions
        dims = (
            0,
            0,
            None if transitions is None else 0,
            0,
            None if peers is None else 0,
        )
        return torch.func.vmap(member, in_dims=dims)(
            logits, labels, transitions, rows, peers
        )

    def _one_by_one(self, logits, labels, contexts: list[Context], rows, peers):
        results = [
            self.method.step(
                logits[s],
                labels[s],
                replace(
                    ctx,
                    state={k: v[s] for k, v in rows.items()},
                    peer_logits=None if peers is None else peers[s],
                ),
                **self.params,
            )
            for s, ctx in enumerate(contexts)
        ]
        losses = torch.stack([loss for loss, _ in results])
        return losses, {k: torch.stack([r[k] for _, r in results]) for k in rows}

    def __call__(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        contexts: list[Context],
        rows: Mapping[str, torch.Tensor] | None = None,
        peers: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rows = dict(rows or {})
        if self.batched is None:
            try:
                with torch.no_grad():
                    self._vmapped(logits.detach(), labels, contexts, rows, peers)
                self.batched = True
            except Exception:  # noqa: BLE001 - any failure means: run member by member
                self.batched = False
        run = self._vmapped if self.batched else self._one_by_one
        losses, new_rows = run(logits, labels, contexts, rows, peers)
        if losses.shape != (len(contexts),):  # shapes are static: no host sync
            raise UserError(
                f"{describe(self.method)} returned a loss of shape "
                f"{tuple(losses.shape[1:])} per member; a method returns a scalar"
            )
        return losses, new_rows


def _student_losses(teacher, member_losses, logits, labels, idx, contexts, rows, peers):
    """The method's per-member losses and new state rows, mixed with a teacher's soft
    term when there is one (the hard-label loss is not even computed when alpha = 1)."""
    if teacher is None:
        return member_losses(logits, labels, contexts, rows, peers)
    soft = teacher.loss(logits, idx)
    if teacher.alpha == 1.0:
        return soft, dict(rows)
    hard, new_rows = member_losses(logits, labels, contexts, rows, peers)
    return (1.0 - teacher.alpha) * hard + teacher.alpha * soft, new_rows


def describe(method: Method) -> str:
    """'method NAME (where it comes from)', for messages."""
    from noisebench.registry import METHODS

    where = METHODS.origin(method.name) if method.name in METHODS else method.origin
    return f"method '{method.name}' ({where})"


def probe_loss(
    method: Method,
    params: Mapping[str, Any],
    *,
    num_classes: int,
    transition: torch.Tensor | None = None,
) -> None:
    """Call the loss once on a small random batch and refuse, before any training, a
    method that raises, returns anything but a finite scalar tensor, or no gradient."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(8, num_classes, generator=generator, requires_grad=True)
    labels = torch.randint(num_classes, (8,), generator=generator)
    ctx = Context(
        num_classes=num_classes,
        transition=transition,
        generator=torch.Generator().manual_seed(0),
    )
    name = describe(method)
    try:
        loss, _ = method.step(
            logits, labels, method.batch_context(ctx, logits), **params
        )
    except Exception as err:  # noqa: BLE001 - any failure of a plugin is reported as its own
        raise UserError(
            f"{name} raised {type(err).__name__} on a probe batch: {err}"
        ) from None
    if not isinstance(loss, torch.Tensor) or loss.shape != ():
        got = (
            tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        )
        raise UserError(
            f"{name} returned {got} on a probe batch; a method returns a scalar tensor"
        )
    if not torch.isfinite(loss):
        raise UserError(
            f"{name} returned a non-finite loss ({float(loss.detach())}) on a probe batch"
        )
    if not loss.requires_grad:
        raise UserError(f"{name} returned a loss with no gradient on a probe batch")


def bytes_per_member(task: Task, config: TrainConfig) -> int:
    samples = max(task.x.shape[0], 0 if task.x_test is None else task.x_test.shape[0])
    return member_bytes(task.sample_shape, task.num_classes, samples, config)


def state_bytes(method: Method, task: Task) -> int:
    """One member's per-sample state: a float32 row per pool sample and state."""
    rows = sum(task.num_classes if s.classes else 1 for s in method.state.values())
    return 4 * rows * task.x.shape[0]


def member_bytes(
    input_shape: tuple[int, ...], num_classes: int, samples: int, config: TrainConfig
) -> int:
    """A generous estimate of one member's memory: parameters with gradients and Adam
    state (5 copies), training activations (3 per unit of a sample's forward pass), and
    evaluation activations (2 per unit, every sample at once up to EVAL_ACTIVATIONS,
    past which `predict` works in pieces)."""
    params, units = get_model(config.model).sizes(
        input_shape, config.hidden, num_classes
    )
    batch = min(config.batch_size, samples)
    evaluation = min(samples * units, EVAL_ACTIVATIONS)
    return 4 * (5 * params + 3 * batch * units + 2 * evaluation)


# Stacking pays while a member's step is overhead-bound, and stops paying once it is
# compute-bound, which on a CPU is early for convolutions. Measured on this project's
# 2-core CPU (torch 2.13), 128 samples a batch: stacked MLPs (522 activation units a
# sample) run 5x faster than one at a time; the CNN on 8x8 digits (9.4k units) 1.15x
# faster stacked by 10 than one at a time (8.5 s against 9.8 s); the CNN on 28x28 images
# (113k units) 1.4x *slower* stacked by 6 (26.3 s against 18.5 s). So on a CPU a chunk
# holds at most CPU_STACK_UNITS / units members; on a GPU, as many as fit in memory.
CPU_STACK_UNITS = 1 << 17


def stack_limit(task: Task, config: TrainConfig) -> int:
    """How many members to train as one stacked model on the task's device."""
    if task.x.device.type != "cpu":
        return len(task.seeds)
    _, units = get_model(config.model).sizes(
        task.sample_shape, config.hidden, task.num_classes
    )
    return max(1, CPU_STACK_UNITS // units)


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.7 * free)
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 2**20
    return int(0.5 * pages * os.sysconf("SC_PAGE_SIZE"))


def fit(
    task: Task,
    *,
    method: Method,
    params: Mapping[str, Any],
    config: TrainConfig,
    on_epoch: Callable[[int, torch.Tensor], None] | None = None,
    max_members: int | None = None,
    best_pool: bool = False,
    features: bool = False,
) -> FitResult:
    """Train one stacked model (a member per seed) with `method`'s loss; score every epoch.

    Seeds are trained in chunks of at most `max_members` (default: as many as fit in
    memory). `on_epoch(epoch, val_acc)` is called after each epoch of each chunk with the
    chunk's noisy-validation accuracies, a device tensor (reading it syncs).
    `best_pool` also scores the best-validation model on the whole training pool;
    `features` keeps the final model's penultimate activations on it and its last layer.
    """
    started = time.perf_counter()
    _reuse_freed_memory()
    if method.paired and not task.is_paired:  # two networks per seed
        task = task.paired()
    members = len(task.seeds)
    limit = max_members or max(
        1,
        min(
            available_bytes(task.x.device)
            // (bytes_per_member(task, config) + state_bytes(method, task)),
            stack_limit(task, config),
        ),
    )
    if method.paired:  # the two networks of a pair train in the same chunk
        limit = max(2, limit - limit % 2)
    parts = [
        _fit_members(
            task.members(slice(lo, lo + limit)),
            method,
            params,
            config,
            on_epoch,
            best_pool=best_pool,
            features=features,
        )
        for lo in range(0, members, limit)
    ]
    # a pair's record is its first network's
    keep = slice(0, None, 2) if method.paired else slice(None)
    return FitResult(
        **{f: torch.cat([getattr(p, f) for p in parts])[keep] for f in _STACKED},
        seconds=time.perf_counter() - started,
    )


def mixed_precision(device: torch.device) -> torch.autocast:
    """bf16 autocast for the forward pass on CUDA; float32 everywhere else.

    On CPUs bf16 matmuls are not reliably faster, and float32 keeps CPU runs exact.
    """
    return torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )


@functools.cache
def _reuse_freed_memory() -> None:
    """Keep glibc from returning large freed blocks to the OS.

    Every step frees and reallocates megabyte-sized activations and gradients. Above
    glibc's mmap threshold each one is a fresh mapping that page-faults on first touch,
    which cost about 10% of a training step here. Raising the thresholds lets the heap
    reuse them. Process-wide and harmless; skipped where the C library is not glibc.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, (1 << 31) - 1)


_STACKED = (
    "val_acc",
    "best_epoch",
    "test_acc_at_best_val",
    "diverged_at",
    "pool_logits",
    "best_pool_logits",
    "test_logits",
    "mem_noisy",
    "mem_clean",
    "pool_features",
    "classifier_weight",
    "classifier_bias",
    "selected",
    "selected_clean",
)


def _fit_members(
    task: Task,
    method,
    params,
    config: TrainConfig,
    on_epoch,
    *,
    best_pool: bool,
    features: bool = False,
) -> FitResult:
    device = task.x.device
    members, n_train = task.train_idx.shape
    epochs, batch = config.epochs, config.batch_size
    model = build_model(
        config.model,
        input_shape=task.sample_shape,
        hidden=config.hidden,
        num_classes=task.num_classes,
        seeds=task.model_seeds,
    ).to(device)
    optimizer = make_optimizer(config, model.parameters())
    schedule = lr_schedule(config, steps_per_epoch=-(-n_train // batch))
    step = 0
    _, units = get_model(config.model).sizes(
        task.sample_shape, config.hidden, task.num_classes
    )
    # for evaluation in pieces, through the same input pipeline (never augmented)
    size = {"members": members, "units": units, "inputs": task.inputs}
    # One random stream per member, on the device: batch order and the method's draws.
    generators = [
        torch.Generator(device=device).manual_seed(int(s)) for s in task.seeds
    ]
    warmup_epochs = round(config.warmup * epochs)
    # The selected model must be one the method trained: a CE warm-up epoch is no
    # candidate, or a method's row could report plain CE stopped early. (When every
    # epoch is a warm-up one, the last is the candidate.)
    select_from = min(warmup_epochs, epochs - 1)
    warmup_loss = MemberLosses(get_method("ce"), {})
    method_loss = MemberLosses(method, params, task.transition)
    autocast = mixed_precision(device)
    n_pool = task.x.shape[0]
    state = {
        name: spec.initial(members, n_pool, num_classes=task.num_classes, device=device)
        for name, spec in method.state.items()
    }
    selection = [n for n, spec in method.state.items() if spec.selection]
    chosen_hist = torch.full((2, members, epochs), float("nan"), device=device)

    val_hist = torch.full((members, epochs), float("nan"), device=device)
    bad = torch.zeros(members, dtype=torch.bool, device=device)
    diverged_at = torch.full((members,), -1, dtype=torch.long, device=device)
    y_val = task.y_noisy.gather(1, task.val_idx)
    # The model of each member's best noisy-validation epoch, kept on the device: the
    # test set is scored once at the end, never per epoch, so it cannot steer anything.
    best = Snapshot(model, members)
    # Memorization curves come free from the training forward passes: each epoch sees
    # every training sample once, and its latest prediction is kept (no extra pass).
    mem_hist = torch.full((2, members, epochs), float("nan"), device=device)
    if task.y_clean is not None:
        latest = torch.zeros_like(task.y_noisy)
        noisy_train = task.y_noisy.gather(1, task.train_idx)
        clean_train = task.y_clean[task.train_idx]

    for epoch in range(epochs):
        model.train()  # batch norm: batch statistics, running averages updated
        member_losses = warmup_loss if epoch < warmup_epochs else method_loss
        contexts = [
            Context(
                num_classes=task.num_classes,
                transition=task.transition_of(s),
                transition_source=task.transition_source,
                epoch=epoch,
                progress=epoch / epochs,
                generator=g,
            )
            for s, g in enumerate(generators)
        ]
        perm = torch.stack(
            [torch.randperm(n_train, generator=g, device=device) for g in generators]
        )
        order = task.train_idx.gather(1, perm)
        augmentation = task.inputs.draw(generators, n_train, device)
        for start in range(0, n_train, batch):
            idx = order[:, start : start + batch]  # (S, B)
            drawn = (
                None
                if augmentation is None
                else augmentation.batch(start, start + batch)
            )
            with autocast:
                logits = model(task.inputs(task.x[idx], drawn))
            # the loss always sees float32 logits, whatever precision the forward ran in
            labels = task.y_noisy.gather(1, idx)
            if task.y_clean is not None:
                latest.scatter_(1, idx, logits.detach().argmax(-1))
            in_use = state if member_losses is method_loss else {}
            rows = {name: gather_rows(st, idx) for name, st in in_use.items()}
            peers = None
            if method.paired:  # members 2p and 2p + 1 see each other on the same batch
                peers = swap_pairs(logits.detach().float())
            losses, rows = _student_losses(
                task.teacher,
                member_losses,
                logits.float(),
                labels,
                idx,
                contexts,
                rows,
                peers,
            )
            for name, new in rows.items():
                scatter_rows(state[name], idx, new)
            bad |= ~torch.isfinite(losses)
            optimizer.zero_grad()
            losses.sum().backward()  # members share no parameters: each its own gradient
            optimizer.lr = schedule(step)
            optimizer.step()
            step += 1
        # a finite loss can still leave a member's weights non-finite (an infinite
        # gradient); once per epoch, every member's parameters are checked too
        with torch.no_grad():
            bad |= ~torch.stack(
                [p.isfinite().flatten(1).all(1) for p in model.parameters()]
            ).all(0)
        diverged_at = torch.where(bad & (diverged_at < 0), epoch, diverged_at)
        model.eval()  # batch norm: the running averages, as at test time
        with torch.no_grad(), autocast:
            val_pred = predict(
                model, task.x[task.val_idx], shared=False, **size
            ).argmax(-1)
        val_hist[:, epoch] = (val_pred == y_val).float().mean(-1)
        if task.y_clean is not None:
            fit_noisy, fit_clean = memorization_curve(
                latest.gather(1, task.train_idx), noisy_train, clean_train
            )
            mem_hist[0, :, epoch], mem_hist[1, :, epoch] = (
                fit_noisy[:, 0],
                fit_clean[:, 0],
            )
        if selection and member_losses is method_loss:  # not during a CE warm-up
            chosen = state[selection[0]].gather(1, task.train_idx)
            chosen_hist[0, :, epoch] = chosen.mean(-1)
            if task.y_clean is not None:
                clean = (noisy_train == clean_train).float()
                chosen_hist[1, :, epoch] = (chosen * clean).sum(-1) / chosen.sum(-1)
        if epoch >= select_from:
            best.update(val_hist[:, epoch], epoch)
        if on_epoch is not None:
            on_epoch(epoch + 1, val_hist[:, epoch])
        if bool(bad.all()):  # one host sync per epoch: stop once every member diverged
            break

    with torch.no_grad():
        pool_features = torch.empty(members, 0, 0)
        weight, bias = torch.empty(members, 0, 0), torch.empty(members, 0)
        if features:
            with autocast:
                pool_features = predict(model.features, task.x, shared=True, **size)
            pool_features = pool_features.float()
            weight, bias = (p.detach().float().clone() for p in model.classifier())
        with autocast:
            pool_logits = predict(model, task.x, shared=True, **size).float()
            test_logits = torch.empty(members, 0, task.num_classes)
            test_at_best = torch.full((members,), float("nan"))
            if task.x_test is not None:
                test_logits = predict(model, task.x_test, shared=True, **size).float()
        # restored outside that context, scored in a new one: autocast caches its bf16
        # copies of the weights until its context exits, and would score the final model
        best.restore()
        with autocast:
            best_pool_logits = torch.empty(members, 0, task.num_classes)
            if best_pool:
                best_pool_logits = predict(model, task.x, shared=True, **size).float()
            if task.x_test is not None:
                best_test = predict(model, task.x_test, shared=True, **size)
                test_at_best = (best_test.argmax(-1) == task.y_test).float().mean(-1)
    return FitResult(
        val_acc=val_hist.cpu(),
        best_epoch=best.epoch.cpu(),
        test_acc_at_best_val=test_at_best.cpu(),
        diverged_at=diverged_at.cpu(),
        pool_logits=pool_logits.cpu(),
        best_pool_logits=best_pool_logits.cpu(),
        test_logits=test_logits.cpu(),
        mem_noisy=mem_hist[0].cpu(),
        mem_clean=mem_hist[1].cpu(),
        pool_features=pool_features.cpu(),
        classifier_weight=weight.cpu(),
        classifier_bias=bias.cpu(),
        selected=chosen_hist[0].cpu(),
        selected_clean=chosen_hist[1].cpu(),
        seconds=0.0,
    )


def gather_rows(state: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The batch's rows (S, B, ...) of per-sample state (S, N, ...), by sample id (S, B)."""
    return state.gather(1, _expand(idx, state))


def scatter_rows(state: torch.Tensor, idx: torch.Tensor, rows: torch.Tensor) -> None:
    """Write a batch's rows back: a batch never holds a sample twice, so no write races."""
    state.scatter_(1, _expand(idx, state), rows.to(state.dtype))


def _expand(idx: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    return idx.view(*idx.shape, *[1] * (state.dim() - 2)).expand(
        *idx.shape, *state.shape[2:]
    )


def swap_pairs(logits: torch.Tensor) -> torch.Tensor:
    """Each member's peer's logits: members 2p and 2p + 1 swapped."""
    s, *rest = logits.shape
    return logits.view(s // 2, 2, *rest).flip(1).reshape(s, *rest)


# Evaluation runs over every sample at once up to this many activations (all members
# together), and in pieces beyond: a 100-member CNN on 2,000 28x28 images would need
# 5e9 values in one convolution, past what its kernels can index (found on an H200).
EVAL_ACTIVATIONS = 1 << 28


def predict(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    members: int,
    units: int,
    shared: bool,
    inputs: Inputs | None = None,
) -> torch.Tensor:
    """`model(inputs(x))` for stored samples (N, ...) shared by the members, or
    (S, N, ...) per member, in pieces of samples small enough for EVAL_ACTIVATIONS (one
    piece where it fits, so small runs compute exactly what they always did)."""
    inputs = inputs or Inputs()
    axis = 0 if shared else 1
    piece = max(1, EVAL_ACTIVATIONS // max(1, members * units))
    if x.shape[axis] <= piece:
        return model(inputs(x))
    parts = x.split(piece, dim=axis)
    return torch.cat([model(inputs(part)) for part in parts], dim=1)


class Snapshot:
    """Per member, the parameters and buffers (batch norm's running statistics) of the
    epoch with the best validation accuracy so far (the first such epoch on ties),
    updated on the device without a host sync."""

    def __init__(self, model: torch.nn.Module, members: int) -> None:
        self.params = [*model.parameters(), *model.buffers()]
        self.saved = [p.detach().clone() for p in self.params]
        device = self.saved[0].device
        self.score = torch.full((members,), -1.0, device=device)
        self.epoch = torch.zeros(members, dtype=torch.long, device=device)

    @torch.no_grad()
    def update(self, score: torch.Tensor, epoch: int) -> None:
        better = score > self.score
        self.score = torch.where(better, score, self.score)
        self.epoch = torch.where(better, epoch, self.epoch)
        for p, saved in zip(self.params, self.saved, strict=True):
            mask = better.view(-1, *([1] * (p.dim() - 1)))
            torch.where(mask, p, saved, out=saved)

    @torch.no_grad()
    def restore(self) -> None:
        torch._foreach_copy_(self.params, self.saved)
