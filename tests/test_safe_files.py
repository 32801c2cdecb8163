"""No file a user hands noisebench is ever unpickled (issue 9).

(a) A scan of the source: every `np.load` passes `allow_pickle=False`, every
`torch.load` passes `weights_only=True`, and `pickle.load(s)` / `joblib.load` are
not called at all. The scanner resolves import aliases (`import numpy as xp`,
`from numpy import load`), and is itself tested on snippets, so a pass means something.
(b) Files whose unpickling would create a marker file are refused with a UserError,
and the marker never appears.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

from noisebench.data import load_dataset
from noisebench.errors import UserError
from noisebench.noise import load_transition

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("noisebench", "methods")

# fully qualified callable -> (keyword, the only accepted constant); None: never call it
RULES: dict[str, tuple[str, bool] | None] = {
    "numpy.load": ("allow_pickle", False),
    "torch.load": ("weights_only", True),
    "pickle.load": None,
    "pickle.loads": None,
    "joblib.load": None,
}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> qualified name, from the module's imports (any scope)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[(a.asname or a.name).split(".")[0]] = (
                    a.name if a.asname else a.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _qualified(func: ast.expr, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    parts.append(aliases.get(func.id, func.id))
    return ".".join(reversed(parts))


def violations(source: str, filename: str = "<snippet>") -> list[str]:
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _qualified(node.func, aliases)
        if name not in RULES:
            continue
        where = f"{filename}:{node.lineno}: {name}"
        rule = RULES[name]
        if rule is None:
            found.append(f"{where} is never allowed")
            continue
        keyword, value = rule
        given = [k.value for k in node.keywords if k.arg == keyword]
        if not (
            len(given) == 1
            and isinstance(given[0], ast.Constant)
            and given[0].value is value
        ):
            found.append(f"{where} needs {keyword}={value}")
    return found


def test_the_scanner_catches_each_kind_of_unsafe_load():
    unsafe = {
        "import numpy as np\nnp.load(p)\n": "allow_pickle=False",
        "import numpy as np\nnp.load(p, allow_pickle=True)\n": "allow_pickle=False",
        "import numpy as np\nnp.load(p, allow_pickle=flag)\n": "allow_pickle=False",
        "import numpy\nnumpy.load(p)\n": "allow_pickle=False",
        "import numpy as xp\nxp.load(p)\n": "allow_pickle=False",
        "from numpy import load\nload(p)\n": "allow_pickle=False",
        "def f():\n    import numpy as np\n    return np.load(p)\n": "allow_pickle",
        "import torch\ntorch.load(p)\n": "weights_only=True",
        "import torch\ntorch.load(p, weights_only=False)\n": "weights_only=True",
        "import pickle\npickle.load(f)\n": "never allowed",
        "import pickle\npickle.loads(b)\n": "never allowed",
        "from pickle import loads as l\nl(b)\n": "never allowed",
        "import joblib\njoblib.load(p)\n": "never allowed",
    }
    for source, reason in unsafe.items():
        found = violations(source)
        assert len(found) == 1 and reason in found[0], (source, found)
    safe = (
        "import numpy as np\nnp.load(p, allow_pickle=False)\n"
        "import torch\ntorch.load(p, weights_only=True)\n"
        "np.loadtxt(p)\nnp.lib.format.read_magic(f)\njson.load(f)\n"
    )
    assert violations(safe) == []


def _sources() -> list[Path]:
    return sorted(p for d in SCANNED for p in (ROOT / d).rglob("*.py"))


def test_the_scan_covers_the_modules_that_read_files():
    scanned = {p.relative_to(ROOT).as_posix() for p in _sources()}
    assert {
        "noisebench/data/files.py",
        "noisebench/noise.py",
        "methods/ce.py",
    } <= scanned


def test_no_source_file_can_unpickle():
    found = [
        v
        for path in _sources()
        for v in violations(path.read_text(encoding="utf-8"), str(path))
    ]
    assert found == []


# --------------------------------------------------------------------------------------
# behaviour: a booby-trapped file is refused and its payload never runs
# --------------------------------------------------------------------------------------


class _Trap:
    """Unpickling calls open(marker, "w"), which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _trapped(marker: Path, shape: tuple[int, ...]) -> np.ndarray:
    a = np.empty(shape, dtype=object)
    a.flat[0] = _Trap(marker)
    a.flat[1:] = 0.5
    return a


def test_the_trap_fires_when_unpickled(tmp_path):
    """The payload is live: unpickling it does create the marker. The tests below are
    only meaningful because of this."""
    marker = tmp_path / "fired"
    pickle.loads(pickle.dumps(_trapped(marker, (2, 2))))
    assert marker.exists()


def test_a_pickled_transition_file_is_refused(tmp_path):
    marker = tmp_path / "fired"
    np.save(tmp_path / "t.npy", _trapped(marker, (3, 3)), allow_pickle=True)
    with pytest.raises(UserError, match="pickled Python objects"):
        load_transition(tmp_path / "t.npy", num_classes=3)
    assert not marker.exists()


@pytest.mark.parametrize("member", ["x", "label"])
def test_a_pickled_dataset_file_is_refused(tmp_path, member):
    marker = tmp_path / "fired"
    arrays = {"x": np.ones((40, 2)), "label": np.arange(40) % 2}
    arrays[member] = _trapped(marker, arrays[member].shape)
    np.savez(tmp_path / "data.npz", **arrays)  # savez pickles object arrays
    with pytest.raises(UserError, match="cannot read"):
        load_dataset(str(tmp_path / "data.npz"))
    assert not marker.exists()


def test_a_pickled_sklearn_cache_is_a_miss(tmp_path, monkeypatch):
    """The cache lives in a shared folder: a planted file must not run either."""
    monkeypatch.setenv("NOISEBENCH_CACHE", str(tmp_path))
    first = load_dataset("digits")
    (cached,) = tmp_path.glob("digits-*.npz")
    marker = tmp_path / "fired"
    np.savez(cached, x=_trapped(marker, (4, 2)), y=np.arange(4))
    assert load_dataset("digits").sha == first.sha
    assert not marker.exists()
