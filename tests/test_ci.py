"""ci/check_methods.py on a fixture git repository: a pull request that adds one good
method and one broken one is rejected naming the broken one's failed check, the good
one passes, and a board that is stale against the shards fails the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# the smallest suite that still tunes and runs: 1 cell, 2 trials, 1 seed, 2 epochs
TINY_SUITE = """\
dataset = "digits"
methods = ["ce"]
trials = 2
tune_seeds = 1
final_seeds = 1

[train]
epochs = 2

[[noise]]
type = "symmetric"
rates = [0.4]
"""
GOOD = '''\
"""Label smoothing by another name: CE against (1 - a) onehot(y) + a / K."""

from noisebench import Float, register_method


@register_method(
    "good",
    search_space={"a": Float(0.0, 0.5)},
    defaults={"a": 0.1},
    neutral={"a": 0.0},
    bounds={"a": (0.0, 1.0)},
    paper="https://arxiv.org/abs/1512.00567",
)
def good(logits, labels, ctx, *, a):
    """Label smoothing, by another name."""
    logp = logits.float().log_softmax(dim=-1)
    nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return ((1 - a) * nll - a * logp.mean(dim=-1)).mean()
'''
BROKEN = '''\
import torch.nn.functional as F

from noisebench import register_method


@register_method("broken", search_space={}, defaults={}, neutral={})
def broken(logits, labels, ctx):
    """Twice the cross-entropy, declared equal to it."""
    return 2 * F.cross_entropy(logits.float(), labels)
'''


def _run(repo: Path, *command: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(repo.parent),  # no user git config
        "GIT_CONFIG_NOSYSTEM": "1",
        "PYTHONPATH": str(repo),  # the fixture's own noisebench, methods and cards
        "OMP_NUM_THREADS": "1",  # tiny trainings, a busy machine
        "NOISEBENCH_CACHE": str(repo.parent / "cache"),
    }
    return subprocess.run(
        command, cwd=repo, env=env, capture_output=True, text=True, check=False
    )


def _git(repo: Path, *args: str) -> str:
    out = _run(
        repo, "git", "-c", "user.name=ci", "-c", "user.email=ci@example.org",
        "-c", "commit.gpgsign=false", *args,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def _ci(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return _run(repo, sys.executable, "ci/check_methods.py", *args)


def _noisebench(repo: Path, *args: str) -> subprocess.CompletedProcess:
    out = _run(repo, sys.executable, "-m", "noisebench.cli", *args)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def repo(tmp_path) -> Path:
    """A minimal noisebench checkout on `main`: the package, the built-in methods and
    cards, ci/, a tiny suite, and a board rendered from an empty store."""
    repo = tmp_path / "repo"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("noisebench", "methods", "datasets", "ci"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=skip)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    (repo / "leaderboard" / "suites").mkdir(parents=True)
    (repo / "leaderboard" / "suites" / "tiny.toml").write_text(TINY_SUITE)
    from noisebench.leaderboard import build  # no records: the same text anywhere

    board = build(repo / "leaderboard", write_plots=False)
    (repo / "leaderboard" / "README.md").write_text(board)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


def test_a_method_pull_request_is_checked(repo):
    _git(repo, "checkout", "-q", "-b", "pr")
    (repo / "methods" / "good.py").write_text(GOOD)
    (repo / "methods" / "broken.py").write_text(BROKEN)
    (repo / "ci" / "unrelated.py").write_text("x = 1\n")  # not a method: not checked
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "add two methods")

    # 1. the broken method is refused naming its check; the good one runs the suite;
    #    its new shards leave the committed board stale
    out = _ci(repo, "main", "--suite", "tiny")
    assert out.returncode == 1, out.stdout + out.stderr
    summary = out.stdout.split("summary (against main):")[1].splitlines()
    assert "  ✗ broken (methods/broken.py):" in summary
    (neutral,) = [line for line in summary if "failed neutral:" in line]
    assert "but cross-entropy is" in neutral
    (good,) = [line for line in summary if "good (methods/good.py)" in line]
    assert good.startswith("  ✓") and "suite tiny: 1 cells, 1 run now" in good
    assert "as run: 1 cells, 1 run now" in good  # the board's as-run row too
    (board,) = [line for line in summary if "leaderboard:" in line]
    assert board.startswith("  ✗") and "leaderboard/README.md is stale" in board
    assert "new shard(s) in leaderboard/runs are not committed" in board
    assert summary[-1] == "FAILED" and "unrelated" not in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    shards = sorted((repo / "leaderboard" / "runs").glob("*.parquet"))
    assert shards  # the good method's records, for the author to commit
    from noisebench.store import read_records

    rows = read_records(repo / "leaderboard").to_pylist()
    assert {r["method"] for r in rows} == {"good"}
    as_run = [r for r in rows if r["phase"] == "evaluate"]
    assert [json.loads(r["params"]) for r in as_run] == [{"a": 0.1}]  # its defaults
    assert {r["phase"] for r in rows} == {"evaluate", "tune", "final"}

    # 2. fixed: the broken one dropped, the shards and the rendered board committed.
    #    The good method's cell is in the store now, so nothing is trained again.
    _git(repo, "rm", "-q", "methods/broken.py")
    _noisebench(repo, "leaderboard")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "drop broken; add shards and board")
    out = _ci(repo, "main", "--suite", "tiny")
    assert out.returncode == 0, out.stdout + out.stderr
    summary = out.stdout.split("summary (against main):")[1].splitlines()
    (good,) = [line for line in summary if "good (methods/good.py)" in line]
    assert good.startswith("  ✓") and "1 cells, 0 run now" in good
    assert "as run: 1 cells, 0 run now" in good
    assert "broken" not in out.stdout
    assert (
        "  ✓ leaderboard: leaderboard/README.md and its figures are up to date"
        in summary
    )
    assert summary[-1] == "passed"
    assert sorted((repo / "leaderboard" / "runs").glob("*.parquet")) == shards

    # 3. a figure replaced by hand (here: by another of the board's) is stale too
    first, second = sorted((repo / "leaderboard" / "plots").rglob("*.png"))[:2]
    first.write_bytes(second.read_bytes())
    _git(repo, "commit", "-q", "-am", "swap a figure")
    out = _ci(repo, "main", "--suite", "tiny")
    assert out.returncode == 1
    assert (
        "  ✗ leaderboard: a figure under leaderboard/plots is stale against the shards"
        in out.stdout
    )


def test_a_board_edited_by_hand_is_stale_and_a_bad_base_is_exit_2(repo):
    _git(repo, "checkout", "-q", "-b", "docs")
    readme = repo / "leaderboard" / "README.md"
    readme.write_text(readme.read_text() + "\nA better number, typed in.\n")
    _git(repo, "commit", "-q", "-am", "edit the board")
    out = _ci(repo, "main")
    assert out.returncode == 1
    assert "no method files added or changed since main" in out.stdout
    assert (
        "  ✗ leaderboard: leaderboard/README.md is stale against the shards"
        in out.stdout
    )
    out = _ci(repo, "origin/nosuch")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: unknown base ref 'origin/nosuch'")


def test_only_method_files_that_discovery_loads_are_picked(repo, monkeypatch):
    """Added or changed, at the top of methods/, not '_'-prefixed; a renamed file
    counts as added, a deleted one is not checked."""
    sys.path.insert(0, str(repo / "ci"))
    monkeypatch.chdir(repo)
    try:
        import check_methods
    finally:
        sys.path.pop(0)
    _git(repo, "checkout", "-q", "-b", "mixed")
    (repo / "methods" / "new_one.py").write_text(GOOD.replace('"good"', '"new_one"'))
    (repo / "methods" / "_helper.py").write_text("x = 1\n")
    (repo / "methods" / "sub").mkdir()
    (repo / "methods" / "sub" / "deep.py").write_text("x = 1\n")
    (repo / "methods" / "notes.md").write_text("notes\n")
    (repo / "methods" / "ls.py").write_text(
        (repo / "methods" / "ls.py").read_text() + "\n# edited\n"
    )
    _git(repo, "mv", "methods/gls.py", "methods/gls_renamed.py")
    _git(repo, "rm", "-q", "methods/flip.py")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "mixed")
    (repo / "methods" / "uncommitted.py").write_text("x = 1\n")
    assert check_methods.changed_methods("main") == [
        "methods/gls_renamed.py",
        "methods/ls.py",
        "methods/new_one.py",
    ]
    with pytest.raises(check_methods.CannotRun, match="unknown base ref 'nope'"):
        check_methods.changed_methods("nope")


def test_the_workflow_calls_the_script_with_the_base_branch():
    text = (ROOT / ".github" / "workflows" / "methods.yml").read_text()
    assert "pull_request" in text and "fetch-depth: 0" in text
    assert "pip install -e '.[test]'" in text
    assert 'python ci/check_methods.py "origin/$BASE_REF"' in text
    assert "BASE_REF: ${{ github.base_ref }}" in text
    wrapper = _run(ROOT, "bash", "-n", "ci/check_methods.sh")
    assert wrapper.returncode == 0, wrapper.stderr
