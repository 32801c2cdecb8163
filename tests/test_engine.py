"""The shared engine: members of a stacked ensemble are independent runs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from noisebench import get_method
from noisebench.engine import TrainConfig, fit
from noisebench.models import build_model
from noisebench.registry import Method
from noisebench.testing import blobs_task

CONFIG = TrainConfig(hidden=(16, 16), epochs=4, batch_size=32, lr=3e-3)


def _fit(method, seeds, config=CONFIG, params=None):
    task = blobs_task(num_classes=3, noise=0.3, method=method, seeds=seeds, n=400)
    return fit(task, method=method, params=params or method.defaults, config=config)


@pytest.mark.parametrize("name", ["ls", "flip", "forward"])
def test_a_seed_does_not_depend_on_its_ensemble_mates(name):
    method = get_method(name)
    together = _fit(method, seeds=(3, 5, 8))
    alone = _fit(method, seeds=(5,))
    torch.testing.assert_close(
        together.test_logits[1], alone.test_logits[0], rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(
        together.pool_logits[1], alone.pool_logits[0], rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(together.val_acc[1], alone.val_acc[0])


def test_stacked_mlp_matches_nn_linear_stack_per_member():
    model = build_model(
        "mlp", input_shape=(5,), hidden=(7,), num_classes=3, seeds=[0, 1]
    )
    x = torch.randn(2, 4, 5)
    out = model(x)
    for s in range(2):
        w1, b1 = model.weights[0][s], model.biases[0][s]
        w2, b2 = model.weights[1][s], model.biases[1][s]
        ref = F.linear(torch.relu(F.linear(x[s], w1.T, b1[0])), w2[:, :3].T, b2[0, :3])
        torch.testing.assert_close(out[s], ref)
        # the output layer is zero-padded to 16 columns, which the forward slices off
        assert w2.shape == (7, 16) and not w2[:, 3:].any() and not b2[:, 3:].any()
    # a shared (B, D) input broadcasts to every member
    torch.testing.assert_close(
        model(x[0])[1], model(x[0][None].expand(2, 4, 5).contiguous())[1]
    )


def test_init_matches_nn_linear_distribution():
    model = build_model(
        "mlp", input_shape=(400,), hidden=(300,), num_classes=2, seeds=[0]
    )
    w = model.weights[0][0]
    bound = 1 / 400**0.5
    assert w.abs().max() <= bound
    # U(-b, b) has variance b^2/3; 120,000 draws give a relative standard error of ~0.3%
    assert abs(w.var().item() / (bound**2 / 3) - 1) < 0.02
    seeds_01 = build_model(
        "mlp", input_shape=(4,), hidden=(3,), num_classes=2, seeds=[0, 1]
    )
    seed_1 = build_model("mlp", input_shape=(4,), hidden=(3,), num_classes=2, seeds=[1])
    assert torch.equal(seeds_01.weights[0][1], seed_1.weights[0][0])


def unregistered(fn) -> Method:
    """A method object for one test, kept out of the global registry."""
    return Method(
        name="test_only",
        fn=fn,
        search_space={},
        defaults={},
        neutral=None,
        bounds={},
        requires=(),
        paper="",
        version=1,
        summary="test",
    )


def _divergent_method() -> Method:
    """CE that turns NaN from epoch 2 on in members with an even seed."""

    def loss(logits, labels, ctx):
        value = F.cross_entropy(logits.float(), labels)
        even = ctx.generator.initial_seed() % 2 == 0
        return value * torch.nan if even and ctx.epoch >= 2 else value

    return unregistered(loss)


def test_divergence_is_recorded_per_member_and_spares_the_others():
    method = _divergent_method()
    together = _fit(method, seeds=tuple(range(6)))
    assert together.diverged_at.tolist() == [2, -1, 2, -1, 2, -1]
    healthy = 3
    alone = _fit(method, seeds=(healthy,))
    assert int(alone.diverged_at[0]) == -1
    torch.testing.assert_close(
        together.test_logits[healthy], alone.test_logits[0], rtol=1e-4, atol=1e-5
    )


def test_training_stops_when_every_member_diverged():
    def always_nan(logits, labels, ctx):
        return F.cross_entropy(logits.float(), labels) * torch.nan

    method = unregistered(always_nan)
    result = _fit(method, seeds=(0, 1))
    assert (result.diverged_at == 0).all()
    assert torch.isnan(result.val_acc[:, 1:]).all()


def test_warmup_trains_with_cross_entropy_first():
    gls = get_method("gls")
    config = TrainConfig(hidden=(16,), epochs=4, batch_size=32, lr=3e-3, warmup=0.5)
    warm = _fit(gls, seeds=(0,), config=config, params={"smooth_rate": -0.8})
    ce_only = _fit(get_method("ce"), seeds=(0,), config=config)
    # the first two epochs are plain CE, so the curves agree there and (generally) not after
    torch.testing.assert_close(warm.val_acc[0, :2], ce_only.val_acc[0, :2])
    assert not torch.equal(warm.test_logits, ce_only.test_logits)


def test_a_ce_warmup_epoch_is_never_the_selected_one():
    """A method that learns the wrong class after a CE warm-up: noisy-validation
    accuracy peaks during the warm-up, yet the selected epoch is one it trained."""

    def wrong_class(logits, labels, ctx):
        return F.cross_entropy(logits.float(), (labels + 1) % ctx.num_classes)

    config = TrainConfig(hidden=(16,), epochs=6, batch_size=32, lr=3e-2, warmup=0.5)
    result = _fit(unregistered(wrong_class), seeds=(0, 1, 2), config=config)
    val = result.val_acc
    assert (val[:, :3].amax(1) > val[:, 3:].amax(1)).all()  # the rule matters here
    assert (result.best_epoch >= 3).all()
    picked = val.gather(1, result.best_epoch.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(picked, val[:, 3:].amax(1))


def test_learns_on_clean_blobs():
    ce = get_method("ce")
    task = blobs_task(num_classes=3, noise=0.0, method=ce, seeds=(0,), n=400)
    result = fit(
        task, method=ce, params={}, config=TrainConfig(hidden=(16,), epochs=10, lr=1e-2)
    )
    assert (result.test_logits[0].argmax(-1) == task.y_test).float().mean() > 0.95


def test_chunks_of_members_give_the_same_runs(monkeypatch):
    from noisebench import engine

    ls = get_method("ls")
    task = blobs_task(num_classes=3, noise=0.3, method=ls, seeds=(0, 1, 2, 3, 4), n=400)
    whole = fit(task, method=ls, params=ls.defaults, config=CONFIG)
    # a memory budget of two members' worth makes the engine train in chunks of two
    budget = 2 * engine.bytes_per_member(task, CONFIG) + 1
    monkeypatch.setattr(engine, "available_bytes", lambda device: budget)
    calls = []
    chunked = fit(
        task,
        method=ls,
        params=ls.defaults,
        config=CONFIG,
        on_epoch=lambda e, v: calls.append(len(v)),
    )
    assert calls == [2] * CONFIG.epochs + [2] * CONFIG.epochs + [1] * CONFIG.epochs
    torch.testing.assert_close(
        chunked.test_logits, whole.test_logits, rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(chunked.val_acc, whole.val_acc)


@pytest.mark.parametrize("name", ["ce", "ls", "gls", "forward", "backward"])
def test_vmapped_losses_equal_the_member_by_member_loop(name):
    from noisebench.engine import MemberLosses
    from noisebench.registry import Context
    from noisebench.testing import transition_for

    method = get_method(name)
    logits = torch.randn(4, 16, 10, requires_grad=True)
    labels = torch.randint(10, (4, 16))
    contexts = [
        Context(num_classes=10, transition=transition_for(method, 10)) for _ in range(4)
    ]
    batched = MemberLosses(method, method.defaults)
    values, _ = batched(logits, labels, contexts)
    assert batched.batched is True
    reference = torch.stack(
        [method(logits[s], labels[s], contexts[s], **method.defaults) for s in range(4)]
    )
    torch.testing.assert_close(values, reference)


def test_methods_that_draw_random_numbers_run_member_by_member():
    from noisebench.engine import MemberLosses
    from noisebench.registry import Context

    flip = get_method("flip")
    losses = MemberLosses(flip, {"rate": 0.5})
    logits, labels = torch.randn(3, 64, 10), torch.randint(10, (3, 64))
    contexts = [
        Context(num_classes=10, generator=torch.Generator().manual_seed(s))
        for s in range(3)
    ]
    values, _ = losses(logits, labels, contexts)
    assert losses.batched is False
    again = [
        Context(num_classes=10, generator=torch.Generator().manual_seed(s))
        for s in range(3)
    ]
    for s in range(3):  # member s used generator s, and only it
        assert values[s] == flip(logits[s], labels[s], again[s], rate=0.5)


def test_without_a_test_set_nothing_is_scored_on_it():
    ce = get_method("ce")
    task = blobs_task(num_classes=3, noise=0.2, method=ce, seeds=(0,), n=200)
    task.x_test, task.y_test = None, None
    result = fit(task, method=ce, params={}, config=CONFIG)
    assert (
        torch.isnan(result.test_acc_at_best_val).all()
        and result.test_logits.numel() == 0
    )
    assert not torch.isnan(result.val_acc).any()


@pytest.mark.parametrize("precision", ["float32", "bf16 autocast"])
def test_best_val_snapshot_is_the_model_of_that_epoch(monkeypatch, precision):
    """Retraining for exactly best_epoch + 1 epochs reproduces the snapshot's test score.

    Under autocast too (the CUDA path, run on the CPU): autocast caches its bf16 copies
    of the weights until its context exits, so a model restored inside the context that
    scored the final model was scored with the final weights. On an H200 that made
    every 'best noisy-validation' accuracy the last epoch's (69.5% instead of 92%).
    """
    from noisebench import engine

    if precision != "float32":
        monkeypatch.setattr(
            engine,
            "mixed_precision",
            lambda device: torch.autocast("cpu", dtype=torch.bfloat16),
        )
    ce = get_method("ce")
    task = blobs_task(num_classes=4, noise=0.4, method=ce, seeds=(0, 1, 2), n=400)
    config = TrainConfig(hidden=(16,), epochs=12, batch_size=32, lr=1e-2)
    result = fit(task, method=ce, params={}, config=config)
    val = result.val_acc
    assert torch.equal(result.best_epoch, val.argmax(1))  # first epoch of the maximum
    for s in range(3):
        epochs = int(result.best_epoch[s]) + 1
        short = fit(
            task.members(slice(s, s + 1)),
            method=ce,
            params={},
            config=replace(config, epochs=epochs),
        )
        acc = (short.test_logits[0].argmax(-1) == task.y_test).float().mean()
        assert result.test_acc_at_best_val[s] == acc


def test_mixed_precision_forward_still_gives_the_loss_float32_logits(monkeypatch):
    """The CUDA path (bf16 autocast) exercised on the CPU, where autocast also exists."""
    from noisebench import engine

    seen = []

    def spy(logits, labels, ctx):
        seen.append(logits.dtype)
        return F.cross_entropy(logits, labels)  # no .float() of its own

    method = unregistered(spy)
    exact = _fit(method, seeds=(0, 1))
    monkeypatch.setattr(
        engine,
        "mixed_precision",
        lambda device: torch.autocast("cpu", dtype=torch.bfloat16),
    )
    seen.clear()
    mixed = _fit(method, seeds=(0, 1))
    assert seen and set(seen) == {torch.float32}
    # the forward did run in bf16 (the logits moved, by bf16's relative precision of
    # 2^-8 compounded over 4 epochs), and the two models still agree on nearly every
    # prediction
    assert not torch.equal(mixed.pool_logits, exact.pool_logits)
    scale = exact.pool_logits.abs().max()
    assert (mixed.pool_logits - exact.pool_logits).abs().max() < 0.1 * scale
    agree = mixed.pool_logits.argmax(-1) == exact.pool_logits.argmax(-1)
    assert agree.float().mean() > 0.95


def test_divergence_through_non_finite_weights_is_caught():
    """A loss that is finite while it makes a member's weights non-finite (an infinite
    gradient) still marks that member diverged, and only that member."""

    def poison(logits, labels, ctx):
        ce = torch.nn.functional.cross_entropy(logits.float(), labels)
        if ctx.generator.initial_seed() != 5:
            return ce
        # value 0, gradient inf: sqrt'(0)
        return ce + (logits.float() - logits.float().detach()).abs().sqrt().sum()

    method = unregistered(poison)
    task = blobs_task(num_classes=3, noise=0.2, method=method, seeds=(4, 5, 6), n=200)
    # one step in one epoch: the loss is finite throughout, only the weights tell
    config = TrainConfig(hidden=(8,), epochs=1, batch_size=1024, lr=1e-2)
    result = fit(task, method=method, params={}, config=config)
    assert result.diverged_at.tolist() == [-1, 0, -1]
    assert torch.isfinite(result.test_logits[[0, 2]]).all()


@pytest.mark.parametrize("schedule", ["step", "cosine", "onecycle"])
def test_every_step_runs_at_the_scheduled_learning_rate(monkeypatch, schedule):
    """The engine sets the schedule's rate before each optimizer step, counting steps
    as the schedule does (a ragged last batch included)."""
    from noisebench import optim

    seen: list[float] = []
    original = optim.SGD.step

    def recording_step(self):
        seen.append(self.lr)
        original(self)

    monkeypatch.setattr(optim.SGD, "step", recording_step)
    config = replace(
        CONFIG,
        optimizer="sgd",
        nesterov=True,
        lr=0.1,
        epochs=4,
        schedule=schedule,
        milestones=(2, 3) if schedule == "step" else (),
    )
    task = blobs_task(
        num_classes=3, noise=0.0, method=get_method("ce"), seeds=(0,), n=400
    )
    fit(task, method=get_method("ce"), params={}, config=config)
    per_epoch = -(-task.train_idx.shape[1] // config.batch_size)
    assert task.train_idx.shape[1] % config.batch_size  # a ragged last batch
    expected = optim.lr_schedule(config, steps_per_epoch=per_epoch)
    assert seen == [expected(t) for t in range(config.epochs * per_epoch)]
    if schedule == "step":  # 0.1 for two epochs, then 0.01, then 0.001
        assert seen[0] == 0.1 and seen[-1] == pytest.approx(1e-3)


def test_the_best_models_pool_logits_only_when_asked():
    """Only the transition estimator reads them: a plain run skips that pass over the
    pool, and asking for them changes nothing else."""
    method = get_method("ce")
    plain = _fit(method, seeds=(1, 2))
    task = blobs_task(num_classes=3, noise=0.3, method=method, seeds=(1, 2), n=400)
    asked = fit(task, method=method, params={}, config=CONFIG, best_pool=True)
    assert plain.best_pool_logits.shape == (2, 0, 3)
    assert asked.best_pool_logits.shape == asked.pool_logits.shape
    torch.testing.assert_close(plain.pool_logits, asked.pool_logits)
    torch.testing.assert_close(plain.test_logits, asked.test_logits)


def test_memorization_curves_of_a_frozen_model_equal_its_final_memorization():
    """With a loss whose gradient is zero (Adam then moves nothing), every epoch's
    training forward passes see the final model, so each epoch's curve value is the
    memorization of the final pool logits, computed independently by `metrics`."""
    from noisebench.metrics import memorization

    frozen = unregistered(lambda logits, labels, ctx: 0.0 * logits.sum())
    task = blobs_task(num_classes=3, noise=0.4, method=frozen, seeds=(1, 2), n=400)
    result = fit(task, method=frozen, params={}, config=CONFIG)
    assert result.mem_noisy.shape == result.mem_clean.shape == (2, CONFIG.epochs)
    for s in range(2):
        train = task.train_idx[s]
        expected = memorization(
            result.pool_logits[s][train].argmax(-1),
            task.y_noisy[s][train],
            task.y_clean[train],
        )
        for epoch in range(CONFIG.epochs):
            got = (float(result.mem_noisy[s, epoch]), float(result.mem_clean[s, epoch]))
            assert got == pytest.approx(expected, abs=1e-6)


def test_memorization_curves_track_learning_and_need_clean_labels():
    method = get_method("ce")
    config = replace(CONFIG, epochs=30)
    task = blobs_task(num_classes=3, noise=0.4, method=method, seeds=(1,), n=400)
    curves = fit(task, method=method, params={}, config=config)
    # blobs are separable: early epochs fit the clean label of most corrupted samples
    assert float(curves.mem_clean[0, 1]) > 0.5 > float(curves.mem_noisy[0, 1])
    blind = fit(replace(task, y_clean=None), method=method, params={}, config=config)
    assert blind.mem_noisy.isnan().all() and blind.mem_clean.isnan().all()
    torch.testing.assert_close(blind.pool_logits, curves.pool_logits)


# --------------------------------------------------------------------------- distillation
def _one_hot_teacher(task, **kwargs):
    from noisebench.engine import Teacher

    probs = F.one_hot(task.y_noisy, task.num_classes).float()
    return Teacher(probs=probs, **kwargs)


def test_a_teacher_equal_to_the_labels_distills_the_hard_label_student():
    """KL(onehot(y) ‖ p) = -log p_y: at T = 1 and alpha = 1 the student is the CE model."""
    ce = get_method("ce")
    task = blobs_task(num_classes=3, noise=0.3, method=ce, seeds=(1, 2), n=400)
    hard = fit(task, method=ce, params={}, config=CONFIG)
    taught = replace(task, teacher=_one_hot_teacher(task))
    soft = fit(taught, method=ce, params={}, config=CONFIG)
    torch.testing.assert_close(soft.pool_logits, hard.pool_logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(soft.val_acc, hard.val_acc)


def test_alpha_zero_is_the_method_alone_and_members_stay_apart():
    ls = get_method("ls")
    task = blobs_task(num_classes=3, noise=0.3, method=ls, seeds=(1, 2, 3), n=400)
    alone = fit(task, method=ls, params={"smoothing": 0.2}, config=CONFIG)
    off = replace(task, teacher=_one_hot_teacher(task, temperature=3.0, alpha=0.0))
    mixed = fit(off, method=ls, params={"smoothing": 0.2}, config=CONFIG)
    torch.testing.assert_close(
        mixed.pool_logits, alone.pool_logits, rtol=1e-4, atol=1e-5
    )
    # chunks of one member slice each member's own soft targets
    half = replace(task, teacher=_one_hot_teacher(task, temperature=2.0, alpha=0.5))
    together = fit(half, method=ls, params={"smoothing": 0.2}, config=CONFIG)
    chunked = fit(
        half, method=ls, params={"smoothing": 0.2}, config=CONFIG, max_members=1
    )
    torch.testing.assert_close(
        chunked.pool_logits, together.pool_logits, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_the_soft_term_is_t_squared_times_torch_kl_div(temperature):
    from noisebench.engine import Teacher

    g = torch.Generator().manual_seed(0)
    teacher_logits = torch.randn(2, 50, 5, generator=g) * 3
    probs = (teacher_logits / temperature).softmax(-1)
    logits = torch.randn(2, 8, 5, generator=g)
    idx = torch.randint(50, (2, 8), generator=g)
    got = Teacher(probs, temperature=temperature).loss(logits, idx)
    for s in range(2):
        want = F.kl_div(
            (logits[s] / temperature).log_softmax(-1),
            probs[s, idx[s]],
            reduction="batchmean",
        )
        assert float(got[s]) == pytest.approx(float(want) * temperature**2, rel=1e-5)


def test_the_final_models_features_and_last_layer_give_its_logits():
    ls = get_method("ls")
    task = blobs_task(num_classes=3, noise=0.3, method=ls, seeds=(1, 2), n=400)
    plain = fit(task, method=ls, params={"smoothing": 0.1}, config=CONFIG)
    asked = fit(
        task, method=ls, params={"smoothing": 0.1}, config=CONFIG, features=True
    )
    assert plain.pool_features.numel() == 0
    n = task.x.shape[0]
    assert asked.pool_features.shape == (2, n, CONFIG.hidden[-1])
    logits = asked.pool_features @ asked.classifier_weight.transpose(1, 2)
    logits = logits + asked.classifier_bias.unsqueeze(1)
    torch.testing.assert_close(logits, asked.pool_logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        asked.pool_logits, plain.pool_logits
    )  # nothing else moves
