"""Helpers shared by several test modules: a valid record, and noisebench subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

import pytest

from noisebench.store import SCHEMA

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
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
    }
    return row | overrides


def spawn(*args: str) -> subprocess.Popen:
    """`noisebench ARGS` in a subprocess, with -X faulthandler so that `finish` can make
    a hung one show its stacks."""
    command = [sys.executable, "-X", "faulthandler", "-m", "noisebench.cli", *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


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
