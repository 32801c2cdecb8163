"""Run records: what identifies a configuration, and the fields every record carries
(DESIGN.md §6). `store` writes and reads them; this module makes them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from noisebench.noise import matrix_sha

if TYPE_CHECKING:
    from noisebench.experiment import Prepared

METRICS = (
    "test_acc",
    "test_acc_at_best_val",
    "best_epoch",
    "val_acc",
    "best_val_acc",
    "ece",
    "nll",
    "brier",
    "mem_noisy",
    "mem_clean",
    "flip_auroc",
    "label_precision",
    "temperature",
    "ece_scaled",
)
# the test set's reliability diagram: per confidence bin, samples, hits, confidence sum
RELIABILITY = ("reliability_count", "reliability_correct", "reliability_confidence")

# The engine revision of every noisebench release. Releases of one revision give the
# same results for the same configuration on the same CPU; a record's configuration
# hash covers the method's code but not the engine's (training loop, data split, noise
# draw, metrics), so a release that changes the results of an unchanged configuration
# takes a new revision, and the records of older revisions are no longer comparable:
# the leaderboard sets them aside and `--any-commit` does not reuse them. A release
# that changes nothing of the kind keeps its predecessor's revision, and its board.
ENGINE_REVISIONS = {"0.1.0": 1}


def engine_revision(version: str | None) -> int | None:
    """The engine revision of a noisebench release; None for one this release does not
    know (a newer one, or a record without a version)."""
    return ENGINE_REVISIONS.get(version) if version is not None else None


def same_engine(version: str | None) -> bool:
    """Whether records made by noisebench `version` are comparable with this one's."""
    from noisebench import __version__

    return engine_revision(version) == ENGINE_REVISIONS[__version__]


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=list)


def sha(obj: Any) -> str:
    data = (
        obj.tobytes() if isinstance(obj, np.ndarray) else canonical_json(obj).encode()
    )
    return hashlib.sha256(data).hexdigest()[:16]


def config_identity(prepared: Prepared) -> dict[str, Any]:
    """Everything that defines the experiment except its seeds: the leaderboard's key."""
    from noisebench.experiment import teacher_identity

    spec = prepared.spec
    return {
        "method": spec.method,
        "method_version": prepared.method.version,
        # a plugin's records never stand for a built-in's, nor old code's for new code's
        "method_origin": prepared.method.origin,
        "method_sha": prepared.method.source_sha,
        "params": spec.params,
        "dataset": prepared.dataset.name,
        "dataset_sha": prepared.dataset.sha,
        "train": spec.train.identity(),
        "noise": {
            "kind": spec.noise.kind,
            "rate": spec.noise.rate,
            "mode": spec.noise.mode,
            # human noise: its labels themselves (equal T, other labels: another
            # configuration); absent otherwise, so other configurations keep their hash
            **(
                {"labels_sha": spec.noise.labels_sha}
                if spec.noise.labels_sha is not None
                else {}
            ),
        },
        "transition_sha": matrix_sha(prepared.transition),
        "transition_source": spec.transition,
        **noise_generator(spec.noise.kind),
        # distillation: the teacher; absent otherwise, so other hashes stay as they were
        **({"teacher": teacher_identity(spec.teacher)} if spec.teacher else {}),
    }


def noise_generator(kind: str) -> dict[str, str]:
    """Instance noise's generator version, for configuration and study identities;
    empty for every other noise type, so their hashes stay as they were."""
    if kind != "instance":
        return {}
    from noisebench.instance import GENERATOR

    return {"noise_generator": GENERATOR}


def config_hash(prepared: Prepared) -> str:
    return sha(config_identity(prepared))


def stored_runs(
    prepared: Prepared, store: str | Path, *, any_commit: bool = False
) -> dict[int, dict[str, Any]]:
    """This configuration's finished records already in the store, by seed: the newest
    per seed, of the same phase and noise seed, `ok` or `diverged` (a run that failed
    is not finished work), and made by this very noisebench (its git commit, or its
    version when installed): the configuration hash covers the method's code, not the
    engine's, so a record of another commit is not this command's work. With
    `any_commit`, it is, if a noisebench of the same engine revision made it (any
    commit, any release of `ENGINE_REVISIONS`' same revision): the leaderboard's rule,
    so a board built over many commits can be finished where it stopped."""
    from noisebench import __version__
    from noisebench.leaderboard import dedupe
    from noisebench.store import read_records, runs_dir

    if not runs_dir(store).is_dir():
        return {}
    spec, key, commit = prepared.spec, config_hash(prepared), git_sha()
    noise_seed_of = dict(zip(spec.seeds, spec.noise_seeds, strict=True))
    table = read_records(store, config_hash=key)
    mine = table.filter(np.asarray(table.column("config_hash")) == key)
    return {
        r["seed"]: r
        for r in dedupe(mine.to_pylist())
        if r["phase"] == spec.phase
        and r["status"] in ("ok", "diverged")
        and noise_seed_of.get(r["seed"], -1) == r["noise_seed"]
        and (
            same_engine(r["noisebench_version"])
            if any_commit
            else r["noisebench_version"] == __version__ and r["git_sha"] == commit
        )
    }


def model_fields(prepared: Prepared) -> dict[str, Any]:
    """The model's size and the shape one sample takes, as records store them."""
    from noisebench.experiment import sample_shape
    from noisebench.models import get_model

    spec, ds = prepared.spec, prepared.dataset
    shape = sample_shape(spec, ds)
    params, _ = get_model(spec.train.model).sizes(
        shape, spec.train.hidden, ds.num_classes
    )
    return {"model_params": params, "input_shape": list(shape)}


def common_fields(
    prepared: Prepared, device, started, finished, seconds
) -> dict[str, Any]:
    import torch

    from noisebench import __version__
    from noisebench.store import SCHEMA_VERSION

    spec = prepared.spec
    members = len(spec.seeds)
    return {
        "schema_version": SCHEMA_VERSION,
        "config_hash": config_hash(prepared),
        "method": spec.method,
        "method_version": prepared.method.version,
        "method_origin": prepared.method.origin,
        "method_sha": prepared.method.source_sha,
        "params": canonical_json(spec.params),
        "params_hash": sha(spec.params),
        "dataset": prepared.dataset.name,
        "dataset_sha": prepared.dataset.sha,
        "model": spec.train.model,
        **model_fields(prepared),
        "train_config": canonical_json(spec.train.identity()),
        "epochs": spec.train.epochs,
        "noise_type": spec.noise.kind,
        "noise_mode": spec.noise.mode,
        "noise_rate": float(spec.noise.rate),
        "transition_sha": matrix_sha(prepared.transition),
        "transition_source": spec.transition,
        **noise_generator(spec.noise.kind),
        "class_map": canonical_json(prepared.dataset.class_map)
        if spec.noise.kind == "asymmetric"
        else None,
        "run_seeds": [int(s) for s in spec.seeds],
        "phase": spec.phase,
        "study": spec.study,
        "trial": spec.trial,
        "wall_time_s": seconds / members,
        "ensemble_size": members,
        "noisebench_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()} ({cpu_kernels()}), {_threads(torch.get_num_threads())}",
        "git_sha": git_sha(),
        "started_at": started,
        "finished_at": finished,
    }


@functools.cache
def cpu_name() -> str:
    """The CPU's model where Linux says it, else the architecture. Records keep it
    because two CPUs' kernels round differently and training amplifies that: the same
    seeds agree bitwise on one machine, within seed noise across two."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_kernels() -> str:
    """The vector instructions torch's CPU kernels dispatch to (AVX2, AVX512, ...).
    One cloud "AMD EPYC" can be either, and the two round differently: the board's
    digits MLP, rerun with AVX2 kernels where AVX512 ones had made it, moved a seed's
    last-epoch accuracy by 9 of 359 test samples."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def git_sha() -> str | None:
    """The source checkout's commit, when noisebench runs from one (never from a wheel)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
