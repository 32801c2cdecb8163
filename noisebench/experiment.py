"""From a RunSpec to records: data -> noise -> engine -> metrics (DESIGN.md §1 data flow).

`prepare` does every check that can fail on user input before any training starts,
so a bad request never leaves a partial record behind.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from noisebench import records
from noisebench.config import TrainConfig
from noisebench.data import Card, Dataset, load_dataset, resolve_card, stratified_split
from noisebench.errors import UserError, unknown
from noisebench.noise import NoiseSpec, confusion, corrupt, matrix_sha, realized_rate
from noisebench.registry import Method, get_method
from noisebench.sampling import derive_seed


@dataclass(frozen=True)
class TeacherSpec:
    """Distillation (DESIGN.md §5): before the student, a teacher ensemble is trained
    with `method` and `params` on the same noisy labels and splits (its own seeds, the
    test set withheld), and its model of the best noisy-validation epoch gives each
    student member its soft targets: the teacher member's probabilities at
    `temperature`. The student's loss is `(1 - alpha)` times its method's loss of the
    hard noisy labels plus `alpha` times T² KL(teacher ‖ student), both at T."""

    method: str
    params: dict[str, Any]
    temperature: float = 1.0
    alpha: float = 1.0


@dataclass(frozen=True)
class RunSpec:
    """One configuration, trained for every seed in `seeds`. Built by the CLI, frozen."""

    method: str
    params: dict[str, Any]
    dataset: str
    noise: NoiseSpec
    train: TrainConfig
    seeds: tuple[int, ...] = (0, 1, 2)
    noise_seeds: tuple[int, ...] | None = None  # default: the training seeds
    device: str = "auto"
    # T for methods that require it: the true one, or Patrini et al.'s estimate (§5)
    transition: str = "oracle"
    phase: str = "evaluate"
    study: str | None = None
    trial: int | None = None
    teacher: TeacherSpec | None = None  # distillation: learn from a teacher ensemble


@dataclass
class Prepared:
    """A validated spec with its data and noise, ready for the engine."""

    spec: RunSpec
    method: Method
    dataset: Dataset
    transition: np.ndarray
    noisy: np.ndarray  # (S, N)
    train_idx: np.ndarray  # (S, n_train)
    val_idx: np.ndarray  # (S, n_val)
    # instance noise: each member's draw's own T, (S, K, K), the oracle that methods
    # requiring T get; None where `transition` is every draw's T
    oracle: np.ndarray | None = None

    def oracle_transition(self) -> np.ndarray:
        """The true T as methods that require it get it: `transition` (K, K), or one
        per member (S, K, K) where each draw has its own (instance noise)."""
        return self.transition if self.oracle is None else self.oracle

    def members(self, keep: list[int]) -> Prepared:
        """The same configuration for the seeds at positions `keep` only."""
        spec = replace(
            self.spec,
            seeds=tuple(self.spec.seeds[i] for i in keep),
            noise_seeds=tuple(self.spec.noise_seeds[i] for i in keep),
        )
        return replace(
            self,
            spec=spec,
            noisy=self.noisy[keep],
            train_idx=self.train_idx[keep],
            val_idx=self.val_idx[keep],
            oracle=None if self.oracle is None else self.oracle[keep],
        )


TRANSITION_SOURCES = ("oracle", "estimated")


def train_config_for(card: Card, **overrides: Any):
    """The card's training defaults with the non-None `overrides` applied, validated.

    A model other than the card's, with no widths given, gets its own default widths
    where it has them (a ResNet's stage widths are no MLP's hidden layers)."""
    from noisebench.config import TrainConfig
    from noisebench.models import MODELS

    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**card.train, **given}
    model = values.get("model", TrainConfig.model)
    if (
        model != card.train.get("model", TrainConfig.model)
        and "hidden" not in given
        and model in MODELS
        and MODELS.get(model).default_hidden is not None
    ):
        values["hidden"] = MODELS.get(model).default_hidden
    if "epochs" in given and "milestones" not in given and card.train.get("milestones"):
        values["milestones"] = scaled_milestones(
            card.train["milestones"],
            card.train.get("epochs", TrainConfig.epochs),
            given["epochs"],
        )
    return TrainConfig.from_mapping(values, where=f"dataset {card.name}")


def scaled_milestones(milestones, card_epochs: Any, epochs: Any) -> Any:
    """A card's step-decay milestones moved to the same fractions of a run of `epochs`
    (a CIFAR card's 100 and 150 of 200 epochs are 5 and 8 of 10), at least epoch 1,
    without repeats. Values that are not integers are left for TrainConfig to refuse."""
    numbers = [*milestones, card_epochs, epochs]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
        return milestones
    if card_epochs < 1 or epochs < 1:
        return milestones
    scaled = [max(1, min(epochs, round(m * epochs / card_epochs))) for m in milestones]
    return sorted(set(scaled))


def prepare(spec: RunSpec) -> Prepared:
    """Validate the spec against the registry and the data; draw the noise and the splits."""
    method = get_method(spec.method)
    params = method.resolve(spec.params)
    if spec.transition not in TRANSITION_SOURCES:
        raise unknown("transition source", spec.transition, TRANSITION_SOURCES)
    if spec.transition == "estimated" and "transition" not in method.requires:
        raise UserError(
            f"--transition estimated applies to methods that use T; '{method.name}' does not"
        )
    if not spec.seeds or len(set(spec.seeds)) != len(spec.seeds):
        raise UserError(f"seeds must be distinct and non-empty, got {list(spec.seeds)}")
    teacher = _resolve_teacher(spec)
    noise_seeds = tuple(spec.noise_seeds or spec.seeds)
    if len(noise_seeds) != len(spec.seeds):
        raise UserError("give as many noise seeds as seeds")
    from noisebench.models import get_model

    get_model(spec.train.model)  # an unknown model: "did you mean", before the data
    dataset = load_dataset(resolve_card(spec.dataset))
    # the spec as records state it (transition: T's flip rate; human: its labels' rate
    # and hash), T (instance noise: the expected one), and human noise's fixed labels
    # (None: drawn per noise seed)
    noise, t, fixed = spec.noise.realize(dataset)
    _probe(method, params, dataset.num_classes, t)
    if teacher is not None:
        _probe(get_method(teacher.method), teacher.params, dataset.num_classes, t)
    check_size(spec, dataset)
    draws = [
        draw_member(dataset, noise, t, seed, spec.train.val_fraction, labels=fixed)
        for seed in noise_seeds
    ]
    noisy, train_idx, val_idx = (
        np.stack([getattr(d, part) for d in draws])
        for part in ("noisy", "train", "val")
    )
    return Prepared(
        spec=replace(
            spec, params=params, noise=noise, noise_seeds=noise_seeds, teacher=teacher
        ),
        method=method,
        dataset=dataset,
        transition=t,
        noisy=noisy,
        train_idx=train_idx,
        val_idx=val_idx,
        oracle=np.stack([d.transition for d in draws])
        if noise.kind == "instance"
        else None,
    )


def _resolve_teacher(spec: RunSpec) -> TeacherSpec | None:
    """The teacher with its params resolved (defaults filled in, ranges checked)."""
    teacher = spec.teacher
    if teacher is None:
        return None
    method = get_method(teacher.method)
    if not (math.isfinite(teacher.temperature) and teacher.temperature > 0):
        raise UserError(
            f"the distillation temperature must be a finite number > 0, "
            f"got {teacher.temperature:g}"
        )
    if not (0.0 <= teacher.alpha <= 1.0):
        raise UserError(
            f"the distillation alpha must lie in [0, 1], got {teacher.alpha:g}"
        )
    if "transition" in method.requires and spec.transition == "estimated":
        raise UserError(
            f"teacher '{method.name}' uses T: it is trained with the true T, so "
            "--transition estimated cannot apply to it"
        )
    return replace(teacher, params=method.resolve(teacher.params))


def teacher_identity(teacher: TeacherSpec) -> dict[str, Any]:
    """What a teacher is, as the student's configuration and records state it."""
    method = get_method(teacher.method)
    return {
        "method": method.name,
        "method_version": method.version,
        "method_origin": method.origin,
        "method_sha": method.source_sha,
        "params": teacher.params,
        "temperature": teacher.temperature,
        "alpha": teacher.alpha,
    }


def check_size(spec: RunSpec, dataset: Dataset) -> None:
    """Refuse, before allocating anything, a run bigger than this machine: the seeds'
    noisy labels, splits, curves and logits on the host, and one member on the device
    (members beyond what fits are trained in turns, so one must fit)."""
    import torch

    from noisebench import engine

    s, n, m = len(spec.seeds), len(dataset.y), len(dataset.y_test)
    k, epochs = dataset.num_classes, spec.train.epochs
    host = s * (3 * 8 * n + 4 * (2 * n + m) * k + 8 * epochs)
    member = engine.member_bytes(sample_shape(spec, dataset), k, max(n, m), spec.train)
    device = engine.resolve_device(spec.device)
    for need, place, what in (
        (host, torch.device("cpu"), f"{s} seeds' labels, splits and outputs"),
        (member, device, "one member (model, optimizer state, activations)"),
    ):
        have = engine.available_bytes(place)
        if need > have:
            raise UserError(
                f"this run needs about {_gb(need)} of {place.type} memory for {what}, "
                f"more than the {_gb(have)} available; use fewer --seeds, fewer "
                "--epochs or a smaller --hidden"
            )


def sample_shape(spec: RunSpec, dataset: Dataset) -> tuple[int, ...]:
    """One sample's shape as the run's model takes it (an image, or a flat vector)."""
    from noisebench.models import input_shape

    card = dataset.card
    return input_shape(
        spec.train.model,
        features=dataset.x.shape[1],
        shapes={"image": card.image_shape, "signal": card.signal_shape},
    )


def model_inputs(spec: RunSpec, dataset: Dataset, device) -> Any:
    """(how the engine stores the samples, its `Inputs`): pixel datasets stay uint8
    images on the device, normalized and augmented there per batch (flattened last for
    a model that takes vectors); other data is stored as the model takes it."""
    from noisebench.inputs import Inputs
    from noisebench.models import get_model

    augment = dataset.card.augment or {}
    crop, flip = augment.get("crop_padding", 0), augment.get("flip", False)
    is_image = get_model(spec.train.model).takes == "image"
    if dataset.mean is None:  # features standardized on the host
        shape = sample_shape(spec, dataset)
        if is_image:
            return shape, Inputs(crop_padding=crop, flip=flip)
        return shape, Inputs()
    shape = tuple(dataset.card.image_shape)
    inputs = Inputs.for_pixels(
        dataset.mean,
        dataset.std,
        crop_padding=crop,
        flip=flip,
        flat=get_model(spec.train.model).takes == "vector",
        device=device,
    )
    return shape, inputs


def _gb(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**28 else f"{size / 2**20:.0f} MiB"


def _probe(method: Method, params: dict[str, Any], num_classes: int, t) -> None:
    import torch

    from noisebench.engine import probe_loss

    needs_t = "transition" in method.requires
    transition = torch.as_tensor(t, dtype=torch.float32) if needs_t else None
    probe_loss(method, params, num_classes=num_classes, transition=transition)


def draw_noise(
    dataset: Dataset,
    t: np.ndarray,
    mode: str,
    noise_seed: int,
    val_fraction: float,
    *,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noisy labels of the pool, train indices, validation indices) for one noise seed.

    Both depend only on (dataset, T, mode, noise seed), never on the training seed, and
    the validation split is stratified by the *noisy* label (DESIGN §4). Its size depends
    only on the pool size, so every seed's split has the same shape. Fixed `labels`
    (human noise) are data, not draws: every noise seed gets them, only its split differs.
    Class-conditional and human noise only: instance noise is drawn by `draw_member`.
    """
    if labels is None:
        seed = derive_seed("noise", dataset.name, matrix_sha(t), mode, noise_seed)
        noisy = corrupt(dataset.y, t, seed=seed, mode=mode)
    else:
        noisy = np.array(labels, dtype=dataset.y.dtype)  # a copy each seed owns
    return noisy, *_split(dataset, noisy, noise_seed, val_fraction)


def _split(
    dataset: Dataset, noisy: np.ndarray, noise_seed: int, val_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    train, val = stratified_split(
        noisy, val_fraction, seed=derive_seed("val", dataset.name, noise_seed)
    )
    if train.size < 1 or val.size < 1:
        raise UserError(
            f"dataset {dataset.name} is too small for a {val_fraction:g} validation split"
        )
    return train, val


@dataclass(frozen=True)
class NoiseDraw:
    """One noise seed's corruption of the training pool."""

    noisy: np.ndarray  # (N,) the pool's noisy labels
    train: np.ndarray  # (n_train,) indices into the pool
    val: np.ndarray  # (n_val,)
    # (K, K) the true T of this draw, the oracle of methods that require T: the noise's
    # T, or for instance noise the per-class mean of the draw's per-sample rows
    transition: np.ndarray
    rows: np.ndarray | None = None  # instance noise: each sample's row of T(x), (N, K)


def draw_member(
    dataset: Dataset,
    noise: NoiseSpec,
    t: np.ndarray,
    noise_seed: int,
    val_fraction: float,
    *,
    labels: np.ndarray | None = None,
) -> NoiseDraw:
    """`draw_noise` for any realized spec (`noise, t, labels = spec.realize(dataset)`).

    Instance noise is drawn per sample (Xia et al. 2020, `noisebench.instance`) from a
    seed of (dataset, rate, its std, noise seed), never the training seed; its split
    is drawn as every other noise's, stratified by the noisy labels."""
    if noise.kind != "instance":
        noisy, train, val = draw_noise(
            dataset, t, noise.mode, noise_seed, val_fraction, labels=labels
        )
        return NoiseDraw(noisy, train, val, t)
    from noisebench.instance import STD, class_transition, instance_noise

    seed = derive_seed("instance noise", dataset.name, noise.rate, STD, noise_seed)
    noisy, rows = instance_noise(dataset, noise.rate, seed=seed)
    train, val = _split(dataset, noisy, noise_seed, val_fraction)
    oracle = class_transition(dataset.y, rows, dataset.num_classes)
    return NoiseDraw(noisy, train, val, oracle, rows)


TUNING_PHASES = ("tune",)


def run(
    prepared: Prepared,
    *,
    on_epoch: Callable[[int, Any], None] | None = None,
    probe: Callable[[Prepared, Any], None] | None = None,
) -> list[dict[str, Any]]:
    """Train every seed of the configuration together and return one record per seed.

    In a tuning phase the clean test set is not even handed to the engine: its metrics
    are left empty, and nothing about it can influence a choice.
    """
    import torch

    from noisebench import engine, metrics, stages

    spec, ds = prepared.spec, prepared.dataset
    device = engine.resolve_device(spec.device)
    started = datetime.now(timezone.utc)
    needs_t = "transition" in prepared.method.requires
    score_test = spec.phase not in TUNING_PHASES
    shape, inputs = model_inputs(spec, ds, device)
    task = engine.Task(
        x=torch.tensor(ds.x, device=device).reshape(-1, *shape),
        y_noisy=torch.as_tensor(prepared.noisy, device=device),
        train_idx=torch.as_tensor(prepared.train_idx, device=device),
        val_idx=torch.as_tensor(prepared.val_idx, device=device),
        x_test=torch.tensor(ds.x_test, device=device).reshape(-1, *shape)
        if score_test
        else None,
        y_test=torch.as_tensor(ds.y_test, device=device) if score_test else None,
        num_classes=ds.num_classes,
        seeds=list(spec.seeds),
        transition=torch.as_tensor(
            prepared.oracle_transition(), dtype=torch.float32, device=device
        )
        if needs_t
        else None,
        inputs=inputs,
        y_clean=torch.as_tensor(ds.y, device=device),
    )
    estimator_seconds, t_error = 0.0, None
    if spec.transition == "estimated":
        from noisebench.transition import estimation_error

        task, estimator_seconds = stages.with_estimated_transition(
            prepared, task, device
        )
        truth = torch.as_tensor(prepared.oracle_transition())
        t_error = estimation_error(task.transition, truth).cpu()
    teacher_seconds, taught = 0.0, None
    if spec.teacher is not None:
        task, teacher_seconds, taught = stages.with_teacher(prepared, task, device)
    result = engine.fit(
        task,
        method=prepared.method,
        params=spec.params,
        config=spec.train,
        on_epoch=on_epoch,
        features=probe is not None,
    )
    if probe is not None:  # sees the final models' features and last layers
        probe(prepared, result)
    finished = datetime.now(timezone.utc)

    seconds = estimator_seconds + teacher_seconds + result.seconds
    common = records.common_fields(prepared, device, started, finished, seconds)
    y_clean = torch.as_tensor(ds.y)
    y_test = torch.as_tensor(ds.y_test)
    rows = []
    for s, (seed, noise_seed) in enumerate(
        zip(spec.seeds, spec.noise_seeds, strict=True)
    ):
        noisy = prepared.noisy[s]
        realized = confusion(ds.y, noisy, ds.num_classes)
        record = {
            **common,
            "run_id": uuid.uuid4().hex,
            "seed": int(seed),
            "noise_seed": int(noise_seed),
            "realized_rate": realized_rate(ds.y, noisy),
            "confusion_sha": matrix_sha(realized),
            "confusion": realized.ravel().tolist(),
            "val_acc_curve": result.val_acc[s].tolist(),
            "mem_noisy_curve": result.mem_noisy[s].tolist(),
            "mem_clean_curve": result.mem_clean[s].tolist(),
            "selected_curve": _selection_curve(prepared.method, result.selected[s]),
            "selected_clean_curve": _selection_curve(
                prepared.method, result.selected_clean[s]
            ),
            "transition_error": None if t_error is None else float(t_error[s]),
            "teacher": None
            if taught is None
            else stages.teacher_field(spec, taught, s),
            "error": None,
        }
        if taught is not None and not bool(
            torch.isfinite(taught.best_pool_logits[s]).all()
        ):
            # a student of non-finite soft targets learned nothing worth a number
            record |= {
                "status": "diverged",
                "error": "its teacher's soft targets are not finite",
            }
            record |= dict.fromkeys(records.METRICS + records.RELIABILITY)
        elif int(result.diverged_at[s]) >= 0:
            record |= {
                "status": "diverged",
                "error": f"non-finite loss in epoch {int(result.diverged_at[s]) + 1}",
            }
            record |= dict.fromkeys(records.METRICS + records.RELIABILITY)
        else:
            train = torch.as_tensor(prepared.train_idx[s])
            logits = result.pool_logits[s][train]
            y_noisy = torch.as_tensor(noisy)[train]
            best = int(result.best_epoch[s])
            mem_noisy, mem_clean = metrics.memorization(
                logits.argmax(-1), y_noisy, y_clean[train]
            )
            record |= {
                "status": "ok",
                "best_epoch": best + 1,
                "val_acc": _last_finite(result.val_acc[s]),
                "best_val_acc": float(result.val_acc[s, best]),
                "mem_noisy": mem_noisy,
                "mem_clean": mem_clean,
                "flip_auroc": metrics.flip_detection_auroc(
                    logits, y_noisy, y_clean[train]
                ),
                "label_precision": None
                if record["selected_clean_curve"] is None
                else _last_finite(result.selected_clean[s]),
            }
            if score_test:
                record |= _test_metrics(result, s, y_test)
                record |= _scaled(
                    result, s, torch.as_tensor(noisy), prepared.val_idx[s], y_test
                )
        rows.append(record)
    return rows


def _test_metrics(result, s: int, y_test) -> dict[str, float]:
    from noisebench import metrics

    logits = result.test_logits[s]
    count, correct, confidence = metrics.reliability(logits, y_test)
    return {
        "reliability_count": count,
        "reliability_correct": correct,
        "reliability_confidence": confidence,
        "test_acc": metrics.accuracy(logits, y_test),
        "test_acc_at_best_val": float(result.test_acc_at_best_val[s]),
        "ece": metrics.ece_of_bins(count, correct, confidence),
        "nll": metrics.nll(logits, y_test),
        "brier": metrics.brier(logits, y_test),
    }


def _scaled(result, s: int, noisy, val_idx, y_test) -> dict[str, float]:
    """Temperature scaling fitted on the member's noisy validation split (the final
    model's logits there), and the test ECE it gives."""
    import torch

    from noisebench import metrics

    val = torch.as_tensor(val_idx)
    t = metrics.fit_temperature(result.pool_logits[s][val], noisy[val])
    return {
        "temperature": t,
        "ece_scaled": metrics.ece(result.test_logits[s] / t, y_test),
    }


def _selection_curve(method, curve) -> list[float] | None:
    """A selecting method's per-epoch curve (NaN before it selects); None for the rest."""
    if not any(spec.selection for spec in method.state.values()):
        return None
    return curve.tolist()


def _last_finite(curve) -> float:
    """The last epoch's value; a pruned run stops early and leaves NaN after it."""
    import torch

    finite = curve[torch.isfinite(curve)]
    return float(finite[-1]) if finite.numel() else float("nan")
