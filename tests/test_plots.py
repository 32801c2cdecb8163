"""The leaderboard's figures, checked on what they draw: which lines land in which
panel, the band and bar geometry, the heat map's values, and the PNG file written.
Expected values are computed here from raw inputs, not with the module's helpers."""

from __future__ import annotations

import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from noisebench.leaderboard import plots
from noisebench.leaderboard.plots import Curves, Precision, Reliability, Series

RATES = (0.0, 0.2, 0.4, 0.6, 0.8)
HOSTILE = "a$\\frac{$b"  # unbalanced math: matplotlib raises on it unless escaped


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def lines(ax, gid: str) -> list:
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def bands(ax) -> list:
    return [c for c in ax.collections if c.get_gid() == "band"]


def board(seed: int = 0) -> tuple[list[Series], Series]:
    """14 series in 3 groups of 5, 6 and 3, and a cross-entropy reference."""
    rng = np.random.default_rng(seed)
    series = []
    for group, n in (("smoothing", 5), ("loss correction", 6), ("robust loss", 3)):
        for i in range(n):
            mean = 95 - np.asarray(RATES) * rng.uniform(20, 60)
            series.append(
                Series(
                    label=f"{group} {i}",
                    group=group,
                    x=RATES,
                    mean=tuple(mean),
                    std=tuple(rng.uniform(0.2, 2.0, len(RATES))),
                    style=("solid", "dashed", "dotted")[i % 3],
                )
            )
    ce = Series("cross-entropy", "baseline", RATES, (95, 85, 75, 65, 55), (1,) * 5)
    return series, ce


# small multiples


@pytest.mark.parametrize("max_lines", [4, 6])
def test_small_multiples_panels_hold_at_most_max_lines_and_every_series_once(
    max_lines,
):
    series, ce = board()
    fig = plots.figure_small_multiples(
        series, title="t", ylabel="acc", reference=[ce], max_lines=max_lines
    )
    seen: list[str] = []
    for ax in fig.axes:
        data, refs = lines(ax, "series"), lines(ax, "reference")
        # nothing but data lines on the axes, so get_lines() is what a reader sees
        assert len(ax.get_lines()) == len(data) + len(refs) <= max_lines
        assert [r.get_label() for r in refs] == ["cross-entropy"]
        seen += [line.get_label() for line in data]
        # each series sits in a panel of its own group
        group = ax.get_title().split(" (")[0]
        assert all(line.get_label().startswith(group) for line in data)
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [line.get_label() for line in data] + ["cross-entropy"]
    assert sorted(seen) == sorted(s.label for s in series)
    # groups of 5, 6, 3 with one reference line: capacity max_lines - 1 per panel
    expected = sum(math.ceil(n / (max_lines - 1)) for n in (5, 6, 3))
    assert len(fig.axes) == expected


def test_a_group_that_fits_only_without_the_reference_is_split():
    series, ce = board()
    six = [s for s in series if s.group == "loss correction"]
    alone = plots.figure_small_multiples(six, title="t", ylabel="acc", max_lines=6)
    assert [ax.get_title() for ax in alone.axes] == ["loss correction"]
    with_ce = plots.figure_small_multiples(
        six, title="t", ylabel="acc", reference=[ce], max_lines=6
    )
    assert [ax.get_title() for ax in with_ce.axes] == [
        "loss correction (1/2)",
        "loss correction (2/2)",
    ]
    assert [len(lines(ax, "series")) for ax in with_ce.axes] == [3, 3]  # even, not 5+1


def test_small_multiples_bands_are_mean_plus_minus_std():
    series, _ = board()
    fig = plots.figure_small_multiples(series, title="t", ylabel="acc")
    checked = 0
    for ax in fig.axes:
        for s in (s for s in series if s.label in {x.get_label() for x in ax.lines}):
            (band,) = [b for b in bands(ax) if b.get_label() == s.label]
            vertices = np.concatenate([p.vertices for p in band.get_paths()])
            for x, m, sd in zip(s.x, s.mean, s.std, strict=True):
                ys = vertices[np.isclose(vertices[:, 0], x), 1]
                assert ys.min() == pytest.approx(m - sd)
                assert ys.max() == pytest.approx(m + sd)
            checked += 1
    assert checked == len(series)


def test_nan_std_gives_no_band_and_nan_mean_a_gap():
    one_seed = Series("one seed", "g", RATES, (90, 80, 70, 60, 50), (math.nan,) * 5)
    partial = Series(
        "partial", "g", RATES, (91, 81, 71, 61, 51), (1, 1, math.nan, 1, 1)
    )
    missing = Series("missing", "g", RATES, (92, math.nan, 72, 62, 52), (1,) * 5)
    fig = plots.figure_small_multiples(
        [one_seed, partial, missing], title="t", ylabel="acc"
    )
    (ax,) = fig.axes
    assert sorted(b.get_label() for b in bands(ax)) == ["missing", "partial"]
    (band,) = [b for b in bands(ax) if b.get_label() == "partial"]
    xs = np.concatenate([p.vertices[:, 0] for p in band.get_paths()])
    assert not np.isclose(xs, 0.4).any()  # no band at the one-seed point
    for path in band.get_paths():
        assert np.isfinite(path.vertices).all()
    (line,) = [x for x in lines(ax, "series") if x.get_label() == "missing"]
    y = np.asarray(line.get_ydata(), dtype=float)
    assert math.isnan(y[1]) and np.isfinite(np.delete(y, 1)).all()  # a gap, not 0


def test_a_label_keeps_its_colour_across_panels_and_figures():
    series, ce = board()
    shuffled = list(reversed(series))
    a = plots.figure_small_multiples(series, title="a", ylabel="y", max_lines=3)
    b = plots.figure_small_multiples(
        shuffled, title="b", ylabel="y", reference=[ce], max_lines=6
    )

    def colours(fig: Figure) -> dict[str, str]:
        found: dict[str, str] = {}
        for ax in fig.axes:
            data = lines(ax, "series")
            panel = [to_hex(line.get_color()) for line in data]
            assert len(set(panel)) == len(panel)  # distinct within a panel
            for line in data:
                (band,) = [x for x in bands(ax) if x.get_label() == line.get_label()]
                assert (
                    to_hex(band.get_facecolor()[0], keep_alpha=False)
                    == panel[data.index(line)]
                )
                found[line.get_label()] = to_hex(line.get_color())
        return found

    assert colours(a) == colours(b)
    assert len(set(colours(a).values())) == len(series)  # 14 labels, 14 colours
    # a caller-given mapping wins, for figures whose label sets differ
    fixed = plots.figure_small_multiples(
        series[:2], title="c", ylabel="y", colours={series[1].label: "#000000"}
    )
    assert colours(fixed)[series[1].label] == "#000000"


def test_small_multiples_rejects_what_it_cannot_draw():
    series, ce = board()
    with pytest.raises(ValueError, match="no room"):
        plots.figure_small_multiples(
            series, title="t", ylabel="y", reference=[ce], max_lines=1
        )
    with pytest.raises(ValueError, match="twice"):
        plots.figure_small_multiples(series + series[:1], title="t", ylabel="y")
    with pytest.raises(ValueError, match="length"):
        Series("s", "g", (0.0, 0.2), (1.0,), (0.0,))
    with pytest.raises(ValueError, match="style"):
        Series("s", "g", (0.0,), (1.0,), (0.0,), style="dashdot")


# reliability


def binned(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15):
    """Per-sample bin index for (lo, hi] bins, computed with a comparison loop."""
    index = np.empty(len(conf), dtype=int)
    for n, c in enumerate(conf):
        index[n] = next(b for b in range(n_bins) if c <= (b + 1) / n_bins)
    return index


def test_reliability_bars_and_ece_match_the_samples():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.3, 1.0, 4000)
    conf = conf[(conf <= 0.6) | (conf > 2 / 3)]  # bin 9 = (0.6, 2/3] left empty
    correct = rng.uniform(size=len(conf)) < conf**2
    index = binned(conf, correct)
    diagram = Reliability(
        "m",
        count=[int((index == b).sum()) for b in range(15)],
        correct=[int(correct[index == b].sum()) for b in range(15)],
        confidence=[float(conf[index == b].sum()) for b in range(15)],
    )
    fig = plots.figure_reliability([diagram, diagram], title="t")
    ax = fig.axes[0]
    full = sorted(set(index))
    assert 9 not in full and 0 not in full
    acc = [p for p in ax.patches if p.get_gid() == "accuracy"]
    gap = [p for p in ax.patches if p.get_gid() == "gap"]
    assert len(acc) == len(gap) == len(full)  # empty bins are drawn as nothing
    for a, g, b in zip(acc, gap, full, strict=True):
        assert a.get_x() + a.get_width() / 2 == pytest.approx((b + 0.5) / 15)
        assert a.get_height() == pytest.approx(correct[index == b].mean())
        # the gap bar runs from the accuracy to the bin's mean confidence
        assert g.get_y() == pytest.approx(a.get_height())
        assert g.get_y() + g.get_height() == pytest.approx(conf[index == b].mean())
    # the textbook ECE, from the samples: sum_b |B_b| / n * |acc(B_b) - conf(B_b)|
    ece = sum(
        (index == b).sum()
        / len(conf)
        * abs(correct[index == b].mean() - conf[index == b].mean())
        for b in full
    )
    shown = float(re.search(r"ECE (\d+\.\d+)%", ax.get_title()).group(1))
    assert shown == pytest.approx(100 * ece, abs=0.005 + 1e-9)
    assert diagram.ece == pytest.approx(ece, rel=1e-12)
    assert ax.get_title().startswith("m\n")
    assert [x.get_gid() for x in ax.get_lines()] == ["diagonal"]


def test_reliability_without_samples_draws_no_bars():
    empty = Reliability("none", (0,) * 15, (0,) * 15, (0.0,) * 15)
    (ax,) = plots.figure_reliability([empty], title="t").axes
    assert len(ax.patches) == 0
    assert "ECE n/a" in ax.get_title()
    assert math.isnan(empty.ece)


# transitions


def test_transition_heat_map_is_the_row_normalized_counts():
    counts = np.array([[8, 2, 0, 0], [0, 0, 0, 0], [1, 1, 6, 2], [0, 0, 3, 1]])
    expected = np.full((4, 4), np.nan)
    for i in range(4):
        total = sum(int(v) for v in counts[i])
        for j in range(4):
            if total:
                expected[i, j] = counts[i, j] / total
    fig = plots.figure_transitions(
        [("uniform", counts), ("pairflip", counts.T)],
        title="t",
        class_names=["zero", "one", "two", "th$ree$"],
    )
    assert len(fig.axes) == 3  # two maps and one shared colour bar
    ax = fig.axes[0]
    image = ax.images[0]
    shown = np.ma.filled(np.ma.asarray(image.get_array(), dtype=float), np.nan)
    np.testing.assert_allclose(shown, expected)  # NaNs in the same places
    assert np.isnan(shown[1]).all()
    assert image.get_clim() == (0.0, 1.0)
    assert fig.axes[1].images[0].get_clim() == (0.0, 1.0)
    # one number per cell of a row with samples
    assert len(ax.texts) == 12
    assert {t.get_text() for t in ax.texts} >= {"0.80", "0.20", "0", "0.60", "0.75"}
    assert ax.get_ylabel() == "clean label" and ax.get_xlabel() == "noisy label"
    assert [t.get_text() for t in ax.get_xticklabels()][3] == r"th\$ree\$"
    assert "realized noise 0.375" in ax.get_title()  # 1 - 15 / 24: off the diagonal


def test_transition_heat_map_of_many_classes_has_no_cell_numbers():
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 20, (13, 13))
    (ax, _colourbar) = plots.figure_transitions([("k13", counts)], title="t").axes
    assert len(ax.texts) == 0
    with pytest.raises(ValueError, match="class names"):
        plots.figure_transitions([("k13", counts)], title="t", class_names=["a"])
    with pytest.raises(ValueError, match="square"):
        plots.figure_transitions([("bad", counts[:3])], title="t")


# memorization


def test_memorization_panels_and_line_data():
    rng = np.random.default_rng(3)
    curves = [
        Curves(f"m{i}", tuple(rng.uniform(size=7)), tuple(rng.uniform(size=7)))
        for i in range(5)
    ]
    fig = plots.figure_memorization(curves, title="t", max_lines=5)
    assert len(fig.axes) == 3  # 5 // 2 = 2 methods a panel: 2 + 2 + 1
    found = {}
    for ax in fig.axes:
        assert len(ax.get_lines()) <= 5
        noisy, clean = lines(ax, "fit_noisy"), lines(ax, "fit_clean")
        assert len(ax.get_lines()) == len(noisy) + len(clean)
        for n, c in zip(noisy, clean, strict=True):
            assert n.get_label() == c.get_label()
            assert n.get_color() == c.get_color()
            assert (n.get_linestyle(), c.get_linestyle()) == ("-", "--")
            found[n.get_label()] = (n, c)
    assert sorted(found) == [c.label for c in curves]
    for c in curves:
        n, cl = found[c.label]
        assert list(n.get_xdata()) == list(range(1, 8))
        assert list(cl.get_xdata()) == list(range(1, 8))
        np.testing.assert_array_equal(n.get_ydata(), c.fit_noisy)
        np.testing.assert_array_equal(cl.get_ydata(), c.fit_clean)
    with pytest.raises(ValueError, match="two lines"):
        plots.figure_memorization(curves, title="t", max_lines=1)


def test_memorization_legends_sit_below_their_panels_and_titles_name_positions():
    """These curves span the whole panel, so a legend inside hides some of them."""
    curves = [Curves(f"m{i}", (0.0, 0.5, 1.0), (1.0, 0.5, 0.0)) for i in range(7)]
    fig = plots.figure_memorization(
        curves, title="t", max_lines=6, order="as-run table"
    )
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend().get_window_extent(renderer)
        panel = ax.get_window_extent(renderer)
        assert legend.y1 < panel.y0  # wholly below the axes
        assert legend.x0 < panel.x1 and panel.x0 < legend.x1  # and under this one
    # 7 curves by 3 a panel: 3 + 2 + 2
    assert [ax.get_title() for ax in fig.axes] == [
        "1–3 of 7, in the as-run table's order",
        "4–5 of 7, in the as-run table's order",
        "6–7 of 7, in the as-run table's order",
    ]
    one = plots.figure_memorization(curves[:1], title="t")
    assert one.axes[0].get_title() == ""  # one panel needs no position


# label precision


def test_label_precision_panels_curves_and_baseline():
    panels = [
        (
            "r = 0.2",
            0.8,
            [Precision("a", (0.8, 0.9, 0.95)), Precision("b", (0.8, 0.85))],
        ),
        ("r = 0.4", 0.6, [Precision("a", (0.6, 0.7, 0.8))]),
    ]
    fig = plots.figure_label_precision(panels, title="t")
    assert len(fig.axes) == 2
    colours = {}
    for ax, (name, baseline, curves) in zip(fig.axes, panels, strict=True):
        assert ax.get_title() == name
        drawn = {line.get_label(): line for line in lines(ax, "precision")}
        assert sorted(drawn) == sorted(c.label for c in curves)
        for c in curves:
            line = drawn[c.label]
            assert list(line.get_xdata()) == list(range(1, len(c.values) + 1))
            np.testing.assert_array_equal(line.get_ydata(), c.values)
            colours.setdefault(c.label, line.get_color())
            assert line.get_color() == colours[c.label]  # one colour per method
        (base,) = lines(ax, "baseline")
        assert set(base.get_ydata()) == {baseline} and base.get_linestyle() == ":"
        assert list(base.get_xdata()) == [1, max(len(c.values) for c in curves)]
    with pytest.raises(ValueError, match="no panels"):
        plots.figure_label_precision([], title="t")


# save


def small_figure(label: str = "m") -> Figure:
    s = Series(label, "g", (0.0, 0.5), (90.0, 70.0), (1.0, math.nan))
    return plots.figure_small_multiples([s], title=label, ylabel="acc")


def test_save_writes_identical_png_bytes_and_leaves_no_temporary(tmp_path):
    first, second = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    fig = small_figure()
    plots.save(fig, first)
    assert not plt.fignum_exists(fig.number)  # closed: a board of figures leaks none
    plots.save(small_figure(), second)
    data = first.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data == second.read_bytes()
    assert [p.name for p in first.parent.iterdir()] == ["x.png"]


def test_saved_pngs_are_256_colours_and_look_as_rendered(tmp_path):
    import io

    from PIL import Image

    path = tmp_path / "x.png"
    reference = io.BytesIO()
    small_figure().savefig(reference, format="png", dpi=100)
    plots.save(small_figure(), path)
    saved = Image.open(path)
    assert saved.mode == "P" and len(saved.getcolors(256)) <= 256
    want = np.asarray(Image.open(reference).convert("RGB"), dtype=float)
    got = np.asarray(saved.convert("RGB"), dtype=float)
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 2.0  # of 255: no visible change
    assert path.stat().st_size < reference.getbuffer().nbytes


def test_a_failing_savefig_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    def broken(self, f, **kwargs):
        f.write(b"\x89PNG half")
        raise RuntimeError("disk full")

    path = tmp_path / "plots" / "x.png"
    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save(small_figure(), path)
    assert list(path.parent.iterdir()) == []
    # and an existing figure survives a failed overwrite
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        plots.save(small_figure(), path)
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]
    assert path.read_bytes() == b"old"
    assert plt.get_fignums() == []


def test_user_text_with_dollars_renders_in_every_figure(tmp_path):
    s = Series(HOSTILE, HOSTILE, (0.0, 0.5), (90.0, 70.0), (1.0, 1.0))
    figures = [
        plots.figure_small_multiples([s], title=HOSTILE, ylabel=HOSTILE, reference=[s]),
        plots.figure_reliability([Reliability(HOSTILE, (2, 0), (1, 0), (1.5, 0))], title=HOSTILE),
        plots.figure_transitions([(HOSTILE, np.eye(2, dtype=int))], title=HOSTILE, class_names=[HOSTILE, "b"]),
        plots.figure_memorization([Curves(HOSTILE, (0.1, 0.2), (0.5, 0.4))], title=HOSTILE),
    ]  # fmt: skip
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert legend == [r"a\$\frac{\$b"] * 2
    for i, fig in enumerate(figures):
        plots.save(fig, tmp_path / f"{i}.png")  # draws: invalid math would raise here
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.png" for i in range(4)]


def test_a_long_y_label_of_a_one_panel_figure_stays_inside_it():
    """A report's single panel is shorter than its y label; the label is broken into
    lines rather than clipped at both ends."""
    series = [Series("a", "g", (0.0, 1.0), (1.0, 2.0), (0.1, 0.1))]
    label = "clean test accuracy, noisy-validation epoch (%)"
    fig = plots.figure_small_multiples(series, title="t", ylabel=label, xlabel="x")
    fig.canvas.draw()
    text = fig._supylabel
    box = text.get_window_extent(fig.canvas.get_renderer())
    assert box.y0 >= 0 and box.y1 <= fig.bbox.height
    assert text.get_text().replace("\n", " ") == label
    plt.close(fig)
