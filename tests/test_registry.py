"""The registry fails loudly, discovers plugins, and the contract suite catches broken methods."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import noisebench
from noisebench import Bounds, Float, get_method, list_methods, register_method
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
    with pytest.raises(UserError, match=r"out of range \[0, 1\)"):
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


@pytest.fixture
def fresh_registry(monkeypatch, tmp_path):
    """Discovery from scratch over a methods/ folder of the test's own."""
    from noisebench import registry

    folder = tmp_path / "methods"
    folder.mkdir()
    monkeypatch.setattr(registry, "METHODS", Registry("method"))
    monkeypatch.setattr(registry, "_LOAD_ERRORS", {})
    monkeypatch.setattr(registry, "_CONTESTED", {})
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(registry, "builtin_dir", lambda kind: folder)
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    for name in ("ce", "ls"):
        (folder / f"{name}.py").write_text(
            (builtin_dir("methods") / f"{name}.py").read_text()
        )
    return folder


def test_a_method_file_cannot_take_another_files_name(fresh_registry):
    """methods/aaa.py sorts before ls.py and registers "ls": it is refused whole, and
    the built-in ls is the one that runs."""
    (fresh_registry / "aaa.py").write_text(_CE_PLUGIN.format(name="ls"))
    (fresh_registry / "extra.py").write_text(
        _CE_PLUGIN.format(name="extra") + _CE_PLUGIN.format(name="sneaky")
    )
    assert list_methods() == ["ce", "ls"]
    assert get_method("ls").fn.__module__ == "noisebench_methods.ls"
    errors = noisebench.registry.load_errors()
    assert "registers 'ls'" in errors[str(fresh_registry / "aaa.py")]
    assert "'extra', 'sneaky'" in errors[str(fresh_registry / "extra.py")]
    with pytest.raises(UserError, match="method 'extra' failed to load"):
        get_method("extra")


def test_a_broken_builtin_keeps_its_name_reserved(fresh_registry):
    (fresh_registry / "ls.py").write_text("raise RuntimeError('broken on purpose')\n")
    assert list_methods() == ["ce"]
    with pytest.raises(UserError, match="'ls' failed to load.*broken on purpose"):
        get_method("ls")


def test_source_hash_ignores_comments_formatting_and_docstrings(tmp_path):
    from noisebench.registry import source_sha

    def load(text: str):
        path = tmp_path / f"m{abs(hash(text))}.py"
        path.write_text(textwrap.dedent(text))
        return runpy.run_path(str(path))["loss"]

    base = load('''
        def loss(logits, labels, ctx):
            """Doc."""
            return logits.sum()
    ''')
    cosmetic = load('''
        # a comment
        def loss(logits,labels,ctx):
            """Another docstring."""
            return logits.sum()   # trailing
    ''')
    changed = load("""
        def loss(logits, labels, ctx):
            return 2 * logits.sum()
    """)
    assert source_sha(base) == source_sha(cosmetic) != source_sha(changed)
    assert len(source_sha(base)) == 16
    # no source at all (built in a REPL): the bytecode still tells code apart
    assert source_sha(eval("lambda z, y, c: z.sum()")) != source_sha(
        eval("lambda z, y, c: 2 * z.sum()")
    )


def test_records_carry_the_methods_origin_and_source_hash():
    from noisebench.data import resolve_card
    from noisebench.experiment import RunSpec, prepare, run, train_config_for
    from noisebench.noise import NoiseSpec

    spec = RunSpec(
        method="ls",
        params={"smoothing": 0.1},
        dataset="digits",
        noise=NoiseSpec(rate=0.2),
        train=train_config_for(resolve_card("digits"), epochs=1, hidden=[8]),
        seeds=(0,),
        device="cpu",
    )
    (record,) = run(prepare(spec))
    ls = get_method("ls")
    assert record["method_origin"] == "builtin" == ls.origin
    assert record["method_sha"] == ls.source_sha
    # the model's size, against nn.Linear layers of the same widths (64-8-10)
    assert record["model_params"] == (64 * 8 + 8) + (8 * 10 + 10)
    assert record["input_shape"] == [64]


def test_local_method_files_of_a_wheel_install_are_named(tmp_path, monkeypatch):
    """Installed without -e, noisebench runs its own copy of the built-ins: a file
    added to ./methods/ is not loaded, and noisebench says so instead of ignoring it."""
    from noisebench import registry

    monkeypatch.chdir(tmp_path)
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "mine.py").write_text(_CE_PLUGIN.format(name="mine"))
    (tmp_path / "methods" / "ls.py").write_text("# edited\n")
    notes = registry.unloaded_local_files()
    assert any(n.startswith("methods/mine.py is not loaded") for n in notes)
    assert any(n.startswith("methods/ls.py differs") for n in notes)
    with pytest.raises(
        UserError, match="methods/mine.py is not loaded.*pip install -e"
    ):
        get_method("mine")


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda z, y, ctx: F.cross_entropy(z, y, reduction="none"), r"returned \(8,\)"),
        (lambda z, y, ctx: z.sum() * float("nan"), "non-finite loss"),
        (lambda z, y, ctx: 1 / 0, "raised ZeroDivisionError"),
        (lambda z, y, ctx: 0.5, "returned float"),
        (lambda z, y, ctx: torch.tensor(1.0), "no gradient"),
    ],
)
def test_a_broken_loss_is_refused_before_training(fn, message):
    from noisebench.engine import probe_loss

    with pytest.raises(UserError, match=message):
        probe_loss(_method(fn), {}, num_classes=10)
    probe_loss(
        get_method("ls"), {"smoothing": 0.1}, num_classes=10
    )  # a good one passes


def test_a_plugin_returning_a_non_scalar_loss_is_reported_with_its_file(tmp_path):
    """Through the CLI: the plugin's run fails with one line naming its origin, before
    any record; every other method still lists and runs."""
    _plugin(
        tmp_path,
        "nb_vector",
        """
        import torch.nn.functional as F
        from noisebench import register_method

        @register_method("vector_loss", search_space={}, defaults={})
        def loss(logits, labels, ctx):
            return F.cross_entropy(logits.float(), labels, reduction="none")
        """,
    )
    store = tmp_path / "store"
    out = _noisebench(
        tmp_path, "evaluate", "--method", "vector_loss", "--epochs", "1",
        "--store", str(store),
    )  # fmt: skip
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert "vector_loss" in line and "nb_vector" in line and "scalar" in line
    assert not store.exists()
    out = _noisebench(
        tmp_path, "evaluate", "--method", "ce", "--epochs", "1", "--seeds", "1",
        "--no-record",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "closed, inside, outside",
    [
        ("[)", [0.0, 0.5], [1.0, -0.1]),
        ("[]", [0.0, 1.0], [1.0001, -1e-9]),
        ("(]", [1e-9, 1.0], [0.0, 1.5]),
        ("()", [0.5], [0.0, 1.0]),
    ],
)
def test_bounds_include_exactly_the_ends_they_say(closed, inside, outside):
    bounds = Bounds(0.0, 1.0, closed)
    assert all(bounds.contains(v) for v in inside)
    assert not any(bounds.contains(v) for v in outside)
    assert bounds.describe() == f"{closed[0]}0, 1{closed[1]}"


def test_a_closed_bound_admits_its_end_and_names_itself_in_the_error():
    def loss(logits, labels, ctx, *, beta):
        return F.cross_entropy(logits.float(), labels)

    method = _method(
        loss,
        search_space={"beta": Float(0.5, 1.0)},
        defaults={"beta": 0.8},
        bounds={"beta": (0.0, 1.0, "[]")},
    )
    assert method.resolve({"beta": 1.0}) == {"beta": 1.0}
    with pytest.raises(UserError, match=r"beta=1.5 is out of range \[0, 1\]"):
        method.resolve({"beta": 1.5})
    check_params_declared(method)  # [0.5, 1.0] lies inside [0, 1]
