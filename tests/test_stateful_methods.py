"""ELR's per-sample state and Co-teaching's pairs: their formulas on hand-checked cases,
and the engine's bookkeeping (rows by sample id, pairs, selection curves, no leaks)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import np_softmax as _softmax
from typer.testing import CliRunner

from noisebench import Context, get_method
from noisebench.cli import app
from noisebench.engine import (
    MemberLosses,
    TrainConfig,
    fit,
    gather_rows,
    scatter_rows,
    swap_pairs,
)
from noisebench.testing import blobs_task, check_state_isolated

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]], dtype=torch.float64)
LABELS = torch.tensor([0, 2])


def _elr_reference(z, y, target, *, lam, beta):
    """ELR's loss and new targets in float64 numpy, from probabilities."""
    p = _softmax(z)
    clamped = np.clip(p, 1e-4, 1 - 1e-4)
    new = beta * target + (1 - beta) * clamped / clamped.sum(-1, keepdims=True)
    ce = -np.log(p[np.arange(len(y)), y]).mean()
    reg = np.log(1 - (new * clamped).sum(-1)).mean()
    return ce + lam * reg, new


def test_elr_first_step_moves_the_zero_target_and_adds_the_regularizer():
    elr = get_method("elr")
    z = LOGITS.float().requires_grad_(True)
    ctx = elr.batch_context(Context(num_classes=3), z)
    assert torch.equal(ctx.state["target"], torch.zeros(2, 3))
    loss, rows = elr.step(z, LABELS, ctx, lam=3.0, beta=0.7)
    ref_loss, ref_target = _elr_reference(
        LOGITS.numpy(), LABELS.numpy(), np.zeros((2, 3)), lam=3.0, beta=0.7
    )
    assert loss.item() == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(rows["target"].numpy(), ref_target, rtol=1e-5)
    assert not rows["target"].requires_grad  # the target is a constant to the loss


def test_elr_target_is_a_running_average_over_visits():
    elr = get_method("elr")
    second = torch.tensor([[0.0, 0.0, 4.0], [1.0, -2.0, 0.5]])
    ctx = elr.batch_context(Context(num_classes=3), LOGITS.float())
    _, rows = elr.step(LOGITS.float(), LABELS, ctx, lam=3.0, beta=0.9)
    loss, rows2 = elr.step(
        second, LABELS, Context(num_classes=3, state=rows), lam=3.0, beta=0.9
    )
    ref_loss, ref_target = _elr_reference(
        second.numpy().astype(np.float64),
        LABELS.numpy(),
        rows["target"].numpy().astype(np.float64),
        lam=3.0,
        beta=0.9,
    )
    np.testing.assert_allclose(rows2["target"].numpy(), ref_target, rtol=1e-5)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-5)
    # each target row stays a distribution scaled by 1 - beta^visits
    np.testing.assert_allclose(rows2["target"].sum(-1).numpy(), 1 - 0.9**2, rtol=1e-5)


def test_elr_regularizer_pulls_the_prediction_towards_the_target():
    """d/dz of log(1 - <t, p>) with t the one-hot of class 1 raises p_1."""
    elr = get_method("elr")
    z = torch.zeros(1, 3, requires_grad=True)
    target = torch.tensor([[0.0, 0.3, 0.0]])
    loss = elr(
        z,
        torch.tensor([0]),
        Context(num_classes=3, state={"target": target}),
        lam=1.0,
        beta=0.7,
    )
    ce_only = F.cross_entropy(z, torch.tensor([0]))
    (g,) = torch.autograd.grad(loss - ce_only, z)
    assert g[0, 1] < 0 < g[0, 0]  # descent raises z_1, lowers the others


def test_coteaching_forget_rate_follows_the_authors_linear_schedule():
    from noisebench.registry import METHODS

    schedule = METHODS.get("coteaching").fn.__globals__["forget_rate_at"]
    tau, tk = 0.3, 10
    expected = np.linspace(0, tau, tk)  # rate_schedule[:num_gradual] in their code
    for epoch in range(tk):
        assert schedule(epoch, forget_rate=tau, tk=tk) == pytest.approx(expected[epoch])
    assert schedule(50, forget_rate=tau, tk=tk) == tau
    assert (
        schedule(0, forget_rate=tau, tk=1) == 0
        and schedule(1, forget_rate=tau, tk=1) == tau
    )


def test_coteaching_trains_on_the_peers_small_loss_samples():
    cot = get_method("coteaching")
    labels = torch.zeros(5, dtype=torch.long)
    margin = torch.tensor([3.0, -1.0, 2.0, 0.0, 1.0])  # the peer's loss falls with it
    peer = torch.stack([margin, torch.zeros(5)], dim=-1)
    own = torch.tensor([[0.5, 0.1], [1.0, 2.0], [-1.0, 0.3], [0.2, 0.2], [2.0, -2.0]])
    # tk = 2: epoch 1 forgets the full 40%, so int(0.6 * 5) = 3 samples are kept
    ctx = Context(
        num_classes=2, epoch=1, state={"selected": torch.zeros(5)}, peer_logits=peer
    )
    loss, rows = cot.step(own, labels, ctx, forget_rate=0.4, tk=2)
    assert rows["selected"].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
    expected = F.cross_entropy(own[[0, 2, 4]], labels[[0, 2, 4]])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # the network's own losses play no part in its selection
    _, again = cot.step(own * -5, labels, ctx, forget_rate=0.4, tk=2)
    assert torch.equal(again["selected"], rows["selected"])


def test_coteaching_keeps_at_least_one_sample_of_a_batch():
    cot = get_method("coteaching")
    z = torch.randn(1, 4)
    ctx = Context(
        num_classes=4, epoch=9, state={"selected": torch.zeros(1)}, peer_logits=z
    )
    loss, rows = cot.step(z, torch.tensor([2]), ctx, forget_rate=0.8, tk=10)
    assert rows["selected"].tolist() == [1.0] and math.isfinite(loss.item())


def test_rows_are_gathered_and_written_back_by_sample_id():
    g = torch.Generator().manual_seed(0)
    for shape in ((3, 10), (3, 10, 4)):
        state = torch.randn(*shape, generator=g)
        idx = torch.stack([torch.randperm(10, generator=g)[:5] for _ in range(3)])
        rows = gather_rows(state, idx)
        for s in range(3):
            assert torch.equal(rows[s], state[s, idx[s]])
        new = torch.randn(rows.shape, generator=g)
        before = state.clone()
        scatter_rows(state, idx, new)
        for s in range(3):
            assert torch.equal(state[s, idx[s]], new[s])
            untouched = torch.ones(10, dtype=torch.bool)
            untouched[idx[s]] = False
            assert torch.equal(state[s, untouched], before[s, untouched])


def test_each_member_sees_its_pair_partners_logits():
    logits = torch.arange(4.0).view(4, 1, 1).expand(4, 2, 3)
    assert swap_pairs(logits)[:, 0, 0].tolist() == [1.0, 0.0, 3.0, 2.0]


@pytest.mark.parametrize("name", ["elr", "coteaching"])
def test_vmapped_steps_equal_the_member_by_member_loop(name):
    method = get_method(name)
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 16, 5, generator=g)
    labels = torch.randint(5, (4, 16), generator=g)
    contexts = [Context(num_classes=5, epoch=3) for _ in range(4)]
    rows = {
        k: spec.initial(4, 16, num_classes=5)
        + torch.rand(4, 16, *([5] * spec.classes)) * 0.1
        for k, spec in method.state.items()
    }
    peers = swap_pairs(logits) if method.paired else None
    batched = MemberLosses(method, method.defaults)
    values, new_rows = batched(logits, labels, contexts, rows, peers)
    assert batched.batched is True
    for s in range(4):
        ctx = Context(
            num_classes=5,
            epoch=3,
            state={k: v[s] for k, v in rows.items()},
            peer_logits=None if peers is None else peers[s],
        )
        loss, ref_rows = method.step(logits[s], labels[s], ctx, **method.defaults)
        torch.testing.assert_close(values[s], loss)
        for k in rows:
            torch.testing.assert_close(new_rows[k][s], ref_rows[k])


CONFIG = TrainConfig(hidden=(16,), epochs=4, batch_size=64, lr=3e-3)


def test_the_first_network_of_a_pair_at_forget_rate_zero_is_the_ce_network():
    """The peer (another initialization) changes nothing when nothing is forgotten."""
    cot = get_method("coteaching")
    task = blobs_task(num_classes=4, noise=0.3, method=cot, seeds=(0, 1))
    paired = fit(task, method=cot, params={"forget_rate": 0.0, "tk": 2}, config=CONFIG)
    ce = fit(task, method=get_method("ce"), params={}, config=CONFIG)
    assert paired.pool_logits.shape == ce.pool_logits.shape  # one record per seed
    torch.testing.assert_close(paired.pool_logits, ce.pool_logits, rtol=1e-4, atol=1e-5)
    # the peer does start elsewhere: twins and the default pair differ once it forgets
    forgetting = {"forget_rate": 0.5, "tk": 2}
    apart = fit(task, method=cot, params=forgetting, config=CONFIG)
    twins = fit(
        task.paired(same_init=True), method=cot, params=forgetting, config=CONFIG
    )
    assert not torch.allclose(apart.pool_logits, twins.pool_logits)


def test_selection_curves_count_the_selected_and_their_clean_labels():
    cot = get_method("coteaching")
    task = blobs_task(num_classes=4, noise=0.3, method=cot, seeds=(0, 1))
    tau, tk = 0.5, 3
    result = fit(task, method=cot, params={"forget_rate": tau, "tk": tk}, config=CONFIG)
    n_train = task.train_idx.shape[1]
    sizes = [min(64, n_train - lo) for lo in range(0, n_train, 64)]
    for epoch in range(CONFIG.epochs):
        rate = tau * min(epoch / (tk - 1), 1)
        kept = sum(max(1, int((1 - rate) * b)) for b in sizes)
        assert result.selected[:, epoch].tolist() == pytest.approx([kept / n_train] * 2)
    # epoch 0 selects everything: its label precision is the training labels' own
    clean = task.y_noisy.gather(1, task.train_idx) == task.y_clean[task.train_idx]
    assert result.selected_clean[:, 0].tolist() == pytest.approx(
        clean.float().mean(1).tolist()
    )
    assert ((result.selected_clean >= 0) & (result.selected_clean <= 1)).all()
    # a method that selects nothing records no curve
    plain = fit(
        task, method=get_method("elr"), params={"lam": 3.0, "beta": 0.7}, config=CONFIG
    )
    assert plain.selected.isnan().all() and plain.selected_clean.isnan().all()


def test_the_contract_catches_state_that_leaks_across_seeds(monkeypatch):
    from noisebench import engine

    original = engine.gather_rows

    def leaking(state, idx):  # every member reads the last member's rows
        return original(state[-1:].expand_as(state).contiguous(), idx)

    monkeypatch.setattr(engine, "gather_rows", leaking)
    with pytest.raises(AssertionError, match="leak across seeds"):
        check_state_isolated(get_method("elr"))


def test_the_contract_catches_peers_from_another_seed(monkeypatch):
    from noisebench import engine

    monkeypatch.setattr(engine, "swap_pairs", lambda z: z.roll(1, dims=0))
    with pytest.raises(AssertionError, match="leak across seeds"):
        check_state_isolated(get_method("coteaching"))


def test_coteaching_from_the_cli_records_its_selection_curves(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--method",
            "coteaching",
            "--noise",
            "0.4",
            "--epochs",
            "2",
            "--seeds",
            "2",
            "--param",
            "tk=2",
            "--store",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    from noisebench.store import read_records

    rows = read_records(tmp_path).to_pylist()
    assert len(runs) == 2 and len(rows) == 2
    for row in rows:
        assert row["selected_curve"][0] == pytest.approx(1.0)  # epoch 0 forgets none
        assert 0.78 < row["selected_curve"][1] <= 0.8  # 20% forgotten at epoch 1
        assert 0 < row["selected_clean_curve"][1] <= 1


def test_a_ce_warm_up_records_no_selection():
    """During the warm-up every sample trains with CE: no selection to count."""
    from dataclasses import replace

    cot = get_method("coteaching")
    task = blobs_task(num_classes=4, noise=0.3, method=cot, seeds=(0,))
    config = replace(CONFIG, warmup=0.5)  # 2 of 4 epochs
    result = fit(task, method=cot, params={"forget_rate": 0.5, "tk": 1}, config=config)
    assert result.selected[0, :2].isnan().all()
    assert result.selected[0, 2:].tolist() == pytest.approx([0.5] * 2, abs=0.02)


def test_the_memory_estimate_counts_the_state():
    from noisebench.engine import state_bytes

    task = blobs_task(num_classes=4, noise=0.3, method=get_method("ce"), seeds=(0,))
    n = task.x.shape[0]
    assert state_bytes(get_method("ce"), task) == 0
    assert state_bytes(get_method("elr"), task) == 4 * n * 4  # (N, K) float32
    assert state_bytes(get_method("coteaching"), task) == 4 * n  # (N,) float32
