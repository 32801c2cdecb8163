"""The first stage of a two-stage run (DESIGN.md §5), trained before the run's own
model on the same noisy labels and splits, with its own seeds and the test set
withheld: Patrini et al.'s transition estimator (`--transition estimated`) and the
distillation teacher (`--teacher`). Each keeps the last configuration's result, so the
trials of a tuning study (or a preset's temperatures) train it once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from noisebench import records
from noisebench.experiment import Prepared, RunSpec, teacher_identity
from noisebench.noise import matrix_sha
from noisebench.registry import get_method
from noisebench.sampling import derive_seed

# The estimate of the configuration run last: a tuning study's trials differ only in
# the method's params, so they share the estimator instead of retraining it per trial.
_ESTIMATES: dict[str, tuple[Any, float]] = {}


def estimator_identity(prepared: Prepared) -> dict[str, Any]:
    """Everything T̂ depends on: data, noise draws and splits, seeds, training setup."""
    spec = prepared.spec
    return {
        "dataset_sha": prepared.dataset.sha,
        "transition_sha": matrix_sha(prepared.transition),
        # instance noise's nominal T can equal a symmetric one; its draws differ
        "noise_kind": spec.noise.kind,
        "noise_mode": spec.noise.mode,
        "labels_sha": spec.noise.labels_sha,  # human noise: the labels themselves
        "seeds": list(spec.seeds),
        "noise_seeds": list(spec.noise_seeds),
        "train": spec.train.identity(),
    }


def with_estimated_transition(prepared: Prepared, task, device):
    """The task with each member's T̂, and the seconds spent estimating it (0 when the
    last configuration run was this one)."""
    key = records.canonical_json(
        {**estimator_identity(prepared), "device": str(device)}
    )
    fresh = key not in _ESTIMATES
    if fresh:
        _ESTIMATES.clear()  # one configuration at a time
        _ESTIMATES[key] = _estimate_transition(task, prepared.spec.train)
    t_hat, seconds = _ESTIMATES[key]
    estimated = replace(task, transition=t_hat, transition_source="estimated")
    return estimated, seconds if fresh else 0.0


def _estimate_transition(task, config):
    """Stages 1-4 of §5: train cross-entropy on the noisy training split (every member
    at once, the test set withheld), take η = softmax of its best noisy-validation model
    on each member's training inputs, and estimate T per member from its anchors.
    Returns T̂ (S, K, K) on the task's device, and the seconds the estimator took."""
    from noisebench import engine
    from noisebench.transition import estimate_transition

    # its own seeds (init, batch order), so the two trainings of a seed are independent
    seeds = [derive_seed("transition estimator", s) for s in task.seeds]
    estimator = engine.fit(
        replace(
            task, x_test=None, y_test=None, transition=None, seeds=seeds, y_clean=None
        ),
        method=get_method("ce"),
        params={},
        config=replace(config, warmup=0.0),
        best_pool=True,
    )
    # the estimator is the model of its best noisy-validation epoch, as everywhere in
    # the protocol (and as Patrini et al.'s checkpointing did): an overfit CE model
    # has memorized the noise, and its η carries no trace of T
    train_idx = task.train_idx.cpu()
    logits = estimator.best_pool_logits.gather(
        1, train_idx.unsqueeze(-1).expand(-1, -1, task.num_classes)
    )
    t_hat = estimate_transition(logits.softmax(-1))
    return t_hat.to(task.x.device), estimator.seconds


# The teacher of the configuration run last, as logits (the temperature is applied
# after): tuning trials, and a preset's temperatures, share it instead of retraining.
_TEACHERS: dict[str, tuple[Any, float]] = {}


def with_teacher(prepared: Prepared, task, device):
    """The task with each member's soft targets, the seconds the teacher took (0 when
    the last configuration's teacher was this one), and the teacher's FitResult."""
    import torch

    from noisebench import engine

    spec = prepared.spec
    teacher = spec.teacher
    key = records.canonical_json(
        {
            **estimator_identity(prepared),
            "teacher": {
                k: v
                for k, v in teacher_identity(teacher).items()
                if k not in ("temperature", "alpha")
            },
            "device": str(device),
        }
    )
    fresh = key not in _TEACHERS
    if fresh:
        _TEACHERS.clear()  # one teacher at a time
        method = get_method(teacher.method)
        needs_t = "transition" in method.requires
        seeds = [derive_seed("teacher", s) for s in task.seeds]
        trained = engine.fit(
            replace(
                task,
                x_test=None,
                y_test=None,
                y_clean=None,
                seeds=seeds,
                transition=torch.as_tensor(
                    prepared.oracle_transition(), dtype=torch.float32, device=device
                )
                if needs_t
                else None,
                transition_source="oracle",
            ),
            method=method,
            params=teacher.params,
            config=spec.train,
            best_pool=True,  # the teacher is its best noisy-validation model
        )
        _TEACHERS[key] = (trained, trained.seconds)
    trained, seconds = _TEACHERS[key]
    probs = (trained.best_pool_logits / teacher.temperature).softmax(-1)
    soft = engine.Teacher(
        probs=probs.to(device), temperature=teacher.temperature, alpha=teacher.alpha
    )
    return replace(task, teacher=soft), seconds if fresh else 0.0, trained


def teacher_field(spec: RunSpec, trained, s: int) -> str:
    """The teacher of member s as the record's JSON: what it is, and which member."""
    best = int(trained.best_epoch[s])
    return records.canonical_json(
        {
            **teacher_identity(spec.teacher),
            "seed": derive_seed("teacher", spec.seeds[s]),
            "best_epoch": best + 1,
            "best_val_acc": float(trained.val_acc[s, best]),
        }
    )
