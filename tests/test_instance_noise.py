"""Instance-dependent noise (Xia et al. 2020, `--noise-type instance`): the flip rates'
truncated normal (AQuA's bound bug caught), the per-sample rows, seeds, the features,
the oracle T each draw implies, and the CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import truncnorm
from typer.testing import CliRunner

from noisebench import instance
from noisebench.cli import app
from noisebench.data import Card, Dataset, load_dataset
from noisebench.errors import UserError
from noisebench.experiment import RunSpec, draw_member, prepare, train_config_for
from noisebench.instance import (
    STD,
    class_transition,
    expected_transition,
    flip_rates,
    instance_features,
    instance_noise,
    instance_rows,
    mean_flip_rate,
    sample_rows,
)
from noisebench.noise import NoiseSpec, confusion, matrix_sha, realized_rate

K = 10
# a deviation of more than Z standard errors fails a statistical check: with the
# handful of such checks here, a false alarm is a one-in-a-million event or rarer
Z = 5.0


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _true_mean(rate: float, *, a: float | None = None, b: float | None = None):
    """The mean and sd of N(rate, STD²) truncated to [0, 1], from scipy's distribution
    (an implementation the generator's inverse-CDF sampler does not use)."""
    a = (0 - rate) / STD if a is None else a
    b = (1 - rate) / STD if b is None else b
    dist = truncnorm(a, b, loc=rate, scale=STD)
    return dist.mean(), dist.std()


def _is_truncated_normal(q: np.ndarray, rate: float) -> bool:
    """Whether the mean of the draws q lies within Z standard errors of the true mean
    of N(rate, STD²) truncated to [0, 1]."""
    mean, sd = _true_mean(rate)
    return abs(q.mean() - mean) <= Z * sd / np.sqrt(q.size)


def _aqua_flip_rates(n, rate, *, rng, std=STD):
    """AQuA's copy: `truncnorm(0, 1, loc=r, scale=std)` takes 0 and 1 as bounds in
    standard units, i.e. truncates to [r, r + std]."""
    return truncnorm(0, 1, loc=rate, scale=std).rvs(n, random_state=rng)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.4, 0.6, 0.9])
def test_flip_rates_follow_the_truncated_normal(rate):
    q = flip_rates(200_000, rate, rng=np.random.default_rng(0))
    assert q.min() >= 0 and q.max() <= 1
    assert _is_truncated_normal(q, rate)
    assert mean_flip_rate(rate) == pytest.approx(_true_mean(rate)[0], abs=1e-12)
    # the share below r: the mass of [0, r] under the truncated normal
    below = truncnorm.cdf(rate, -rate / STD, (1 - rate) / STD, loc=rate, scale=STD)
    assert abs((q < rate).mean() - below) <= Z * np.sqrt(below * (1 - below) / q.size)


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_the_aqua_truncation_bounds_are_caught(rate):
    """The check above rejects AQuA's bounds: they shift the mean by +0.046 and never
    draw a rate below r."""
    q = _aqua_flip_rates(200_000, rate, rng=np.random.default_rng(0))
    assert not _is_truncated_normal(q, rate)
    assert q.mean() - rate == pytest.approx(0.046, abs=0.001)
    assert (q >= rate).all()


def _realized_rates(ds, rate: float, seeds: int) -> np.ndarray:
    spec, t, _ = NoiseSpec(kind="instance", rate=rate).realize(ds)
    return np.array(
        [realized_rate(ds.y, draw_member(ds, spec, t, s, 0.1).noisy) for s in seeds]
    )


def _within_sampling_error(rates: np.ndarray, n: int, expected: float) -> bool:
    """Each label flips with probability q_i, q_i iid: a Bernoulli(E[q]) indicator,
    independent across samples and seeds. So the mean realized rate over the seeds'
    n labels each has standard error sqrt(E[q](1 - E[q]) / (seeds n))."""
    se = np.sqrt(expected * (1 - expected) / (rates.size * n))
    return abs(rates.mean() - expected) <= Z * se


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_realized_rate_is_the_nominal_within_sampling_error(digits, rate):
    rates = _realized_rates(digits, rate, range(100))
    assert _within_sampling_error(rates, digits.y.size, mean_flip_rate(rate))
    if rate == 0.4:  # well inside [0, 1] the expected rate is r itself
        assert abs(mean_flip_rate(rate) - rate) < 1e-4
        assert _within_sampling_error(rates, digits.y.size, rate)


def test_aqua_bounds_fail_the_realized_rate_check(digits, monkeypatch):
    monkeypatch.setattr(instance, "flip_rates", _aqua_flip_rates)
    rates = _realized_rates(digits, 0.4, range(100))
    assert not _within_sampling_error(rates, digits.y.size, 0.4)


def test_rate_zero_is_clean_labels(digits):
    noisy, rows = instance_noise(digits, 0.0, seed=1)
    np.testing.assert_array_equal(noisy, digits.y)
    np.testing.assert_array_equal(class_transition(digits.y, rows, K), np.eye(K))
    assert mean_flip_rate(0.0) == 0 and (flip_rates(5, 0.0, rng=None) == 0).all()


def test_same_seed_same_draw_other_seed_other_draw(digits):
    spec, t, _ = NoiseSpec(kind="instance", rate=0.3).realize(digits)
    first = draw_member(digits, spec, t, 7, 0.1)
    state = np.random.get_state()
    np.random.seed(123)  # global random state plays no part, and is left untouched
    again = draw_member(digits, spec, t, 7, 0.1)
    np.random.set_state(state)
    for a, b in (
        (first.noisy, again.noisy),
        (first.rows, again.rows),
        (first.train, again.train),
        (first.transition, again.transition),
    ):
        np.testing.assert_array_equal(a, b)
    before = np.random.get_state()[1].copy()
    other = draw_member(digits, spec, t, 8, 0.1)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert (other.noisy != first.noisy).mean() > 0.1
    assert not np.allclose(other.transition, first.transition)
    # the rate is part of the seed: another rate is another W
    spec2, t2, _ = NoiseSpec(kind="instance", rate=0.31).realize(digits)
    assert not np.allclose(draw_member(digits, spec2, t2, 7, 0.1).rows, first.rows)


def test_rows_are_stochastic_with_diagonal_one_minus_q(digits):
    rng = np.random.default_rng(3)
    q = flip_rates(digits.y.size, 0.4, rng=rng)
    rows = instance_rows(digits, q, rng)
    assert rows.shape == (digits.y.size, K) and (rows >= 0).all()
    np.testing.assert_allclose(rows.sum(axis=1), 1, rtol=0, atol=1e-12)
    own = rows[np.arange(digits.y.size), digits.y]
    np.testing.assert_array_equal(own, 1 - q)  # the softmax puts nothing there
    # instance-dependent: samples of one class get different rows
    rows_0 = rows[digits.y == 0]
    assert np.ptp(rows_0 / q[digits.y == 0, None], axis=0).max() > 0.5


def test_flips_never_land_on_the_clean_class(digits):
    """With every q_i = 1 every label must change: a flip drawn onto the clean class
    would be a flip that is not one."""
    rng = np.random.default_rng(4)
    rows = instance_rows(digits, np.ones(digits.y.size), rng)
    for seed in range(5):
        noisy = sample_rows(rows, np.random.default_rng(seed))
        assert (noisy != digits.y).all()
        assert realized_rate(digits.y, noisy) == 1.0


def test_labels_are_drawn_from_the_rows():
    """sample_rows's draws match their rows within sampling error."""
    rows = np.tile([0.5, 0.0, 0.3, 0.2], (40_000, 1))
    drawn = sample_rows(rows, np.random.default_rng(5))
    share = np.bincount(drawn, minlength=4) / drawn.size
    se = np.sqrt(rows[0] * (1 - rows[0]) / drawn.size)
    assert (np.abs(share - rows[0]) <= Z * se + 1e-12).all() and share[1] == 0


def test_the_expected_t_is_the_mean_of_the_draws_t(digits):
    rate = 0.4
    spec, t, _ = NoiseSpec(kind="instance", rate=rate).realize(digits)
    np.testing.assert_allclose(t, expected_transition(K, rate))
    assert np.diag(t) == pytest.approx(1 - mean_flip_rate(rate))
    draws = np.stack(
        [draw_member(digits, spec, t, s, 0.1).transition for s in range(200)]
    )
    np.testing.assert_allclose(draws.sum(axis=2), 1, atol=1e-12)
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert (np.abs(draws.mean(axis=0) - t) <= Z * se + 1e-12).all()


def test_the_features_are_the_models_inputs(digits):
    # tables: the standardized features the model sees, in float64
    features = instance_features(digits)
    assert features.dtype == np.float64
    np.testing.assert_array_equal(features, digits.x.astype(np.float64))
    np.testing.assert_array_equal(instance_features(load_dataset("digits")), features)
    # a table the card does not standardize is standardized with the pool's statistics
    raw = replace(
        digits,
        x=(digits.x * 3 + 5).astype(np.float32),
        card=replace(digits.card, standardize=False),
    )
    mine = instance_features(raw)
    varies = digits.x.std(axis=0) > 1e-6
    np.testing.assert_allclose(mine.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(mine.std(axis=0)[varies], 1, atol=1e-6)


def _pixels() -> Dataset:
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, size=(300, 3 * 4 * 4), dtype=np.uint8)
    y = np.arange(300) % 3
    card = Card(
        name="px", source="file", pixels=True, image_shape=(3, 4, 4), standardize=False
    )
    return Dataset(
        "px",
        x,
        y,
        x[:10],
        y[:10],
        num_classes=3,
        card=card,
        sha="px",
        mean=(0.5, 0.4, 0.3),
        std=(0.25, 0.2, 0.3),
    )


def test_pixel_features_are_the_normalized_images():
    import torch

    from noisebench.inputs import Inputs

    ds = _pixels()
    inputs = Inputs.for_pixels(ds.mean, ds.std, flat=True)
    seen = inputs(torch.as_tensor(ds.x).reshape(-1, 3, 4, 4)).double().numpy()
    np.testing.assert_allclose(instance_features(ds), seen, rtol=0, atol=1e-5)
    noisy, rows = instance_noise(ds, 0.3, seed=0)
    np.testing.assert_allclose(rows.sum(axis=1), 1, atol=1e-12)
    assert 0.15 < realized_rate(ds.y, noisy) < 0.45


def test_prepare_gives_each_member_its_draws_t(digits, monkeypatch):
    from noisebench import engine
    from noisebench.experiment import run

    spec = RunSpec(
        method="forward",
        params={},
        dataset="digits",
        noise=NoiseSpec(kind="instance", rate=0.3),
        train=train_config_for(digits.card, epochs=1),
        seeds=(0, 1),
        noise_seeds=(4, 5),
    )
    prepared = prepare(spec)
    assert prepared.spec.noise.mode == "random"
    np.testing.assert_allclose(prepared.transition, expected_transition(K, 0.3))
    assert prepared.oracle.shape == (2, K, K)
    for s, noise_seed in enumerate((4, 5)):
        draw = draw_member(
            digits, prepared.spec.noise, prepared.transition, noise_seed, 0.1
        )
        np.testing.assert_array_equal(prepared.noisy[s], draw.noisy)
        np.testing.assert_array_equal(prepared.oracle[s], draw.transition)
        np.testing.assert_allclose(
            draw.transition, class_transition(digits.y, draw.rows, K)
        )
    np.testing.assert_array_equal(prepared.members([1]).oracle, prepared.oracle[1:])

    class Stop(Exception):
        pass

    seen = {}

    def fit(task, **_):
        seen["transition"] = task.transition
        raise Stop

    monkeypatch.setattr(engine, "fit", fit)
    with pytest.raises(Stop):
        run(prepared)
    np.testing.assert_allclose(
        seen["transition"].numpy(), prepared.oracle.astype(np.float32)
    )


def test_estimated_t_is_scored_against_each_draws_t(digits, monkeypatch, single_thread):
    """--transition estimated: T̂'s error is measured against the member's own T."""
    import torch

    from noisebench import stages
    from noisebench.experiment import run
    from noisebench.transition import estimation_error

    spec = RunSpec(
        method="backward",
        params={},
        dataset="digits",
        noise=NoiseSpec(kind="instance", rate=0.3),
        train=train_config_for(digits.card, epochs=1, hidden=(16,)),
        seeds=(0, 1),
        transition="estimated",
    )
    prepared = prepare(spec)
    t_hat = torch.eye(K).repeat(2, 1, 1) * 0.9 + 0.01  # what the estimator "found"

    def estimated(prepared, task, device):
        return replace(task, transition=t_hat, transition_source="estimated"), 0.0

    monkeypatch.setattr(stages, "with_estimated_transition", estimated)
    records = run(prepared)
    truth = estimation_error(t_hat, torch.as_tensor(prepared.oracle))
    assert [r["transition_error"] for r in records] == pytest.approx(truth.tolist())
    assert records[0]["transition_error"] != records[1]["transition_error"]


def test_the_mode_is_per_sample():
    assert NoiseSpec(kind="instance", rate=0.2).mode == "random"
    assert NoiseSpec(kind="instance", rate=0.2, mode="exact").mode == "random"
    with pytest.raises(UserError, match="unknown noise mode 'exakt'"):
        NoiseSpec(kind="instance", rate=0.2, mode="exakt")


@pytest.mark.parametrize(
    ("rate", "allow", "message"),
    [
        (1.0, True, r"must lie in \[0, 1\), got 1"),
        (-0.1, False, r"must lie in \[0, 1\), got -0.1"),
        (float("nan"), False, r"must lie in \[0, 1\), got nan"),
        (0.5, False, "pass --allow-unidentifiable"),
    ],
)
def test_rates_out_of_range_are_refused(rate, allow, message):
    spec = NoiseSpec(kind="instance", rate=rate, allow_unidentifiable=allow)
    with pytest.raises(UserError, match=message):
        spec.matrix(K)


def test_high_rates_run_when_allowed():
    spec = NoiseSpec(kind="instance", rate=0.6, allow_unidentifiable=True)
    assert np.diag(spec.matrix(K)) == pytest.approx(1 - mean_flip_rate(0.6))


def test_evaluate_records_instance_noise(digits, tmp_path, single_thread):
    store = tmp_path / "store"
    result = invoke(
        *("evaluate", "--method", "ce", "--noise-type", "instance", "--noise", "0.4"),
        *("--epochs", "1", "--seeds", "2", "--hidden", "32"),
        *("--store", str(store), "--json"),
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["spec"]["noise"]["kind"] == "instance"
    assert out["spec"]["noise"]["mode"] == "random"
    from noisebench.store import read_records

    rows = sorted(read_records(store).to_pylist(), key=lambda r: r["seed"])
    assert [r["status"] for r in rows] == ["ok", "ok"]
    spec, t, _ = NoiseSpec(kind="instance", rate=0.4).realize(digits)
    for row in rows:
        assert (row["noise_type"], row["noise_mode"]) == ("instance", "random")
        assert row["noise_rate"] == 0.4
        assert row["transition_sha"] == matrix_sha(expected_transition(K, 0.4))
        draw = draw_member(digits, spec, t, row["noise_seed"], 0.1)
        counts = confusion(digits.y, draw.noisy, K)
        assert row["realized_rate"] == realized_rate(digits.y, draw.noisy)
        assert np.array_equal(np.reshape(row["confusion"], (K, K)), counts)
        assert row["realized_rate"] == pytest.approx(
            1 - np.trace(counts) / counts.sum()
        )
    assert rows[0]["realized_rate"] != rows[1]["realized_rate"]


def test_noise_show_and_export(digits, tmp_path):
    args = ("--noise-type", "instance", "--noise", "0.3", "--noise-seed", "2")
    result = invoke("noise", "show", *args, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    spec, t, _ = NoiseSpec(kind="instance", rate=0.3).realize(digits)
    draw = draw_member(digits, spec, t, 2, 0.1)
    np.testing.assert_allclose(out["nominal"], expected_transition(K, 0.3))
    np.testing.assert_allclose(out["draw"], draw.transition)
    assert out["realized_rate"] == realized_rate(digits.y, draw.noisy)
    text = invoke("noise", "show", *args).stdout
    assert "expected T" in text and "this draw's T" in text and "realized T" in text

    path = tmp_path / "idn.npz"
    assert invoke("noise", "export", *args, "--out", str(path)).exit_code == 0
    with np.load(path) as f:
        np.testing.assert_array_equal(f["noisy"], draw.noisy)
        np.testing.assert_array_equal(f["val_idx"], draw.val)
        np.testing.assert_array_equal(f["rows"], draw.rows)
        np.testing.assert_array_equal(f["transition"], draw.transition)
        meta = json.loads(str(f["spec"]))
    assert meta["noise"]["kind"] == "instance" and meta["instance"]["std"] == STD


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--noise", "1"], "instance noise rate must lie in [0, 1), got 1"),
        (["--noise", "1.5"], "--noise must lie in [0, 1], got 1.5"),
        (["--noise", "0.5"], "pass --allow-unidentifiable"),
        (["--noise", "0.2", "--noise-mode", "exact"], "--noise-mode exact does not"),
        (["--noise", "0.2", "--noise-mode", "exakt"], "unknown noise mode 'exakt'"),
    ],
)
def test_bad_input_is_one_line_and_no_records(tmp_path, args, message):
    store = tmp_path / "store"
    result = invoke(
        *("evaluate", "--method", "forward", "--noise-type", "instance", *args),
        *("--epochs", "1", "--store", str(store)),
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert not store.exists()


def test_the_generator_does_not_import_torch():
    code = (
        "import sys, types, numpy as np\n"
        "from noisebench.instance import instance_noise\n"
        "from noisebench.noise import NoiseSpec\n"
        "ds = types.SimpleNamespace(x=np.eye(4, dtype=np.float32), y=np.arange(4) % 2,\n"
        "    num_classes=2, mean=None, card=types.SimpleNamespace(standardize=True))\n"
        "noisy, rows = instance_noise(ds, 0.3, seed=0)\n"
        "assert NoiseSpec(kind='instance', rate=0.3).matrix(2).shape == (2, 2)\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_the_generator_version_is_part_of_the_configuration(digits, monkeypatch):
    """A changed generator makes a new configuration; other noise types keep their hash."""
    from noisebench.records import config_hash

    def hash_of(kind: str) -> str:
        spec = RunSpec(
            method="ce",
            params={},
            dataset="digits",
            noise=NoiseSpec(kind=kind, rate=0.3),
            train=train_config_for(digits.card, epochs=1),
            seeds=(0,),
        )
        return config_hash(prepare(spec))

    before = {kind: hash_of(kind) for kind in ("instance", "symmetric")}
    monkeypatch.setattr(instance, "GENERATOR", "xia2020-v2-std0.1")
    assert hash_of("instance") != before["instance"]
    assert hash_of("symmetric") == before["symmetric"]
