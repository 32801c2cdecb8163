"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
from helpers import reap_spawned


@pytest.fixture(autouse=True)
def _no_orphaned_processes():
    """A test that fails between spawning noisebench and waiting for it (a missed
    deadline, a failed assert) must not leave the process training in the background."""
    yield
    reap_spawned()


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module of tiny tensors: extra threads only add overhead,
    and on a busy machine oversubscription made such modules several times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
