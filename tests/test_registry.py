"""The registry fails loudly, discovers plugins, and the contract suite catches broken methods."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import noisebench
from noisebench import Float, get_method, list_methods, register_method
from noisebench.errors import UserError
from noisebench.registry import METHODS, Method, Registry, RegistryError, builtin_dir
from noisebench.testing import (
    check_deterministic,
    check_finite,
    check_neutral,
    check_params_declared,
    check_smoke_fit,
)


def test_unknown_method_suggests_the_closest_name():
    with pytest.raises(
        UserError, match=r"unknown method 'lss' \(did you mean 'ls'\?\)"
    ):
        get_method("lss")


def test_duplicate_name_is_an_error_and_keeps_the_first():
    original = get_method("ls")
    with pytest.raises(RegistryError, match="duplicate method name 'ls'"):
        register_method("ls", search_space={}, defaults={})(
            lambda logits, labels, ctx: None
        )
    assert get_method("ls") is original


@pytest.mark.parametrize("name", ["Bad", "1ce", "with-dash", ""])
def test_invalid_names_rejected(name):
    registry: Registry[int] = Registry("thing")
    with pytest.raises(RegistryError, match="invalid thing name"):
        registry.register(name, 1, origin="test")


def test_search_space_defaults_and_signature_must_agree():
    def loss(logits, labels, ctx, *, a):
        return logits.sum()

    with pytest.raises(RegistryError, match="must name the same parameters"):
        register_method(
            "mismatch_demo", search_space={"a": Float(0, 1)}, defaults={"b": 0.1}
        )(loss)
    with pytest.raises(RegistryError, match="outside its search space"):
        register_method(
            "outside_demo", search_space={"a": Float(0, 1)}, defaults={"a": 2.0}
        )(loss)
    assert "mismatch_demo" not in METHODS and "outside_demo" not in METHODS


def test_param_parsing_types_and_ranges():
    ls = get_method("ls")
    assert ls.parse(["smoothing=0.25"]) == {"smoothing": 0.25}
    assert ls.parse([]) == ls.defaults
    with pytest.raises(
        UserError, match="no parameter 'smoothin'.*did you mean 'smoothing'"
    ):
        ls.parse(["smoothin=0.2"])
    with pytest.raises(UserError, match="not a valid float"):
        ls.parse(["smoothing=abc"])
    with pytest.raises(UserError, match=r"out of range \[0.0, 1.0\)"):
        ls.parse(["smoothing=1.5"])
    with pytest.raises(UserError, match="key=value"):
        ls.parse(["smoothing"])
    assert get_method("gls").parse(["smooth_rate=-3"]) == {
        "smooth_rate": -3.0
    }  # NLS is valid


def test_builtin_files_are_named_after_their_method():
    files = {p.stem: p for p in builtin_dir("methods").glob("*.py")}
    assert set(files) <= set(list_methods())
    for stem, path in files.items():
        assert Path(METHODS.origin(stem)).resolve() == path.resolve()


def test_public_api_is_importable_without_torch():
    code = "import sys, noisebench; noisebench.Context; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
    assert {"register_method", "get_method", "list_methods", "Context"} <= set(
        noisebench.__all__
    )


def _plugin(tmp_path: Path, name: str, module_source: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(module_source))
    dist = tmp_path / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(f"[noisebench.methods]\n{name} = {name}\n")


_CE_PLUGIN = """
import torch.nn.functional as F
from noisebench import register_method

@register_method("{name}", search_space={{}}, defaults={{}}, neutral={{}})
def loss(logits, labels, ctx):
    '''A plugin copy of cross-entropy.'''
    return F.cross_entropy(logits.float(), labels)
"""


def _noisebench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "noisebench.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )


def test_entry_point_plugins_are_discovered_and_broken_ones_reported(tmp_path):
    _plugin(tmp_path, "nb_demo_plugin", _CE_PLUGIN.format(name="demo_ce"))
    _plugin(
        tmp_path, "nb_broken_plugin", "raise ImportError('missing dependency foo')\n"
    )
    out = _noisebench(tmp_path, "methods", "--json")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    by_name = {m["name"]: m for m in listing["methods"]}
    assert {"demo_ce", "ls"} <= set(by_name)
    assert by_name["demo_ce"]["origin"] == "entry-point:nb_demo_plugin"
    assert by_name["ls"]["origin"] == "builtin"
    ((source, error),) = listing["load_errors"].items()
    assert "nb_broken_plugin" in source and "missing dependency foo" in error


def test_plugins_never_take_a_builtin_or_each_others_name(tmp_path):
    """A plugin registering a built-in name is refused and the built-in kept; two
    plugins registering one name are both reported, and neither is chosen."""
    _plugin(tmp_path, "nb_fake_ls", _CE_PLUGIN.format(name="ls"))
    _plugin(tmp_path, "nb_dup_a", _CE_PLUGIN.format(name="dup_loss"))
    _plugin(tmp_path, "nb_dup_b", _CE_PLUGIN.format(name="dup_loss"))
    _plugin(tmp_path, "nb_fine", _CE_PLUGIN.format(name="fine_loss"))
    listing = json.loads(_noisebench(tmp_path, "methods", "--json").stdout)
    by_name = {m["name"]: m for m in listing["methods"]}
    assert by_name["ls"]["origin"] == "builtin"
    assert "dup_loss" not in by_name and "fine_loss" in by_name
    errors = " ".join(f"{k}: {v}" for k, v in listing["load_errors"].items())
    assert "nb_fake_ls" in errors and "built-in names are reserved" in errors
    assert "nb_dup_a" in errors and "nb_dup_b" in errors
    out = _noisebench(tmp_path, "evaluate", "--method", "dup_loss", "--no-record")
    assert out.returncode == 2
    ((line,),) = [out.stderr.strip().splitlines()]
    assert "nb_dup_a" in line and "nb_dup_b" in line and "neither is used" in line


def _method(fn, **meta) -> Method:
    base = {
        "search_space": {},
        "defaults": {},
        "neutral": {},
        "bounds": {},
        "requires": (),
        "paper": "",
        "version": 1,
        "summary": "test",
    }
    return Method(name="broken", fn=fn, **{**base, **meta})


def test_contract_catches_log_of_softmax_overflow():
    def naive(
        logits, labels, ctx
    ):  # log(softmax) underflows to log(0) = -inf at large logits
        return (
            -torch.log(torch.softmax(logits.float() * 30, -1))
            .gather(1, labels[:, None])
            .mean()
        )

    with pytest.raises(AssertionError):
        check_finite(_method(naive))


def test_contract_catches_global_rng_use():
    def noisy(logits, labels, ctx):
        return F.cross_entropy(logits.float(), labels) * (1 + 0.01 * torch.rand(()))

    with pytest.raises(AssertionError):
        check_deterministic(_method(noisy))


def test_contract_catches_wrong_neutral_point():
    def doubled(logits, labels, ctx):
        return 2 * F.cross_entropy(logits.float(), labels)

    with pytest.raises(AssertionError):
        check_neutral(_method(doubled))


def test_contract_catches_search_space_outside_valid_bounds():
    def loss(logits, labels, ctx, *, a):
        return F.cross_entropy(logits.float(), labels)

    bad = _method(
        loss,
        search_space={"a": Float(0.0, 1.0)},
        defaults={"a": 0.1},
        bounds={"a": (0.0, 1.0)},
    )
    with pytest.raises(AssertionError):
        check_params_declared(bad)


def test_contract_catches_a_method_that_does_not_learn():
    def ignores_labels(logits, labels, ctx):
        return logits.float().logsumexp(-1).mean() * 0 + (logits.float() ** 2).mean()

    with pytest.raises(AssertionError, match="test accuracy"):
        check_smoke_fit(_method(ignores_labels))
