"""The method contract (noisebench.testing) over every registered method, timm-style:
a new method is tested here without anyone writing a test for it."""

from __future__ import annotations

import pytest

from noisebench import get_method, list_methods
from noisebench.registry import load_errors
from noisebench.testing import CONTRACT

BUILTIN = {"ce", "ls", "gls", "forward", "backward", "flip"}
BUILTIN |= {"gce", "sce", "bootstrap_soft", "bootstrap_hard", "nce_mae"}


def test_builtin_methods_registered_without_load_errors():
    assert BUILTIN <= set(list_methods())
    assert load_errors() == {}


@pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", list_methods())
def test_contract(name, check):
    check(get_method(name))
