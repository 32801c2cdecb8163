"""The leaderboard's aggregation rules, one test each: ranks, the paired test and the
marks it allows, the upper-bound block, as-run vs tuned tables, incomplete and
diverged cells, duplicates, the shared rate-0 column, and one tuning per cell."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from helpers import T0, seed_runs, train_config
from scipy import stats as scipy_stats

from noisebench import leaderboard as lb
from noisebench.leaderboard.stats import (
    BEST,
    TIED,
    detectable_effect,
    judge_column,
    paired_interval,
    paired_power,
    paired_t_test,
)

runs = seed_runs


def table_of(rows, kind="default", metric="test_acc", board=0):
    tables = lb.aggregate.tables(lb.boards(rows)[board], metric)
    (table,) = [t for t in tables if t.kind == kind]
    return table


def row_of(table, label):
    (row,) = [r for r in table.rows if r.line.label == label]
    return row


# --------------------------------------------------------------------- the paired test
@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_paired_t_test_equals_scipy(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        a = rng.normal(0.7, 0.05, n)
        b = a - rng.normal(0.01, 0.02, n)
        want = scipy_stats.ttest_rel(a, b).pvalue
        assert paired_t_test(list(a), list(b)) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_paired_interval_equals_scipy(n):
    rng = np.random.default_rng(100 + n)
    for level in (0.9, 0.95):
        a = rng.normal(0.7, 0.05, n)
        b = a - rng.normal(0.01, 0.02, n)
        want = scipy_stats.ttest_rel(a, b).confidence_interval(level)
        got = paired_interval(list(a), list(b), level=level)
        assert got == pytest.approx((want.low, want.high), rel=1e-9)
    assert all(math.isnan(x) for x in paired_interval([0.5], [0.4]))


@pytest.mark.parametrize("effect, pairs", [(0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10)])
def test_paired_power_gives_the_textbook_sample_sizes(effect, pairs):
    """The pairs a two-sided paired t-test at 0.05 needs for 80% power at Cohen's d_z,
    as G*Power (and Cohen's tables) give them: one fewer falls short."""
    assert paired_power(pairs, effect) >= 0.8 > paired_power(pairs - 1, effect)


@pytest.mark.parametrize("pairs, effect", [(5, 1.0), (5, 1.68), (10, 0.5)])
def test_paired_power_matches_a_simulation(pairs, effect):
    rng = np.random.default_rng(pairs * 100 + int(effect * 10))
    reps = 40_000
    diffs = rng.normal(effect, 1.0, (reps, pairs))
    t = diffs.mean(1) / (diffs.std(1, ddof=1) / math.sqrt(pairs))
    rejected = np.mean(np.abs(t) > scipy_stats.t.ppf(0.975, pairs - 1))
    want = paired_power(pairs, effect)
    assert abs(rejected - want) < 4 * math.sqrt(want * (1 - want) / reps)


def test_the_detectable_effect_is_found_with_the_power_asked_for():
    sizes = [detectable_effect(n) for n in (2, 3, 5, 10, 34)]
    for n, d in zip((2, 3, 5, 10, 34), sizes, strict=True):
        assert paired_power(n, d) == pytest.approx(0.8, abs=1e-9)
    assert sizes == sorted(sizes, reverse=True)  # more pairs, smaller effects
    assert sizes[-1] == pytest.approx(0.495, abs=1e-3)  # G*Power at 34 pairs
    assert detectable_effect(3, power=0.9) > sizes[1]
    assert detectable_effect(1) == math.inf


def test_paired_t_test_without_spread_lets_the_data_decide():
    assert paired_t_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0
    assert paired_t_test([0.75, 0.5, 0.25], [0.5, 0.25, 0.0]) == 0.0
    assert math.isnan(paired_t_test([0.5], [0.4]))
    with pytest.raises(ValueError):
        paired_t_test([0.5, 0.6], [0.4])


def test_pairing_removes_the_noise_draws_variance():
    """B beats A by 0.01 on every noise draw, while the draws themselves differ by 0.2:
    unpaired, the seeds could not tell them apart; paired, B is significantly best."""
    base = [0.5, 0.7, 0.6, 0.8, 0.55]
    a = {s: v for s, v in enumerate(base)}
    b = {s: v + 0.01 + 0.001 * (s % 2) for s, v in enumerate(base)}
    assert scipy_stats.ttest_ind(list(b.values()), list(a.values())).pvalue > 0.5
    standing = judge_column({"a": a, "b": b})
    assert standing["b"].mark == BEST and standing["a"].mark == ""
    assert standing["a"].p_value < 0.001 and math.isnan(standing["b"].p_value)


def test_methods_the_seeds_cannot_separate_are_tied_with_the_best():
    rng = np.random.default_rng(0)
    noise = {m: rng.normal(0, 0.05, 5) for m in "abc"}
    samples = {
        "a": {s: 0.80 + noise["a"][s] for s in range(5)},
        "b": {s: 0.79 + noise["b"][s] for s in range(5)},  # within the noise of a
        "c": {s: 0.40 + 0.001 * s for s in range(5)},  # far below both
    }
    standing = judge_column(samples)
    best = max(samples, key=lambda k: np.mean(list(samples[k].values())))
    assert standing[best].mark == TIED  # not significantly best: not bold
    assert {k for k, v in standing.items() if v.mark == TIED} == {"a", "b"}
    assert standing["c"].mark == "" and standing["c"].rank == 3.0


def test_a_cell_sharing_fewer_than_two_noise_seeds_with_the_best_is_not_separated():
    standing = judge_column({"a": {0: 0.9, 1: 0.91}, "b": {5: 0.1, 6: 0.11}})
    assert standing["a"].mark == standing["b"].mark == TIED
    assert math.isnan(standing["b"].p_value)


def test_equal_means_share_their_rank_and_one_cell_is_no_contest():
    standing = judge_column({"a": {0: 0.5, 1: 0.7}, "b": {0: 0.7, 1: 0.5}})
    assert standing["a"].rank == standing["b"].rank == 1.5
    (alone,) = judge_column({"a": {0: 0.5, 1: 0.6}}).values()
    assert alone.rank == 1.0 and alone.mark == ""


def test_mean_rank_needs_every_column():
    assert lb.aggregate.mean_rank([1.0, 2.0, 3.0]) == 2.0
    assert lb.aggregate.mean_rank([1.0, None]) is None


# --------------------------------------------------------------------- the tables
def test_ranks_and_mean_rank_order_the_rows():
    rows = []
    for rate, (ce, ls) in {0.2: (0.7, 0.8), 0.4: (0.5, 0.6)}.items():
        rows += runs("ce", [ce, ce + 0.01], noise_rate=rate)
        rows += runs("ls", [ls, ls + 0.01], noise_rate=rate, params='{"smoothing":0.1}')
    table = table_of(rows)
    assert [r.line.method for r in table.rows] == ["ls", "ce"]
    assert row_of(table, "ls (smoothing=0.1)").mean_rank == 1.0
    ce = row_of(table, "ce")
    assert ce.mean_rank == 2.0 and ce.entries[0.2].standing.rank == 2.0


def test_the_oracle_transition_is_an_upper_bound_never_ranked_nor_bold():
    rows = runs("ce", [0.60, 0.61, 0.62])
    rows += runs("forward", [0.95, 0.96, 0.97], transition_source="oracle")
    rows += runs(
        "forward", [0.70, 0.71, 0.72], transition_source="estimated", config_hash="e"
    )
    table = table_of(rows)
    oracle = row_of(table, "forward")
    assert oracle.block == lb.aggregate.UPPER_BOUND and oracle.mean_rank is None
    assert oracle.entries[0.2].standing is None
    assert table.rows[-1] is oracle  # below every ranked row
    estimated = row_of(table, "forward [estimated T]")
    assert estimated.entries[0.2].standing.mark == BEST  # the best of the competitors
    text = lb.render_markdown(rows)
    assert "| forward | 96.0 ± 1.0 (3) |  |" in text
    assert "**96.0" not in text


def test_as_run_and_tuned_tables_are_apart_and_a_method_without_params_appears_once():
    ls_tuned = runs("ls", [0.8, 0.82], phase="final", params='{"smoothing":0.3}')
    ls_default = runs("ls", [0.7, 0.72], params='{"smoothing":0.1}', config_hash="d")
    ce = runs("ce", [0.6, 0.62])
    ce_tuned = runs("ce", [0.6, 0.62], phase="final", config_hash="ct")
    rows = ls_tuned + ls_default + ce + ce_tuned
    as_run, tuned = table_of(rows), table_of(rows, kind="tuned")
    assert sorted(r.line.label for r in as_run.rows) == ["ce", "ls (smoothing=0.1)"]
    assert sorted(r.line.label for r in tuned.rows) == ["ce", "ls (tuned)"]
    text = lb.render_markdown(rows)
    assert text.count("| ce |") == 4  # once per table: 2 kinds x 2 metrics


def test_incomplete_and_diverged_cells_are_shown_but_never_ranked():
    rows = runs("ce", [0.6, 0.61, 0.62])
    rows += runs("ls", [0.9, 0.91, 0.92], params='{"smoothing":0.1}')[:2]  # 1 missing
    rows += runs("gls", [0.95, 0.96, 0.97], params='{"smooth_rate":-0.2}')
    rows[-1]["status"], rows[-1]["test_acc"] = "diverged", None
    table = table_of(rows)
    for label in ("ls (smoothing=0.1)", "gls (smooth_rate=-0.2)"):
        row = row_of(table, label)
        assert row.entries[0.2].standing is None and row.mean_rank is None
    assert row_of(table, "ce").entries[0.2].standing.rank == 1.0
    text = lb.render_markdown(rows)
    assert "| ls (smoothing=0.1) | — (2/3) |  |" in text
    assert "| gls (smooth\\_rate=-0.2) | diverged 1/3 |  |" in text
    assert "91" not in text and "95" not in text  # no partial means


def test_duplicate_records_count_once(tmp_path):
    from noisebench.store import write_records

    # a method not registered here, so no staleness rule applies
    old = runs("mine", [0.1, 0.1])
    new = runs("mine", [0.6, 0.62], finished_at=T0 + timedelta(hours=1))
    write_records(old + new, tmp_path)
    text = lb.build(tmp_path, write_plots=False)
    assert "| mine | 61.0 ± 1.4 (2) #1 | 1.00 |" in text
    assert text.endswith("2 runs shown.\n")


def test_rate_zero_runs_of_one_noise_type_fill_every_tables_zero_column():
    clean = runs("ce", [0.9, 0.92], noise_rate=0.0, config_hash="c0")
    sym = runs("ce", [0.7, 0.72], noise_rate=0.4, config_hash="s")
    pair = runs("ce", [0.6, 0.62], noise_rate=0.4, noise_type="pairflip")
    # ls has rate-0 runs under uniform noise only: every board borrows those
    other = runs(
        "ls", [0.8, 0.8], noise_rate=0.0, noise_type="uniform", config_hash="u"
    )
    boards = {b.noise_type: b for b in lb.boards(clean + sym + pair + other)}
    assert set(boards) == {"symmetric", "pairflip"}  # the rate-0-only board is dropped
    for kind in ("symmetric", "pairflip"):
        assert boards[kind].rates == [0.0, 0.4]
        (ce_line,) = [line for line in boards[kind].cells if line.method == "ce"]
        assert boards[kind].cells[ce_line][0.0].records == clean
    pairflip = boards["pairflip"]
    assert {line.method: kind for line, kind in pairflip.borrowed_zero.items()} == {
        "ce": "symmetric",
        "ls": "uniform",
    }
    assert {line.method for line in boards["symmetric"].borrowed_zero} == {"ls"}
    text = lb.render_markdown(clean + sym + pair)
    assert "Column 0 holds the rate-0 runs recorded under symmetric noise" in text


def test_rate_zero_is_never_shared_across_setups_or_user_matrices():
    clean = runs("ce", [0.9, 0.92], noise_rate=0.0, config_hash="c0")
    other_setup = runs(
        "ce", [0.6, 0.62], noise_type="pairflip", train_config='{"model":"cnn"}'
    )
    user_t = runs("ce", [0.5, 0.5], noise_type="transition", transition_sha="t" * 16)
    for board in lb.boards(clean + other_setup + user_t):
        if board.noise_type != "symmetric":
            assert 0.0 not in board.rates and not board.borrowed_zero


def test_a_tuned_cell_shows_its_newest_tuning_only():
    older = runs(
        "ls", [0.5, 0.5], phase="final", study="old", params='{"smoothing":0.2}'
    )
    newer = runs(
        "ls",
        [0.8, 0.8],
        phase="final",
        study="new",
        params='{"smoothing":0.4}',
        config_hash="n",
        finished_at=T0 + timedelta(days=1),
    )
    (board,) = lb.boards(older + newer)
    (cell,) = next(iter(board.cells.values())).values()
    assert {r["study"] for r in cell.records} == {"new"} and board.superseded == 2
    text = lb.render_markdown(older + newer)
    assert "| ls (tuned) | 80.0 ± 0.0 (2) #1 | 1.00 |" in text
    assert "2 tuned runs of older tunings of the same cells are not shown" in text


def test_tied_cells_are_marked_and_only_a_significant_best_is_bold():
    rows = runs("ce", [0.80, 0.70, 0.90])
    rows += runs("ls", [0.70, 0.90, 0.80], params='{"smoothing":0.1}')
    text = lb.render_markdown(rows)
    assert "| ce | ≈80.0 ± 10.0 (3) #1.5 | 1.50 |" in text
    assert "| ls (smoothing=0.1) | ≈80.0 ± 10.0 (3) #1.5 | 1.50 |" in text
    assert "**" not in text.split("How to read it:")[1].split("##")[1]


# ------------------------------------------------------------------ the board's grid
def test_the_contents_counts_every_board_against_the_whole_stores_grid():
    """Two setups. The MLP has ce and ls at symmetric 0 and 0.2 and pair-flip 0.2 (one
    cell missing a seed) and a tuned ls cell; the CNN has ce at symmetric 0.2 only. The
    grid is 2 rows (ce, ls) x each setting's rates, on both setups; a setting a setup
    lacks is listed with the rate-0 cells it would borrow."""
    cnn = {"train_config": train_config("cnn")}
    rows = (
        runs("ce", [0.9, 0.9], noise_rate=0.0)
        + runs("ce", [0.7, 0.7], noise_rate=0.2)
        + runs("ce", [0.6, 0.6], noise_type="pairflip")
        + runs("ls", [0.9, 0.9], noise_rate=0.0, params='{"smoothing":0.1}')
        + runs("ls", [0.8, 0.8], noise_rate=0.2, params='{"smoothing":0.1}')
        # asked for 2 seeds, got 1
        + runs("ls", [0.6, 0.6], noise_type="pairflip", params='{"smoothing":0.1}')[:1]
        + runs("ls", [0.8, 0.8], noise_rate=0.2, phase="final", config_hash="t")
        + runs("ce", [0.7, 0.7], noise_rate=0.2, **cnn)
    )
    shown = lb.boards(rows)
    grid = lb.aggregate.Grid.of(shown)
    assert grid.rates == {
        ("pairflip", "exact"): (0.0, 0.2),
        ("symmetric", "exact"): (0.0, 0.2),
    }
    every = grid.boards(shown)
    cov = {
        (b.train_config == cnn["train_config"], b.noise_type): grid.coverage(b)
        for b in every
    }
    Cov = lb.aggregate.Coverage
    assert len(every) == 4 and len(shown) == 3  # the CNN's pair-flip board is missing
    assert cov[False, "symmetric"] == {
        "default": Cov(finished=4, partial=0, total=4),
        "tuned": Cov(finished=1, partial=0, total=2),  # ls at 0.2 of ls's 2 rates
    }
    assert cov[False, "pairflip"] == {  # rate 0 borrowed from symmetric
        "default": Cov(finished=3, partial=1, total=4),
        "tuned": Cov(finished=0, partial=0, total=2),
    }
    assert cov[True, "symmetric"]["default"] == Cov(finished=1, partial=0, total=4)
    assert cov[True, "pairflip"]["default"] == Cov(finished=0, partial=0, total=4)
    text = lb.render_markdown(rows)
    contents = text[
        text.index("## Contents") : text.index("\n## ", text.index("## Contents") + 1)
    ]
    assert "| all | 8/16 (1 partial) | 1/8 |" in contents
    assert "| digits (cnn): pairflip noise (exact sampling) | 0/4 | 0/2 |" in contents


def test_a_method_without_params_has_no_tuned_grid():
    rows = runs("ce", [0.9, 0.9]) + runs(
        "ce", [0.9, 0.9], phase="final", config_hash="t"
    )
    shown = lb.boards(rows)
    grid = lb.aggregate.Grid.of(shown)
    assert grid.coverage(shown[0])["tuned"].total == 0
    assert "| nothing to tune |" in lb.render_markdown(rows)


def test_a_diverged_cell_is_finished_work():
    rows = runs("ce", [0.9, 0.9])
    rows[1] |= {"status": "diverged", "test_acc": None, "test_acc_at_best_val": None}
    shown = lb.boards(rows)
    cov = lb.aggregate.Grid.of(shown).coverage(shown[0])["default"]
    assert (cov.finished, cov.partial, cov.total) == (1, 0, 1)


def test_the_compute_is_the_sum_of_wall_times_per_setup_and_device():
    """Each record holds its share of its ensemble's time, so the sums are exact: the
    MLP's 2 shown runs and 3 tuning runs on the CPU, its 1 run on a GPU, the CNN's run."""
    cpu = {"device": "cpu", "device_name": "x86_64"}
    gpu = {"device": "cuda", "device_name": "NVIDIA H100"}
    cnn = {"train_config": train_config("cnn")}
    rows = (
        runs("ce", [0.9, 0.9], wall_time_s=1800.0, **cpu)
        + runs("ls", [0.9, 0.9, 0.9], phase="tune", wall_time_s=600.0, **cpu)
        + runs("gce", [0.9], wall_time_s=36.0, **gpu)
        + runs("ce", [0.9], wall_time_s=7200.0, **cpu, **cnn)
    )
    found = {(c.model, c.device): c for c in lb.cost.costs(rows)}
    assert set(found) == {
        ("mlp", "cpu (x86_64)"),
        ("mlp", "cuda (NVIDIA H100)"),
        ("cnn", "cpu (x86_64)"),
    }
    mlp = found["mlp", "cpu (x86_64)"]
    assert (mlp.runs, mlp.tuning_runs) == (2, 3)
    assert mlp.hours == pytest.approx((2 * 1800 + 3 * 600) / 3600)
    assert found["mlp", "cuda (NVIDIA H100)"].hours == pytest.approx(0.01)
    assert found["cnn", "cpu (x86_64)"].hours == pytest.approx(2.0)
    text = lb.render_markdown(rows)
    assert "| digits (mlp) | cpu (x86\\_64) | 2 | 3 | 1.50 |" in text
    assert "| all | | 4 | 3 | 3.51 |" in text


def test_the_params_tuning_chose_are_shown_per_cell():
    """Each tuned cell's params, in the tuned table's row order (ls first: higher
    mean), rounded to 3 digits; a cell not tuned reads ·, and a cell whose records
    disagree says so instead of picking one. The export carries them exactly."""
    tuned = {"phase": "final", "noise_rate": 0.4}
    ls = runs("ls", [0.8, 0.8], params='{"smoothing":0.123456}', **tuned)
    ls += runs("ls", [0.6, 0.6], phase="final", params='{"smoothing":0.3}')
    gce = runs("gce", [0.7, 0.7], params='{"q":0.5}', **tuned)
    gce[1] |= {"params": '{"q":0.9}'}
    rows = ls + gce + runs("gce", [0.5, 0.5], params='{"q":0.7}')  # as run, at 0.2
    text = lb.render_markdown(rows)
    chosen = text[text.index("Params chosen by tuning") :].split("\n\n")[1]
    assert chosen.splitlines()[2:] == [
        "| ls (tuned) | smoothing=0.3 | smoothing=0.123 |",
        "| gce (tuned) | · | mixed |",
    ]
    from noisebench.leaderboard import export

    flat = export.flat_rows(lb.aggregate.tables(lb.boards(rows)[0], "test_acc"))
    cells = {
        (r["label"], r["noise_rate"]): r["cell_params"]
        for r in flat
        if r["table"] == "tuned"
    }
    assert cells[("ls (tuned)", 0.4)] == '{"smoothing":0.123456}'
    assert cells[("gce (tuned)", 0.4)] is None
