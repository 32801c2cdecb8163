"""`noisebench leaderboard show`: filters, the terminal table, and CSV/JSON exports
that carry the same facts as the page."""

from __future__ import annotations

import csv
import io
import json

import pytest
from helpers import seed_runs
from typer.testing import CliRunner

from noisebench.cli import app
from noisebench.store import write_records

MLP = '{"model":"mlp","hidden":[8],"epochs":3,"optimizer":"adam","lr":0.001,"batch_size":32,"val_fraction":0.1}'
CNN = MLP.replace('"mlp"', '"cnn"')


def invoke(*args: str):
    # wide enough that rich never wraps a cell
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def runs(method, values, **overrides):
    return seed_runs(method, values, config_hash=f"{method}-{overrides}", **overrides)


@pytest.fixture
def store(tmp_path):
    rows = []
    for dataset in ("digits", "mnist1d"):
        for noise_type in ("symmetric", "pairflip"):
            for train in (MLP, CNN):
                common = {
                    "dataset": dataset,
                    "noise_type": noise_type,
                    "train_config": train,
                }
                # methods not registered here: no staleness rule applies to them
                rows += runs("base", [0.60, 0.61, 0.62], **common)
                rows += runs("mine", [0.70, 0.72, 0.71], params='{"a":1}', **common)
    write_records(rows, tmp_path)
    return tmp_path


def exported(store, *args):
    result = invoke(
        "leaderboard", "show", "--store", str(store), "--format", "json", *args
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["rows"]


def test_filters_select_boards_and_rows(store):
    everything = exported(store)
    # 2 datasets x 2 noise types x 2 models x 2 metrics x 2 methods, one rate each
    assert len(everything) == 32
    some = exported(
        store, "--dataset", "mnist1d", "--model", "cnn", "--noise-type", "pairflip"
    )
    assert len(some) == 4
    assert {(r["dataset"], r["model"], r["noise_type"]) for r in some} == {
        ("mnist1d", "cnn", "pairflip")
    }
    mine = exported(store, "--method", "mine", "--metric", "selected")
    assert {r["method"] for r in mine} == {"mine"} and len(mine) == 8
    assert {r["metric"] for r in mine} == {"test_acc_at_best_val"}
    both = exported(store, "--dataset", "digits", "--dataset", "mnist1d")
    assert len(both) == len(everything)


def test_a_method_filter_never_reranks(store):
    full = {
        (r["dataset"], r["noise_type"], r["model"], r["metric"], r["method"]): r
        for r in exported(store)
    }
    for row in exported(store, "--method", "base"):
        key = (row["dataset"], row["noise_type"], row["model"], row["metric"], "base")
        assert row == full[key]
        assert row["rank"] == 2.0  # ranked below "mine", which the filter hides


def test_json_rows_carry_the_cells_facts(store):
    (row,) = exported(
        store,
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--noise-type",
        "symmetric",
        "--method",
        "mine",
        "--metric",
        "last",
    )
    assert row["mean"] == pytest.approx(0.71) and row["std"] == pytest.approx(0.01)
    assert (row["n"], row["seeds_asked"], row["state"]) == (3, 3, "ok")
    # 0.10, 0.11 and 0.09 above "base" on each noise seed: significantly best
    assert (row["rank"], row["mark"], row["mean_rank"]) == (1.0, "best", 1.0)
    assert row["p_value"] is None  # the best is not tested against itself
    assert row["label"] == "mine (a=1)" and row["noise_rate"] == 0.2


def test_csv_has_the_same_rows_as_json(store):
    result = invoke("leaderboard", "show", "--store", str(store), "--format", "csv")
    assert result.exit_code == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    rows = exported(store)
    assert len(table) == len(rows)
    for got, want in zip(table, rows, strict=True):
        assert got["label"] == want["label"]
        assert float(got["mean"]) == pytest.approx(want["mean"])


def test_the_terminal_table_shows_ranks_and_the_setup(store):
    result = invoke(
        "leaderboard",
        "show",
        "--store",
        str(store),
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--noise-type",
        "symmetric",
        "--metric",
        "last",
    )
    assert result.exit_code == 0, result.stderr
    assert "mine (a=1)" in result.stdout and "71.0 ± 1.0 (3) #1" in result.stdout
    assert "mlp 8, 3 epochs" in result.stdout
    assert "pairflip" not in result.stdout and "mnist1d" not in result.stdout
    # the title names the model, as the page's heading does: two setups never read
    # alike (rich wraps a title to its table's width)
    title = "digits (mlp): symmetric noise (exact sampling) · as run · last epoch"
    assert title in " ".join(result.stdout.split())


def test_a_cell_not_run_reads_as_on_the_page(tmp_path):
    rows = seed_runs("base", [0.6, 0.6], config_hash="b", noise_rate=0.2)
    rows += seed_runs("mine", [0.7, 0.7], config_hash="m", noise_rate=0.4)
    write_records(rows, tmp_path)
    result = invoke("leaderboard", "show", "--store", str(tmp_path), "--metric", "last")
    assert result.exit_code == 0, result.stderr
    (base,) = [line for line in result.stdout.splitlines() if "│ base" in line]
    assert [cell.strip() for cell in base.split("│")[2:4]] == ["60.0 ± 0.0 (2) #1", "·"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--format", "xml"), "unknown format 'xml'"),
        (("--metric", "best"), "unknown metric 'best'"),
        (("--method", "nope"), "match method nope"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(store, args, message):
    result = invoke("leaderboard", "show", "--store", str(store), *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_store_is_one_line_and_exit_2(tmp_path):
    result = invoke("leaderboard", "show", "--store", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "no such folder" in result.stderr


def test_a_narrow_terminal_wraps_labels_and_never_cuts_them(tmp_path):
    """Two rows that differ only at the end of their params stay told apart, and
    every column stays on screen, at 60 columns."""
    rows = []
    for tail in ("1", "2"):
        params = f'{{"a_rather_long_parameter_name":0.12345{tail}}}'
        rows += runs("mine", [0.7, 0.71], params=params, train_config=MLP)
    write_records(rows, tmp_path)
    result = CliRunner().invoke(
        app,
        ["leaderboard", "show", "--store", str(tmp_path), "--metric", "last"],
        env={"COLUMNS": "60"},
    )
    assert result.exit_code == 0, result.stderr
    assert "…" not in result.stdout
    assert all(len(line) <= 60 for line in result.stdout.splitlines())
    # the folded label's characters, read down the method column, end differently
    column = "".join(
        line.split("│")[1].strip()
        for line in result.stdout.splitlines()
        if line.startswith("│")
    )
    assert "a_rather_long_parameter_name=0.123451" in column
    assert "a_rather_long_parameter_name=0.123452" in column
