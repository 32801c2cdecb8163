"""`noisebench methods check`: one method, loaded on its own, through the contract suite
check by check. Every check can fail, and the report names the one that did."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch.nn.functional as F
from typer.testing import CliRunner

from noisebench.cli import app
from noisebench.registry import METHODS, builtin_dir, list_methods

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    # the nan_at_batch_one fixture takes the spread of a batch of one, on purpose
    pytest.mark.filterwarnings(r"ignore:std\(\)\W+degrees of freedom:UserWarning"),
]

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "ci" / "method_template.py"
# written out here, not read from the code: the report must name exactly these
CHECKS = [
    "loads",
    "metadata",
    "params_declared",
    "finite",
    "random_params",
    "neutral",
    "deterministic",
    "smoke_fit",
    "state_isolated",
    "pair_neutral",
]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def method_file(folder: Path, name: str, body: str, *, header: str = "") -> Path:
    """methods/<name>.py: the imports, then `body` with NAME replaced by `name`."""
    path = folder / f"{name}.py"
    imports = (
        "import numpy as np\nimport torch\nimport torch.nn.functional as F\n"
        "from noisebench import Float, PerSample, register_method\n"
    )
    path.write_text(header + imports + textwrap.dedent(body).replace("NAME", name))
    return path


def check_json(path: Path) -> tuple[int, dict]:
    result = invoke("methods", "check", str(path), "--json")
    return result.exit_code, json.loads(result.stdout)


# One file per way to break the contract: (name, file body, the check that must fail,
# what its one-line reason must say).
BROKEN = {
    "no_summary": (
        # no docstring anywhere: `noisebench methods` would have nothing to show
        """
        @register_method("NAME", search_space={}, defaults={}, neutral={})
        def loss(logits, labels, ctx):
            return F.cross_entropy(logits.float(), labels)
        """,
        "metadata",
        "one-line summary",
    ),
    "wide_space": (
        """
        @register_method(
            "NAME",
            search_space={"a": Float(0.0, 2.0)},
            defaults={"a": 0.5},
            neutral={"a": 0.0},
            bounds={"a": (0.0, 1.0)},
        )
        def loss(logits, labels, ctx, *, a):
            '''CE against (1 - a) onehot + a / K, but the tuner may propose a >= 1.'''
            return F.cross_entropy(logits.float(), labels, label_smoothing=min(a, 0.99))
        """,
        "params_declared",
        "reaches outside its valid range [0, 1)",
    ),
    "vector": (
        """
        @register_method("NAME", search_space={}, defaults={}, neutral={})
        def loss(logits, labels, ctx):
            '''Per-sample losses, not their mean.'''
            return F.cross_entropy(logits.float(), labels, reduction="none")
        """,
        "finite",
        "the loss must be a float32 scalar, got shape (1,)",
    ),
    "half": (
        """
        @register_method("NAME", search_space={}, defaults={}, neutral={})
        def loss(logits, labels, ctx):
            '''Cross-entropy in half precision.'''
            return F.cross_entropy(logits.half().float(), labels).half()
        """,
        "finite",
        "float32 scalar, got shape () float16",
    ),
    "nan_at_batch_one": (
        # normalized by the batch's spread, which a batch of one does not have
        """
        @register_method("NAME", search_space={}, defaults={}, neutral=None)
        def loss(logits, labels, ctx):
            '''Cross-entropy over its standard deviation in the batch.'''
            nll = F.cross_entropy(logits.float(), labels, reduction="none")
            return nll.mean() / nll.std()
        """,
        "finite",
        "non-finite loss nan (K=2, batch 1",
    ),
    "nan_in_space": (
        """
        @register_method(
            "NAME", search_space={"a": Float(0.0, 1.0)}, defaults={"a": 0.9}, neutral=None
        )
        def loss(logits, labels, ctx, *, a):
            '''Cross-entropy plus a term that is NaN for half of the search space.'''
            return F.cross_entropy(logits.float(), labels) + torch.log(torch.tensor(a - 0.5))
        """,
        "random_params",
        "non-finite loss nan at {'a': ",
    ),
    "doubled": (
        """
        @register_method("NAME", search_space={}, defaults={}, neutral={})
        def loss(logits, labels, ctx):
            '''Twice the cross-entropy, declared neutral.'''
            return 2 * F.cross_entropy(logits.float(), labels)
        """,
        "neutral",
        "but cross-entropy is",
    ),
    "torch_rng": (
        # DisturbLabel drawn from torch's global RNG instead of ctx.generator
        """
        @register_method(
            "NAME", search_space={"rate": Float(0.0, 0.5)}, defaults={"rate": 0.2},
            neutral={"rate": 0.0},
        )
        def loss(logits, labels, ctx, *, rate):
            '''Labels flipped at random, then CE.'''
            flip = torch.rand(labels.shape) < rate
            other = torch.randint(ctx.num_classes, labels.shape)
            return F.cross_entropy(logits.float(), torch.where(flip, other, labels))
        """,
        "deterministic",
        "drew from torch's global RNG; draw from ctx.generator instead",
    ),
    "numpy_rng": (
        """
        @register_method(
            "NAME", search_space={"rate": Float(0.0, 0.5)}, defaults={"rate": 0.2},
            neutral={"rate": 0.0},
        )
        def loss(logits, labels, ctx, *, rate):
            '''Labels flipped at random (numpy), then CE.'''
            flip = torch.as_tensor(np.random.rand(len(labels)) < rate)
            return F.cross_entropy(logits.float(), torch.where(flip, 0, labels))
        """,
        "deterministic",
        "drew from numpy's global RNG",
    ),
    "own_generator": (
        # random without global state, but not from ctx.generator: no seed repeats it
        """
        @register_method(
            "NAME", search_space={"rate": Float(0.0, 0.5)}, defaults={"rate": 0.2},
            neutral={"rate": 0.0},
        )
        def loss(logits, labels, ctx, *, rate):
            '''Labels flipped by a generator of its own, then CE.'''
            g = torch.Generator()
            g.seed()
            flip = torch.rand(labels.shape, generator=g) < rate
            return F.cross_entropy(logits.float(), torch.where(flip, 0, labels))
        """,
        "deterministic",
        "the same ctx.generator seed gave different losses",
    ),
    "ignores_labels": (
        """
        @register_method("NAME", search_space={}, defaults={}, neutral=None)
        def loss(logits, labels, ctx):
            '''Shrinks the logits; never looks at a label.'''
            return (logits.float() ** 2).mean()
        """,
        "smoke_fit",
        "test accuracy",
    ),
    "global_state": (
        # its state lives in a module global, not in ctx.state: one run changes the next
        """
        CALLS = [0]

        def count(logits, labels, ctx):
            CALLS[0] += 1
            return ctx.state["seen"] + 1

        @register_method(
            "NAME", search_space={}, defaults={}, neutral=None,
            state={"seen": PerSample(count)},
        )
        def loss(logits, labels, ctx):
            '''CE scaled by how often the module was called, in any run.'''
            return F.cross_entropy(logits.float(), labels) * (1 + (CALLS[0] % 7) / 7)
        """,
        "state_isolated",
        "state or pairs leak",
    ),
    "ungated_peer": (
        # the peer term is not switched off at the neutral params after epoch 0
        """
        @register_method(
            "NAME", search_space={"a": Float(0.0, 1.0)}, defaults={"a": 0.5},
            neutral={"a": 0.0}, paired=True,
        )
        def loss(logits, labels, ctx, *, a):
            '''CE plus CE against the peer's predictions once training is under way.'''
            z = logits.float()
            agree = F.cross_entropy(z, ctx.peer_logits.argmax(-1))
            return F.cross_entropy(z, labels) + (ctx.epoch > 0) * 0.5 * agree
        """,
        "pair_neutral",
        "from one network trained with cross-entropy",
    ),
    "raises": (
        """
        @register_method("NAME", search_space={}, defaults={}, neutral={})
        def loss(logits, labels, ctx):
            '''Not written yet.'''
            raise NotImplementedError("the loss is not written yet")
        """,
        "finite",
        "NotImplementedError: the loss is not written yet",
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_method_fails_the_check_it_breaks(tmp_path, name):
    body, failing, reason = BROKEN[name]
    code, report = check_json(method_file(tmp_path, name, body))
    assert code == 1
    assert report["method"] == name and report["passed"] is False
    by_name = {c["name"]: c for c in report["checks"]}
    assert list(by_name) == CHECKS and report["not_run"] == []
    assert failing in report["failed"]
    assert reason in by_name[failing]["message"], by_name[failing]["message"]
    assert "\n" not in by_name[failing]["message"]
    assert "Traceback" not in by_name[failing]["message"]
    # the checks run independently: what the file declares is still found sound
    assert by_name["loads"]["passed"]
    if failing not in ("metadata", "params_declared"):
        assert by_name["metadata"]["passed"] and by_name["params_declared"]["passed"]


def test_each_check_can_fail():
    assert {failing for _, failing, _ in BROKEN.values()} == set(CHECKS) - {"loads"}


def test_the_neutral_report_gives_both_numbers(tmp_path):
    """The doubled loss is reported with its value and cross-entropy's: twice it."""
    _, report = check_json(method_file(tmp_path, "doubled", BROKEN["doubled"][0]))
    (neutral,) = [c for c in report["checks"] if c["name"] == "neutral"]
    loss, ce = map(
        float,
        re.search(
            r"loss is (\S+), but cross-entropy is (\S+) ", neutral["message"]
        ).groups(),
    )
    assert loss == pytest.approx(2 * ce, rel=1e-5) and ce > 0


def test_the_text_report_marks_each_check(tmp_path):
    path = method_file(tmp_path, "doubled", BROKEN["doubled"][0])
    result = invoke("methods", "check", str(path))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"doubled ({path})"
    marks = {
        line.split()[1]: line.split()[0] for line in lines[1:] if line.startswith("  ")
    }
    assert marks == {c: ("✗" if c == "neutral" else "✓") for c in CHECKS}
    (neutral,) = [line for line in lines if "✗ neutral" in line]
    assert "but cross-entropy is" in neutral
    assert lines[-1] == "doubled: 9 of 10 checks passed; failed: neutral"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (  # a keyword argument that search_space and defaults do not declare
            """
            @register_method("NAME", search_space={}, defaults={}, neutral={})
            def loss(logits, labels, ctx, *, beta):
                '''Uses a parameter nobody declared.'''
                return F.cross_entropy(logits.float(), labels) * beta
            """,
            "RegistryError: method 'NAME'",
        ),
        ("import not_a_module_anywhere\n", "ModuleNotFoundError: No module named"),
        ("def broken(:\n", "SyntaxError"),
    ],
    ids=["undeclared_param", "import_error", "syntax_error"],
)
def test_a_method_that_does_not_load_fails_loads_and_nothing_else_runs(
    tmp_path, body, reason
):
    code, report = check_json(method_file(tmp_path, "unloadable", body))
    assert code == 1
    ((loads),) = report["checks"]
    assert loads["name"] == "loads" and not loads["passed"]
    assert reason.replace("NAME", "unloadable") in loads["message"]
    assert "\n" not in loads["message"]
    assert report["failed"] == ["loads"] and report["not_run"] == CHECKS[1:]
    text = invoke("methods", "check", str(tmp_path / "unloadable.py"))
    assert text.exit_code == 1 and "✗ loads" in text.stdout
    assert "- smoke_fit" in text.stdout and "Traceback" not in text.output


def test_the_template_passes_and_is_never_discovered(tmp_path):
    mine = tmp_path / "my_loss.py"
    shutil.copy(TEMPLATE, mine)
    code, report = check_json(mine)
    assert code == 0, report
    assert report["passed"] and report["failed"] == [] and report["not_run"] == []
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert report["origin"] == str(mine.resolve())
    # ci/ is not methods/: the template is never a registered method
    assert "my_loss" not in list_methods() and "my_loss" not in METHODS


def test_a_builtin_file_checks_as_the_builtin(tmp_path):
    before = list_methods()
    code, report = check_json(builtin_dir("methods") / "gls.py")
    assert code == 0 and report["method"] == "gls" and report["origin"] == "builtin"
    # loaded on its own: the registry is what it was, and gls is still the built-in
    assert list_methods() == before
    assert METHODS.get("gls").fn.__module__ == "noisebench_methods.gls"


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output
    return line


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    ce = "@register_method('{0}', search_space={{}}, defaults={{}})\n" + (
        "def loss(logits, labels, ctx):\n    '''CE.'''\n"
        "    return F.cross_entropy(logits.float(), labels)\n"
    )
    cases = {
        "missing.py": ("no such file", None),
        "notes.txt": ("is not a Python file", "hello\n"),
        "nothing.py": ("registers no method", "x = 1\n"),
        "other.py": ("registers 'another'", ce.format("another")),
        "two.py": ("registers 'two', 'three'", ce.format("two") + ce.format("three")),
        "ls.py": ("built-in names are reserved", ce.format("ls")),
        "My-Loss.py": ("is not a valid method name", ce.format("my_loss")),
    }
    for file, (message, text) in cases.items():
        path = tmp_path / file
        if text is not None:
            path.write_text(
                "import torch.nn.functional as F\nfrom noisebench import register_method\n"
                + text
            )
        line = _error_line(invoke("methods", "check", str(path)))
        assert message in line and str(path) in line, line
    assert "is not a Python file" in _error_line(
        invoke("methods", "check", str(tmp_path))
    )
    neither = _error_line(invoke("methods", "check"))
    both = _error_line(invoke("methods", "check", "x.py", "--entry-point", "x"))
    assert (
        "a FILE or --entry-point NAME" in neither
        and "a FILE or --entry-point NAME" in both
    )


def _plugin(root: Path, name: str, method: str) -> None:
    """An installed distribution `name` whose entry point `name` registers `method`."""
    (root / f"{name}.py").write_text(
        textwrap.dedent(f"""
        import torch.nn.functional as F
        from noisebench import register_method

        @register_method("{method}", search_space={{}}, defaults={{}}, neutral={{}})
        def loss(logits, labels, ctx):
            '''A plugin copy of cross-entropy.'''
            return F.cross_entropy(logits.float(), labels)
        """)
    )
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(f"[noisebench.methods]\n{name} = {name}\n")


def test_entry_points_check_in_isolation(tmp_path):
    _plugin(tmp_path, "nb_check_demo", "check_demo")
    _plugin(tmp_path, "nb_check_fake_ls", "ls")

    def noisebench(*args: str) -> subprocess.CompletedProcess:
        env = {
            "PYTHONPATH": str(tmp_path),
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
        }
        return subprocess.run(
            [sys.executable, "-m", "noisebench.cli", "methods", "check", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
        )  # fmt: skip

    good = noisebench("--entry-point", "nb_check_demo", "--json")
    assert good.returncode == 0, good.stderr
    report = json.loads(good.stdout)
    assert report["method"] == "check_demo" and report["passed"]
    assert report["origin"] == "entry-point:nb_check_demo"
    typo = noisebench("--entry-point", "nb_check_dmo")
    assert typo.returncode == 2
    (line,) = typo.stderr.strip().splitlines()
    assert "unknown noisebench.methods entry point 'nb_check_dmo'" in line
    assert "did you mean 'nb_check_demo'?" in line
    taken = noisebench("--entry-point", "nb_check_fake_ls")
    assert taken.returncode == 2
    (line,) = taken.stderr.strip().splitlines()
    assert "registers 'ls'" in line and "built-in names are reserved" in line


def test_run_checks_reports_instead_of_raising():
    """The per-check API that the command prints; run_contract still raises."""
    from noisebench.registry import Method
    from noisebench.testing import CONTRACT, check_neutral, run_checks, run_contract

    def doubled(logits, labels, ctx):
        return 2 * F.cross_entropy(logits.float(), labels)

    method = Method(
        name="doubled", fn=doubled, search_space={}, defaults={}, neutral={},
        bounds={}, requires=(), paper="", version=1, summary="Twice CE.",
    )  # fmt: skip
    results = run_checks(
        method, [c for c in CONTRACT if c.__name__ != "check_smoke_fit"]
    )
    assert [r.name for r in results] == [c for c in CHECKS[1:] if c != "smoke_fit"]
    assert [r.name for r in results if not r.passed] == ["neutral"]
    with pytest.raises(AssertionError, match="but cross-entropy is"):
        run_contract(method)
    with pytest.raises(AssertionError):
        check_neutral(method)
