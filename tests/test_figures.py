"""What the leaderboard's figures are drawn from: board records turned into plot data,
checked against sums and means computed here from the records themselves."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from helpers import T0, record
from typer.testing import CliRunner

from noisebench import leaderboard as lb
from noisebench.leaderboard import figures


def runs(method, rate, *, seeds=(0, 1), **overrides):
    return [
        record(
            method=method,
            noise_rate=rate,
            seed=s,
            noise_seed=s,
            run_seeds=list(seeds),
            config_hash=f"{method}-{rate}-{overrides.get('transition_source')}",
            **overrides,
        )
        for s in seeds
    ]


def data(drawing):
    """The data a Drawing (a functools.partial of a plots function) was bound to."""
    return drawing.args[0], drawing.keywords


def test_accuracy_panels_put_cross_entropy_in_every_panel_and_skip_incomplete_cells():
    rows = []
    for rate, acc in ((0.2, 0.9), (0.4, 0.7)):
        rows += runs("ce", rate, test_acc_at_best_val=acc)
        rows += runs("mine", rate, params='{"a":1}', test_acc_at_best_val=acc + 0.05)
    rows += runs("mine", 0.6, params='{"a":1}', seeds=(0, 1, 2))[:2]  # incomplete
    (board,) = lb.boards(rows)
    series, keywords = data(
        figures.metric_against_rate(
            board, "test_acc_at_best_val", title="t", ylabel="y"
        )
    )
    (mine,) = series
    assert mine.x == (0.2, 0.4) and mine.mean == pytest.approx((95.0, 75.0))
    (reference,) = keywords["reference"]
    assert reference.label == "ce" and reference.mean == pytest.approx((90.0, 70.0))


def test_transitions_count_each_noise_draw_once():
    """Two methods trained on the same noise draws: the realized T sums each draw once."""
    draw = {0: [8, 2, 1, 9], 1: [7, 3, 2, 8]}
    rows = []
    for method in ("ce", "mine"):
        rows += [
            r | {"confusion": draw[r["noise_seed"]]}
            for r in runs(method, 0.2, params="{}")
        ]
    (board,) = lb.boards(rows)
    ((label, counts),), _ = data(figures.transitions(board, title="t"))
    assert label == "r = 0.2, 2 draws"
    np.testing.assert_array_equal(counts, [[15, 5], [3, 17]])


def test_reliability_adds_the_seeds_bins_and_memorization_averages_their_curves():
    rows = [
        r
        | {
            "reliability_count": [2, 3 + s],
            "reliability_correct": [1, 2 + s],
            "reliability_confidence": [0.5, 2.0 + s],
            "mem_noisy_curve": [0.1 * s, 0.2 * s],
            "mem_clean_curve": [0.9, 0.8 - 0.1 * s],
        }
        for s, r in enumerate(runs("ce", 0.4))
    ]
    (board,) = lb.boards(rows)
    (diagram,), _ = data(figures.reliability(board, title="t"))
    assert diagram.count == (4, 7) and diagram.correct == (2, 5)
    assert diagram.confidence == pytest.approx((1.0, 5.0))
    (curves,), _ = data(figures.memorization(board, title="t"))
    assert curves.fit_noisy == pytest.approx((0.05, 0.1))
    assert curves.fit_clean == pytest.approx((0.9, 0.75))


def test_records_before_schema_5_draw_what_they_can():
    (board,) = lb.boards(runs("ce", 0.4))  # no bins, curves nor counts
    assert list(figures.board_figures(board, "t")) == [
        "accuracy (selected by noisy validation) against noise rate",
        "accuracy (last epoch) against noise rate",
    ]


def test_the_focus_rate_is_the_nearest_to_0_4_above_0():
    (board,) = lb.boards(runs("ce", 0.0) + runs("ce", 0.3) + runs("ce", 0.6))
    assert figures.focus_rate(board) == 0.3
    (clean,) = lb.boards(runs("ce", 0.0))
    assert figures.focus_rate(clean) is None


def test_a_store_of_mixed_schemas_is_refused_with_the_fix(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from noisebench.cli import app
    from noisebench.store import ADDED_COLUMNS, SCHEMA, runs_dir, write_records

    write_records(runs("ce", 0.2), tmp_path)
    old = pa.schema([f for f in SCHEMA if f.name not in ADDED_COLUMNS])
    rows = [{k: r[k] for k in old.names} for r in runs("ce", 0.4)]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=old), runs_dir(tmp_path) / "o.parquet"
    )
    for command in (["leaderboard"], ["leaderboard", "show"]):
        result = CliRunner().invoke(app, [*command, "--store", str(tmp_path)])
        assert result.exit_code == 2, command
        assert "noisebench store upgrade" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "README.md").exists()


def test_label_precision_averages_the_seeds_curves_beside_every_sample():
    rows = [
        r
        | {
            "selected_clean_curve": [0.8, 0.9 + 0.02 * s],
            "realized_rate": 0.2 + 0.02 * s,
        }
        for s, r in enumerate(runs("coteaching", 0.2, params='{"forget_rate":0.2}'))
    ]
    rows += runs("ce", 0.2)  # selects nothing: no curve, no panel of its own
    rows += runs("ce", 0.0)  # no noisy label: no panel
    (board,) = lb.boards(rows)
    panels, _ = data(figures.label_precision(board, title="t"))
    ((name, baseline, (curve,)),) = panels
    assert name == "r = 0.2" and baseline == pytest.approx(1 - 0.21)
    assert curve.label.startswith("coteaching") and curve.values == pytest.approx(
        (0.8, 0.91)
    )
    assert "label precision of the selected samples" in figures.board_figures(
        board, "t"
    )
    (plain,) = lb.boards(runs("ce", 0.2))
    assert figures.label_precision(plain, title="t") is None


# --------------------------------------------------------------------- redraw only on change
def test_a_drawing_key_follows_the_data_the_options_and_the_function():
    rows = runs("ce", 0.2, test_acc_at_best_val=0.9) + runs("ce", 0.4)
    (board,) = lb.boards(rows)

    def key(board, **options):
        kwargs = {"title": "t", "ylabel": "y"} | options
        drawing = figures.metric_against_rate(board, "test_acc_at_best_val", **kwargs)
        return figures.drawing_key(drawing)

    assert key(board) == key(board) is not None
    (other,) = lb.boards(runs("ce", 0.2, test_acc_at_best_val=0.91) + runs("ce", 0.4))
    assert key(other) != key(board)  # one value of one seed
    assert key(board, title="another") != key(board)
    ece = figures.metric_against_rate(board, "ece", title="t", ylabel="y")
    assert figures.drawing_key(ece) != key(board)
    # arrays hash by their content, not their repr (which elides long ones)
    a, b = np.zeros(5000), np.zeros(5000)
    b[2500] = 1.0

    def matrices(m):
        return figures.partial(figures.figure_transitions, [("r", m)], title="t")

    assert figures.drawing_key(matrices(a)) != figures.drawing_key(matrices(b))
    assert figures.drawing_key(matrices(a)) == figures.drawing_key(matrices(a.copy()))
    # numpy scalars hash as the Python numbers they are (their repr varies by version)
    assert figures.drawing_key(matrices([np.float64(0.5)])) == figures.drawing_key(
        matrices([0.5])
    )
    # what it cannot see into is always drawn
    assert figures.drawing_key(lambda: None) is None
    opaque = figures.partial(figures.figure_transitions, [object()], title="t")
    assert figures.drawing_key(opaque) is None


def figure_store(tmp_path, acc: float = 0.9, **overrides):
    from noisebench.store import write_records

    extra = {
        "reliability_count": [2, 3],
        "reliability_correct": [1, 2],
        "reliability_confidence": [0.5, 2.0],
        "mem_noisy_curve": [0.1, 0.2],
        "mem_clean_curve": [0.9, 0.8],
        "confusion": [8, 2, 1, 9],
    }
    # methods not registered here: a registered one's rows would be stale (their
    # source hash is not the registry's)
    rows = [
        r | extra
        for r in runs("mine", 0.2, test_acc_at_best_val=acc, **overrides)
        + runs("theirs", 0.2, params='{"a":1}', test_acc_at_best_val=0.8, **overrides)
    ]
    write_records(rows, tmp_path)
    return tmp_path


def test_the_page_draws_a_figure_again_only_when_what_it_shows_changed(
    tmp_path, monkeypatch
):
    from noisebench.leaderboard import plots

    store = figure_store(tmp_path)
    drawn: list[str] = []
    real = plots.save

    def counting(fig, path, **kwargs):
        drawn.append(path.name)
        real(fig, path, **kwargs)

    monkeypatch.setattr(plots, "save", counting)
    lb.build(store)
    pngs = {p: p.read_bytes() for p in sorted((store / "plots").rglob("*.png"))}
    assert len(pngs) == len(drawn) >= 5
    drawn.clear()
    lb.build(store)
    assert drawn == []  # nothing changed: nothing drawn, every byte the same
    assert {p: p.read_bytes() for p in pngs} == pngs
    # a figure deleted, or one whose key is not this data's, is drawn again
    first, second = list(pngs)[:2]
    first.unlink()
    second.write_bytes(b"not a png")
    lb.build(store)
    assert sorted(drawn) == sorted([first.name, second.name])
    assert first.read_bytes() == pngs[first] and second.read_bytes() == pngs[second]
    # newer records of the same runs change the accuracy figure, not the figures
    # drawn from the noise draws, bins and curves, which they share
    drawn.clear()
    figure_store(tmp_path / "more", acc=0.5, finished_at=T0 + timedelta(hours=1))
    for shard in (tmp_path / "more" / "runs").glob("*.parquet"):
        shard.rename(store / "runs" / shard.name)
    lb.build(store)
    assert drawn == ["accuracy.png"]


def test_saved_key_of_a_missing_or_foreign_file_is_none(tmp_path):
    from PIL import Image

    from noisebench.leaderboard.plots import saved_key

    assert saved_key(tmp_path / "missing.png") is None
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    assert saved_key(tmp_path / "bad.png") is None
    Image.new("RGB", (2, 2)).save(tmp_path / "plain.png")
    assert saved_key(tmp_path / "plain.png") is None
