"""A non-editable install (a built wheel) finds the built-in methods and dataset cards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("noisebench-*.whl")
    return path


def test_wheel_ships_methods_and_cards(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    methods = {p.name for p in (ROOT / "methods").glob("*.py")}
    cards = {p.name for p in (ROOT / "datasets").glob("*.toml")}
    assert {f"noisebench/_builtin/methods/{m}" for m in methods} <= names
    assert {f"noisebench/_builtin/datasets/{c}" for c in cards} <= names
    suites = {p.name for p in (ROOT / "leaderboard" / "suites").glob("*.toml")}
    assert suites and {f"noisebench/_builtin/suites/{s}" for s in suites} <= names
    assert not any(n.startswith(("tests/", "leaderboard/")) for n in names)


def test_installed_wheel_discovers_everything(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    code = (
        "import json, noisebench; from noisebench.data import list_cards; "
        "from noisebench.registry import builtin_dir, load_errors; "
        "print(json.dumps({'file': noisebench.__file__, 'methods': noisebench.list_methods(), "
        "'cards': [c.name for c in list_cards()], 'dir': str(builtin_dir('methods')), 'errors': load_errors()}))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}

    def json_from(code: str) -> dict:
        """What `code` prints as JSON, run against the installed wheel in tmp_path."""
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout)

    info = json_from(code)
    assert info["file"].startswith(str(target)), (
        "imported the source checkout, not the wheel"
    )
    assert info["dir"].startswith(str(target))
    assert {"ce", "ls", "gls", "forward", "backward", "flip"} <= set(info["methods"])
    assert "digits" in info["cards"] and info["errors"] == {}

    # from a directory of its own: the standard suite is found inside the wheel, and a
    # method file dropped into ./methods/ is named as not loaded instead of ignored
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "mine.py").write_text("# a new method\n")
    code = (
        "import json; from noisebench.sweep import find_suite, load_suite; "
        "from noisebench.registry import unloaded_local_files; "
        "suite = load_suite('standard', 'nowhere'); "
        "print(json.dumps({'suite': str(find_suite('standard', 'nowhere')), "
        "'cells': len(suite.cells()), 'notes': unloaded_local_files()}))"
    )
    info = json_from(code)
    assert info["suite"].startswith(str(target)) and info["cells"] > 0
    (note,) = info["notes"]
    assert note.startswith("methods/mine.py is not loaded") and "pip install -e" in note
