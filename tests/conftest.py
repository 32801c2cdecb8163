"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module of tiny tensors: extra threads only add overhead,
    and on a busy machine oversubscription made such modules several times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
