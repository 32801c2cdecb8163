"""Helpers shared by several test modules: a valid record, noisebench subprocesses, and
image datasets written in the Hugging Face hub's parquet layout."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from noisebench import __version__
from noisebench.store import SCHEMA

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def logits_batch(k: int, b: int = 32, scale: float = 1.0, seed: int = 0):
    """Random float32 logits (b, k) and labels (b,), reproducible."""
    import torch

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, k, generator=g) * scale
    y = torch.randint(k, (b,), generator=g)
    return z, y


def np_softmax(z) -> np.ndarray:
    """softmax over the last axis in numpy float64, max-shifted."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


SHA = "0123456789abcdef"


def train_config(model: str = "mlp") -> str:
    return json.dumps(
        {
            "model": model,
            "hidden": [8],
            "epochs": 3,
            "optimizer": "adam",
            "lr": 0.001,
            "batch_size": 32,
            "weight_decay": 0.0,
            "warmup": 0.0,
            "val_fraction": 0.1,
        }
    )


TRAIN = train_config()


def record(**overrides: Any) -> dict[str, Any]:
    """A record that fits the schema and every reader's checks; its config hash
    follows its method, so rows of two methods are two configurations."""
    row = dict.fromkeys(SCHEMA.names)
    row |= {
        "schema_version": 3,
        "run_id": "r",
        "config_hash": "c-" + overrides.get("method", "ce"),
        "method": "ce",
        "method_version": 1,
        "method_origin": "builtin",
        "method_sha": SHA,
        "params": "{}",
        "params_hash": "p",
        "dataset": "digits",
        "dataset_sha": "d",
        "model": "mlp",
        "train_config": TRAIN,
        "epochs": 3,
        "noise_type": "symmetric",
        "noise_mode": "exact",
        "noise_rate": 0.2,
        "seed": 0,
        "noise_seed": 0,
        "run_seeds": [0, 1],
        "phase": "evaluate",
        "status": "ok",
        "test_acc": 0.5,
        "test_acc_at_best_val": 0.6,
        "finished_at": T0,
        "started_at": T0,
        "noisebench_version": __version__,
    }
    return row | overrides


def seed_runs(method: str, values, **overrides: Any) -> list[dict[str, Any]]:
    """One record per value: seed i with noise seed i, all of them asked for, the value
    as both accuracies."""
    seeds = list(range(len(values)))
    return [
        record(
            method=method,
            seed=s,
            noise_seed=s,
            run_seeds=seeds,
            test_acc=v,
            test_acc_at_best_val=v,
            **overrides,
        )
        for s, v in enumerate(values)
    ]


SPAWNED: list[subprocess.Popen] = []  # killed after each test (conftest) if still alive


def spawn(*args: str) -> subprocess.Popen:
    """`noisebench ARGS` in a subprocess, with -X faulthandler so that `finish` can make
    a hung one show its stacks."""
    command = [sys.executable, "-X", "faulthandler", "-m", "noisebench.cli", *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    SPAWNED.append(proc)
    return proc


def reap_spawned() -> list[int]:
    """Kill what a test spawned and left running (it failed before waiting for it):
    an orphaned worker would keep training and slow every later test. Returns the pids."""
    alive = [p for p in SPAWNED if p.poll() is None]
    for proc in alive:
        proc.kill()
        proc.communicate()
    SPAWNED.clear()
    return [p.pid for p in alive]


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    """A subprocess's (stdout, stderr). One that hangs is made to dump every thread's
    stack (see `spawn`) and the test fails with it, rather than leaving a bare
    TimeoutExpired and a live process behind."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate()
        pytest.fail(f"noisebench hung for {timeout} s; its stacks:\n{err[-6000:]}")


# image datasets in the hub's layout


def png(pixels: np.ndarray) -> bytes:
    """(H, W) grey or (H, W, 3) RGB uint8 -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def random_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def hub_table(
    stack: np.ndarray,
    labels,
    *,
    column: str = "img",
    label: str = "label",
    extra: dict | None = None,
    metadata: bool = True,
    structs: bool = True,
) -> pa.Table:
    """A table as the hub stores one: PNG structs (or plain bytes), labels, and the
    `huggingface` schema metadata that makes `datasets` read the column as Image."""
    cells = [png(a) for a in stack]
    if structs:
        images_col = pa.array(
            [{"bytes": b, "path": None} for b in cells],
            pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        )
    else:
        images_col = pa.array(cells, pa.binary())
    table = pa.table({column: images_col, label: labels, **(extra or {})})
    if metadata:
        features = {
            column: {"_type": "Image"},
            label: {"dtype": "int64", "_type": "Value"},
        }
        for name in extra or {}:
            features[name] = {"dtype": "int64", "_type": "Value"}
        info = {"info": {"features": features}}
        table = table.replace_schema_metadata({"huggingface": json.dumps(info)})
    return table


def write_folder(folder: Path, train: pa.Table, test: pa.Table | None = None) -> Path:
    (folder / "data").mkdir(parents=True)
    pq.write_table(train, folder / "data" / "train-00000-of-00001.parquet")
    if test is not None:
        pq.write_table(test, folder / "data" / "test-00000-of-00001.parquet")
    return folder


def write_suite(
    store,
    name: str,
    *,
    methods,
    rates,
    noise="symmetric",
    epochs=3,
    hidden=16,
    estimated=(),
) -> str:
    """A small suite (2 trials, 1 tuning seed, 2 final seeds) in <store>/suites."""
    (store / "suites").mkdir(exist_ok=True)
    (store / "suites" / f"{name}.toml").write_text(
        f'dataset = "digits"\nmethods = {json.dumps(list(methods))}\n'
        f"estimated = {json.dumps(list(estimated))}\n"
        "trials = 2\ntune_seeds = 1\nfinal_seeds = 2\n"
        f'[[noise]]\ntype = "{noise}"\nrates = {json.dumps(list(rates))}\n'
        f"[train]\nepochs = {epochs}\nhidden = [{hidden}]\n"
    )
    return name
