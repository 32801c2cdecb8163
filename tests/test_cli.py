"""The CLI end to end, through typer's CliRunner: outputs, records, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from noisebench.cli import app
from noisebench.data import load_dataset
from noisebench.experiment import draw_noise
from noisebench.metrics import ece_of_bins
from noisebench.noise import confusion, transition_matrix
from noisebench.store import SCHEMA, read_records

FAST = ["--epochs", "2", "--seeds", "2"]


def invoke(*args: str, env=None):
    return CliRunner().invoke(app, list(args), env=env)


def shards(store):
    return (
        sorted((store / "runs").glob("*.parquet")) if (store / "runs").exists() else []
    )


def test_evaluate_json_writes_one_record_per_seed(tmp_path):
    result = invoke(
        "evaluate",
        "--method",
        "ls",
        "--noise",
        "0.4",
        *FAST,
        "--store",
        str(tmp_path),
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)  # nothing else on stdout
    assert out["spec"]["params"] == {"smoothing": 0.1}
    assert [r["seed"] for r in out["runs"]] == [0, 1]
    assert out["summary"]["test_acc"]["n"] == 2
    accs = [r["test_acc"] for r in out["runs"]]
    assert out["summary"]["test_acc"]["mean"] == pytest.approx(np.mean(accs))
    assert out["summary"]["test_acc"]["std"] == pytest.approx(np.std(accs, ddof=1))
    (shard,) = shards(tmp_path)
    table = pq.read_table(shard)
    assert table.schema.equals(SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    assert [r["seed"] for r in rows] == [0, 1] and {r["status"] for r in rows} == {"ok"}
    assert all(r["run_seeds"] == [0, 1] and r["method_version"] == 1 for r in rows)
    # the recorded noise is the noise the run got: realized rate of the exact draw
    ds = load_dataset("digits")
    noisy, _, _ = draw_noise(
        ds, transition_matrix("symmetric", 10, 0.4), "exact", 0, 0.1
    )
    assert rows[0]["realized_rate"] == pytest.approx(float((noisy != ds.y).mean()))
    curve = rows[0]["val_acc_curve"]
    assert rows[0]["best_epoch"] == int(np.argmax(curve)) + 1
    assert rows[0]["best_val_acc"] == pytest.approx(max(curve))
    # the realized noise itself: clean x noisy counts over the training pool
    counts = np.asarray(rows[0]["confusion"]).reshape(10, 10)
    assert np.array_equal(counts, confusion(ds.y, noisy, 10))
    assert 1 - np.trace(counts) / counts.sum() == pytest.approx(
        rows[0]["realized_rate"]
    )
    # the test reliability diagram covers the test set and reproduces the stored ECE
    row = rows[0]
    bins = [row[f"reliability_{f}"] for f in ("count", "correct", "confidence")]
    assert sum(bins[0]) == len(ds.y_test) and all(len(b) == 15 for b in bins)
    assert sum(bins[1]) / len(ds.y_test) == pytest.approx(row["test_acc"])
    assert row["ece"] == pytest.approx(ece_of_bins(*bins), abs=1e-12)
    # temperature scaling, fitted on the noisy validation split
    assert row["temperature"] > 0 and 0 <= row["ece_scaled"] <= 1
    # one memorization value per epoch, each a fraction
    epochs = len(curve)
    for name in ("mem_noisy_curve", "mem_clean_curve"):
        assert len(row[name]) == epochs and all(0 <= v <= 1 for v in row[name])


def test_evaluate_table_and_store_env_var(tmp_path):
    result = invoke(
        "evaluate",
        "--method",
        "ce",
        "--noise",
        "0.2",
        *FAST,
        env={"NOISEBENCH_STORE": str(tmp_path)},
    )
    assert result.exit_code == 0, result.stderr
    assert (
        "test acc (best noisy val)" in result.stdout
        and "memorized: noisy label" in result.stdout
    )
    assert len(shards(tmp_path)) == 1


def test_transition_file_noise(tmp_path):
    t = transition_matrix("pairflip", 10, 0.3)
    np.save(tmp_path / "t.npy", t)
    result = invoke(
        "evaluate",
        "--method",
        "forward",
        "--noise-type",
        "transition",
        "--transition-file",
        str(tmp_path / "t.npy"),
        *FAST,
        "--store",
        str(tmp_path),
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["spec"]["noise"]["rate"] == pytest.approx(0.3)


BAD_INPUT = [
    (["--method", "lss"], "unknown method 'lss' (did you mean 'ls'?)"),
    (
        ["--method", "ls", "--dataset", "digit"],
        "unknown dataset 'digit' (did you mean 'digits'?)",
    ),
    (["--method", "ls", "--noise-type", "symetric"], "did you mean 'symmetric'"),
    (["--method", "ls", "--param", "smoothin=0.1"], "did you mean 'smoothing'"),
    (["--method", "ls", "--param", "smoothing=abc"], "not a valid float"),
    (["--method", "ls", "--param", "smoothing=1.5"], "out of range"),
    (["--method", "ls", "--noise", "1.5"], "--noise must lie in [0, 1], got 1.5"),
    (["--method", "ls", "--noise", "nan"], "--noise must lie in [0, 1], got nan"),
    (["--method", "ls", "--noise", "0.95"], "not identifiable"),
    (
        ["--method", "ls", "--noise-type", "pairflip", "--noise", "0.5"],
        "not identifiable",
    ),
    (["--method", "ls", "--dataset", "missing.parquet"], "data file not found"),
    (["--method", "ls", "--epochs", "0"], "--epochs must lie in [1, 100000], got 0"),
    (["--method", "ls", "--seeds", "0"], "--seeds must lie in [1, 10000]"),
    (["--method", "ls", "--seeds", "10000000"], "--seeds must lie in [1, 10000]"),
    (["--method", "ls", "--first-seed", "-1"], "seeds must lie in [0, 4294967295]"),
    (["--method", "ls", "--first-seed", "4294967295", "--seeds", "2"], "gives"),
    (["--method", "ls", "--noise-seed", "-3"], "--noise-seed must lie in"),
    (["--method", "ls", "--epochs", "1000000000"], "--epochs must lie in [1, 100000]"),
    (["--method", "ls", "--batch-size", "0"], "--batch-size must lie in"),
    (["--method", "ls", "--hidden", "a,b"], "--hidden expects"),
    (["--method", "ls", "--hidden", ""], "--hidden expects"),
    (["--method", "ls", "--hidden", "64,,64"], "--hidden expects"),
    (["--method", "ls", "--hidden", "0"], "--hidden widths must lie in [1, 1048576]"),
    (["--method", "ls", "--hidden", "99999999"], "--hidden widths must lie in"),
    (["--method", "ls", "--lr", "inf"], "--lr must be a finite number > 0, got inf"),
    (["--method", "ls", "--lr", "nan"], "--lr must be a finite number > 0"),
    (["--method", "ls", "--lr", "-1"], "--lr must be a finite number > 0"),
    (["--method", "ls", "--weight-decay", "inf"], "--weight-decay must be a finite"),
    (["--method", "ls", "--warmup", "1"], "--warmup must be a finite number in [0, 1)"),
    (["--method", "ls", "--val-fraction", "0"], "--val-fraction must be a finite"),
    (
        ["--method", "ls", "--param", "smoothing=0.1", "--param", "smoothing=0.2"],
        "--param smoothing given more than once",
    ),
    (["--method", "ls", "--device", "tpu"], "unknown device 'tpu'"),
    (["--method", "ls", "--nosie", "0.2"], "No such option"),
    (
        ["--method", "forward", "--noise-type", "transition"],
        "--transition-file goes with",
    ),
    (
        ["--method", "ls", "--transition", "estimated"],
        "--transition estimated applies to methods that use T; 'ls' does not",
    ),
    (
        ["--method", "forward", "--transition", "estimate"],
        "unknown transition source 'estimate' (did you mean 'estimated'?)",
    ),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT]
)
def test_bad_input_one_line_exit_2_no_records(tmp_path, args, message):
    """One line, exit code 2, and nothing written: not even the store's folder."""
    store = tmp_path / "store"
    result = invoke("evaluate", "--epochs", "1", *args, "--store", str(store))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not store.exists()


def test_unreadable_data_file(tmp_path):
    garbage = tmp_path / "broken.parquet"
    garbage.write_bytes(b"this is not parquet")
    result = invoke(
        "evaluate",
        "--method",
        "ls",
        "--dataset",
        str(garbage),
        "--store",
        str(tmp_path),
    )
    assert result.exit_code == 2
    assert (
        result.stderr.startswith("error: cannot read")
        and len(result.stderr.strip().splitlines()) == 1
    )
    assert shards(tmp_path) == []


def test_own_table_dataset(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 60)
    x = rng.normal(size=(180, 4)) + 3 * y[:, None]
    import pyarrow as pa

    pq.write_table(
        pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "label": y}),
        tmp_path / "t.parquet",
    )
    result = invoke(
        "evaluate",
        "--method",
        "ce",
        "--dataset",
        str(tmp_path / "t.parquet"),
        "--noise",
        "0.2",
        *FAST,
        "--store",
        str(tmp_path),
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["spec"]["dataset"] == "t"


def test_methods_and_datasets_listings():
    methods = json.loads(invoke("methods", "--json").stdout)
    by_name = {m["name"]: m for m in methods["methods"]}
    assert {"ce", "ls", "gls", "forward", "backward", "flip"} <= set(by_name)
    assert by_name["gls"]["params"]["smooth_rate"]["default"] == -0.2
    assert by_name["forward"]["requires"] == ["transition"]
    table = invoke("methods")
    assert table.exit_code == 0 and "smoothing=0.1" in table.stdout
    cards = json.loads(invoke("datasets", "--json").stdout)["datasets"]
    digits = next(c for c in cards if c["name"] == "digits")
    assert digits["class_map"] == {"2": 7, "3": 8, "5": 6, "6": 5, "7": 1}


def test_noise_show_prints_nominal_and_realized():
    result = invoke(
        "noise",
        "show",
        "--dataset",
        "digits",
        "--noise-type",
        "pairflip",
        "--noise",
        "0.3",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    np.testing.assert_allclose(out["nominal"], transition_matrix("pairflip", 10, 0.3))
    counts = np.array(out["counts"])
    # exact sampling: each realized row is n_i * T[i] rounded, so within 1/n_i of T
    gap = np.abs(np.array(out["realized"]) - out["nominal"])
    assert (gap < 1 / counts.sum(1, keepdims=True) + 1e-12).all()
    assert out["realized_rate"] == pytest.approx(0.3, abs=10 / counts.sum())
    text = invoke("noise", "show", "--noise-type", "pairflip", "--noise", "0.3")
    assert "nominal T" in text.stdout and "realized T" in text.stdout


def test_noise_export_reproduces_the_exact_draw(tmp_path):
    out = tmp_path / "noisy.npz"
    result = invoke(
        "noise", "export", "--noise", "0.4", "--noise-seed", "3", "--out", str(out)
    )
    assert result.exit_code == 0, result.stderr
    with np.load(out) as f:
        ds = load_dataset("digits")
        noisy, _, val = draw_noise(
            ds, transition_matrix("symmetric", 10, 0.4), "exact", 3, 0.1
        )
        np.testing.assert_array_equal(f["noisy"], noisy)
        np.testing.assert_array_equal(f["clean"], ds.y)
        np.testing.assert_array_equal(f["val_idx"], val)
        np.testing.assert_array_equal(f["x_test"], ds.x_test)
        assert json.loads(str(f["spec"]))["noise"]["rate"] == 0.4
    assert invoke("noise", "export", "--out", str(tmp_path / "x.txt")).exit_code == 2


def test_leaderboard_renders_and_check_detects_staleness(tmp_path):
    for rate in ("0.2", "0.4"):
        assert (
            invoke(
                "evaluate",
                "--method",
                "ce",
                "--noise",
                rate,
                *FAST,
                "--store",
                str(tmp_path),
            ).exit_code
            == 0
        )
    assert (
        invoke("leaderboard", "--check", "--store", str(tmp_path)).exit_code == 1
    )  # no README yet
    result = invoke("leaderboard", "--store", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    readme = (tmp_path / "README.md").read_text()
    assert "| method | 0.2 | 0.4 | mean rank |" in readme and "| ce |" in readme
    # a real run records everything each figure draws: all six are written and linked
    plots = sorted((tmp_path / "plots").glob("*/*.png"))
    assert len(plots) == 6
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{plot.parent.name}/{plot.name}" in readme
    assert invoke("leaderboard", "--check", "--store", str(tmp_path)).exit_code == 0
    assert (
        invoke(
            "evaluate",
            "--method",
            "ls",
            "--noise",
            "0.2",
            *FAST,
            "--store",
            str(tmp_path),
        ).exit_code
        == 0
    )
    assert invoke("leaderboard", "--check", "--store", str(tmp_path)).exit_code == 1
    assert len(read_records(tmp_path)) == 6


@pytest.mark.parametrize("args", [["--help"], ["methods"], ["datasets"]])
def test_light_commands_do_not_import_heavy_libraries(args):
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from noisebench.cli import app; "
        f"r = CliRunner().invoke(app, {args!r}); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'sklearn', 'optuna', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("command", "group"),
    [
        (("evaluate",), "RunOptions"),
        (("tune",), "RunOptions"),
        (("evaluate",), "SeedOptions"),
        (("tune",), "FinalSeedOptions"),
        (("noise", "show"), "NoiseOptions"),
        (("noise", "export"), "NoiseOptions"),
    ],
)
def test_commands_take_every_option_of_their_shared_group(command, group):
    import dataclasses

    import typer.main

    from noisebench.cli import options

    click_command = typer.main.get_command(app)
    for name in command:
        click_command = click_command.commands[name]
    flags = {flag for p in click_command.params for flag in p.opts}
    expected = {
        "--" + f.name.replace("_", "-")
        for f in dataclasses.fields(getattr(options, group))
    }
    assert expected <= flags
    # the group's required options (--method) stay required
    required = {p.opts[0] for p in click_command.params if p.required}
    assert ("--method" in required) == (command[0] in ("evaluate", "tune"))


def test_shared_options_reach_the_command_with_their_values(tmp_path):
    out = tmp_path / "n.npz"
    result = invoke(
        *("noise", "export", "--out", str(out), "--noise", "0.3"),
        *("--noise-type", "pairflip", "--noise-mode", "random", "--noise-seed", "4"),
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(str(np.load(out)["spec"]))
    assert meta["noise"] == {
        "kind": "pairflip",
        "rate": 0.3,
        "mode": "random",
        "transition_file": None,
        "allow_unidentifiable": False,
    }
    assert meta["noise_seed"] == 4


def test_evaluate_with_an_estimated_transition(tmp_path):
    result = invoke(
        *("evaluate", "--method", "backward", "--noise", "0.3", "--transition"),
        *("estimated", "--epochs", "3", "--seeds", "2", "--store", str(tmp_path)),
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["spec"]["transition"] == "estimated"
    assert out["summary"]["transition_error"]["n"] == 2
    rows = read_records(tmp_path).to_pylist()
    assert [r["transition_error"] for r in out["runs"]] == [
        r["transition_error"] for r in rows
    ]
    assert [r["transition_source"] for r in rows] == ["estimated", "estimated"]
    # each member estimated its own T from its own noisy labels
    errors = [r["transition_error"] for r in rows]
    assert all(0 <= e <= 2 for e in errors) and errors[0] != errors[1]
    oracle = invoke(
        *("evaluate", "--method", "backward", "--noise", "0.3", "--epochs", "3"),
        *("--seeds", "2", "--store", str(tmp_path), "--json"),
    )
    assert oracle.exit_code == 0, oracle.stderr
    rows = read_records(tmp_path).to_pylist()
    hashes = {r["transition_source"]: r["config_hash"] for r in rows}
    assert len(hashes) == 2 and hashes["estimated"] != hashes["oracle"]
    assert {
        r["transition_error"] for r in rows if r["transition_source"] == "oracle"
    } == {None}


def test_asymmetric_runs_record_their_class_map(tmp_path):
    for kind in ("asymmetric", "symmetric"):
        result = invoke(
            *("evaluate", "--method", "ce", "--noise-type", kind, "--noise", "0.3"),
            *("--epochs", "1", "--seeds", "1", "--store", str(tmp_path), "--json"),
        )
        assert result.exit_code == 0, result.stderr
    rows = {r["noise_type"]: r for r in read_records(tmp_path).to_pylist()}
    card_map = load_dataset("digits").class_map
    recorded = json.loads(rows["asymmetric"]["class_map"])
    assert {int(k): v for k, v in recorded.items()} == card_map
    assert rows["symmetric"]["class_map"] is None


TINY = ["--epochs", "2", "--hidden", "16"]


def test_evaluate_reuses_finished_seeds_and_trains_only_the_missing(
    tmp_path, monkeypatch
):
    """A rerun (after a kill, say) completes the work without duplicates; --rerun
    trains again."""
    args = ["evaluate", "--method", "ls", *TINY, "--store", str(tmp_path), "--json"]
    first = json.loads(invoke(*args, "--seeds", "2").stdout)
    more = json.loads(invoke(*args, "--seeds", "3").stdout)
    assert (first["reused"], more["reused"]) == (0, 2)
    assert [r["test_acc"] for r in more["runs"][:2]] == [
        r["test_acc"] for r in first["runs"]
    ]
    rows = read_records(tmp_path).to_pylist()
    assert sorted(r["seed"] for r in rows) == [0, 1, 2]  # each seed once
    again = json.loads(invoke(*args, "--seeds", "3", "--rerun").stdout)
    assert again["reused"] == 0 and len(read_records(tmp_path)) == 6
    # another configuration (here: other params) never reuses these records
    other = json.loads(invoke(*args, "--seeds", "2", "--param", "smoothing=0.2").stdout)
    assert other["reused"] == 0
    # nor does another commit of noisebench: the engine's code is not in the hash
    from noisebench import records

    monkeypatch.setattr(records, "git_sha", lambda: "another commit")
    assert json.loads(invoke(*args, "--seeds", "2").stdout)["reused"] == 0
    # unless asked to, as the leaderboard does: the newest record of each seed is used
    monkeypatch.setattr(records, "git_sha", lambda: "a third commit")
    newest = json.loads(invoke(*args, "--seeds", "3", "--any-commit").stdout)
    assert newest["reused"] == 3 and len(read_records(tmp_path)) == 10
    assert [r["test_acc"] for r in newest["runs"]] == [
        r["test_acc"] for r in again["runs"]
    ]
    assert json.loads(invoke(*args, "--seeds", "2").stdout)["reused"] == 0
    # another release reuses them when its engine gives the same results ...
    import noisebench

    this = noisebench.__version__
    monkeypatch.setattr(noisebench, "__version__", "99.0")
    monkeypatch.setattr(records, "ENGINE_REVISIONS", {this: 1, "99.0": 1})
    same = invoke(*args, "--seeds", "2", "--any-commit")
    assert json.loads(same.stdout)["reused"] == 2
    # ... and never across engine revisions, which mark a change of results
    monkeypatch.setattr(records, "ENGINE_REVISIONS", {this: 1, "99.0": 2})
    bumped = invoke(*args, "--seeds", "2", "--any-commit")
    assert json.loads(bumped.stdout)["reused"] == 0


def test_json_is_strict_and_rich_markup_in_user_strings_is_printed_as_is(tmp_path):
    """A diverged seed's NaN metrics are null in --json (bare NaN is not JSON), and a
    dataset named like rich markup keeps its brackets in the table title."""
    data = tmp_path / "[bold]odd[-].csv"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    labels = (x[:, 0] > 0).astype(int)
    lines = ["a,b,c,label"] + [
        f"{u},{v},{w},{y}" for (u, v, w), y in zip(x, labels, strict=True)
    ]
    data.write_text("\n".join(lines) + "\n")
    args = ["evaluate", "--method", "gls", "--param", "smooth_rate=-20", "--no-record"]
    args += [
        "--dataset",
        str(data),
        "--optimizer",
        "sgd",
        "--lr",
        "5",
        "--epochs",
        "30",
    ]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(c))
    assert {r["status"] for r in out["runs"]} == {"diverged"}
    assert out["summary"]["test_acc"] == {"mean": None, "std": None, "n": 0}
    table = invoke(*args)
    assert table.exit_code == 0, table.stderr
    assert "[bold]odd[-]" in table.stdout


def test_tune_takes_the_seed_options_and_says_where_records_went(tmp_path):
    store = tmp_path / "store"
    args = ["tune", "--method", "ls", *TINY, "--trials", "2", "--tune-seeds", "1"]
    result = invoke(
        *args, "--seeds", "2", "--first-seed", "7", "--noise-seed", "3",
        "--store", str(store), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [r["seed"] for r in out["final"]["runs"]] == [7, 8]
    assert {r["noise_seed"] for r in out["final"]["runs"]} == {3}
    assert out["records"] == str(store / "runs")
    rows = read_records(store).to_pylist()
    assert {r["noise_seed"] for r in rows} == {3}  # tuning runs too
    assert {r["seed"] for r in rows if r["phase"] == "final"} == {7, 8}
    # --no-record: nothing is written, not even the study
    quiet = tmp_path / "quiet"
    result = invoke(*args, "--no-record", "--store", str(quiet))
    assert result.exit_code == 0, result.stderr
    assert "nowhere (--no-record); study in memory" in result.stdout
    assert not quiet.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--first-seed", "999", "--seeds", "3"], "overlap the tuning seeds"),
        (["--seeds", "0"], "--seeds must lie in [1, 10000]"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--no-record", "--workers", "2"], "--workers cannot share"),
    ],
)
def test_rejected_tune_creates_nothing(tmp_path, args, message):
    store = tmp_path / "store"
    result = invoke("tune", "--method", "ls", *TINY, "--store", str(store), *args)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert message in line
    assert not store.exists()


def test_rejected_sweep_creates_nothing(tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text(
        'methods = ["ls", "nosuch"]\n[[noise]]\ntype = "symmetric"\nrates = [0.2]\n'
    )
    store = tmp_path / "store"
    result = invoke("sweep", "--suite", str(suite), "--store", str(store))
    assert result.exit_code == 2 and "unknown method 'nosuch'" in result.stderr
    assert not store.exists()


def test_store_paths_that_cannot_hold_records_fail_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke(
        "evaluate", "--method", "ls", *TINY, "--store", str(blocker / "store")
    )
    assert result.exit_code == 2 and str(blocker) in result.stderr
    assert "Traceback" not in result.output


def test_a_relative_store_with_a_colon_keeps_its_records(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("evaluate", "--method", "ls", *TINY, "--store", "a:b")
    assert result.exit_code == 0, result.stderr
    assert len(read_records(tmp_path / "a:b")) == 3


def test_evaluate_with_the_cnn_on_digits_as_images(tmp_path):
    result = invoke(
        *("evaluate", "--method", "ls", "--noise", "0.4", "--model", "cnn"),
        *("--epochs", "2", "--hidden", "16", "--seeds", "2"),
        *("--store", str(tmp_path), "--json"),
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["spec"]["train"]["model"] == "cnn"
    rows = read_records(tmp_path).to_pylist()
    assert {r["model"] for r in rows} == {"cnn"} and len(rows) == 2
    assert all(r["input_shape"] == [1, 8, 8] for r in rows)
    assert all(0.1 < r["test_acc"] <= 1 for r in rows)  # it learns, from 2 epochs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "cnnn"], "unknown model 'cnnn' (did you mean 'cnn'?)"),
        (["--model", "cnn", "--dataset", "TABLE"], "has no image_shape"),
    ],
)
def test_a_model_the_data_cannot_feed_is_refused(tmp_path, args, message):
    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(40)))
    args = [str(table) if a == "TABLE" else a for a in args]
    store = tmp_path / "store"
    result = invoke("evaluate", "--method", "ce", *args, "--store", str(store))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert message in line and not store.exists()


def test_evaluate_mnist1d_with_its_default_cnn1d(tmp_path):
    pytest.importorskip("mnist1d")
    result = invoke(
        *("evaluate", "--dataset", "mnist1d", "--method", "ce", "--noise", "0.2"),
        *("--epochs", "2", "--seeds", "2", "--store", str(tmp_path), "--json"),
    )
    assert result.exit_code == 0, result.stderr
    rows = read_records(tmp_path).to_pylist()
    assert {r["model"] for r in rows} == {"cnn1d"} and {r["dataset"] for r in rows} == {
        "mnist1d"
    }
    assert all(r["test_acc"] > 0.15 for r in rows)  # above chance (10%) after 2 epochs


def test_models_lists_every_family_with_what_it_takes():
    result = invoke("models", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {m["name"]: m for m in json.loads(result.stdout)["models"]}
    assert {n: rows[n]["takes"] for n in ("mlp", "cnn", "cnn1d")} == {
        "mlp": "vector",
        "cnn": "image",
        "cnn1d": "signal",
    }
    assert all(m["summary"] for m in rows.values())


def test_a_cpu_run_records_the_cpu_model_and_its_threads(tmp_path):
    """Two CPUs round differently, and the thread count sets what a wall time means:
    both are in the record (the compute table groups by them)."""
    import re
    from pathlib import Path

    import torch

    result = invoke(
        *("evaluate", "--method", "ce", *TINY, "--seeds", "1", "--device", "cpu"),
        *("--store", str(tmp_path), "--json"),
    )
    assert result.exit_code == 0, result.stderr
    (row,) = read_records(tmp_path).to_pylist()
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    if found is None:
        pytest.skip("no CPU model name on this system")
    threads = torch.get_num_threads()
    model = " ".join(found.group(1).split())
    plural = "thread" if threads == 1 else "threads"
    assert row["device"] == "cpu"
    kernels = torch.backends.cpu.get_cpu_capability()
    assert row["device_name"] == f"{model} ({kernels}), {threads} {plural}"


def test_the_recorded_cpu_kernels_are_the_ones_torch_runs():
    """Names the kernels torch dispatches to, not the CPU's flags: forced down to the
    plain ones, the record says so."""
    import os
    import subprocess
    import sys

    code = "from noisebench.records import cpu_kernels; print(cpu_kernels())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "DEFAULT"
