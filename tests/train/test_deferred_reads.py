"""Deferred loss reads (the mode the Session uses on CUDA), exercised on the CPU.

On CUDA every `.item()` stalls the GPU queue, so the loop reads losses once per logging interval
and a non-finite loss is refused on the device (the fused optimizer's `found_inf`). These tests
force that mode here and check it trains exactly like the eager mode, reads nothing per batch,
and still keeps the last good step when a loss goes non-finite.
"""

from __future__ import annotations

import contextlib
import pytest
import torch

import workbench as wb
from workbench.train import loop

from helpers import tiny_cnn, weights


def make(digits, defer: bool, **settings) -> wb.Session:
    options = dict(optimizer="adamw", lr=1e-3, batch_size=16, freeze="full", fast_path=False)
    s = wb.Session(digits, tiny_cnn(), **{**options, **settings})
    s._defer_reads = defer
    return s


def test_deferred_reads_train_exactly_like_eager_reads(digits) -> None:
    eager, deferred = make(digits, False), make(digits, True)
    for a, b in zip(eager.fit(2), deferred.fit(2)):
        assert a.batch_losses == b.batch_losses and a.batches == b.batches == a.num_batches
        assert (a.train_loss, a.train_accuracy, a.valid_loss) == (b.train_loss, b.train_accuracy, b.valid_loss)
    wa, wb_ = weights(eager.model.module), weights(deferred.model.module)
    assert all(torch.equal(wa[k], wb_[k]) for k in wa)
    assert not hasattr(deferred.optimizer, "found_inf")  # the guard leaves the optimizer as it was


def test_deferred_reads_make_no_per_batch_host_read(digits, monkeypatch) -> None:
    reads, checks = [], []
    item, tripped = torch.Tensor.item, loop._DeviceGuard.tripped
    monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append(1) or item(t))
    monkeypatch.setattr(loop._DeviceGuard, "tripped", lambda g: checks.append(1) or tripped(g))
    eager = make(digits, False)
    r = eager.step()
    assert len(reads) >= r.num_batches > 10  # eager: one read per batch (free on the CPU)
    reads.clear()
    deferred = make(digits, True)
    events = []
    deferred.on("batch_end", events.append)
    r = deferred.step()
    assert reads == [] and r.batches == r.num_batches
    assert len(checks) <= len(events) + 1 < r.num_batches  # one check per batch_end event, one at the end


def test_deferred_non_finite_loss_keeps_the_last_good_step(digits) -> None:
    s = make(digits, True, optimizer="sgd", lr=0.05)
    after_step: list[dict[str, torch.Tensor]] = []
    step = s.optimizer.step
    s.optimizer.step = lambda *a, **k: (step(*a, **k), after_step.append(weights(s.model.module)))[0]
    forward, calls = s.model.logits, []

    def nan_at_batch_3(x):
        calls.append(1)
        out = forward(x)
        return out * float("nan") if len(calls) == 3 else out

    s.model.logits = nan_at_batch_3
    with pytest.raises(wb.TrainingError, match="non-finite loss at batch 3/"):
        s.step()
    r = s.history[-1]
    assert r.batches == 2 and len(r.batch_losses) == len(r.batch_lrs) == 2 and s.global_step == 2
    now = weights(s.model.module)
    params = {n for n, _ in s.model.module.named_parameters()}
    # steps after the bad batch ran as no-ops on the device: the parameters are those of step 2
    assert len(after_step) > 2 and all(torch.equal(now[k], after_step[1][k]) for k in params)
    assert all(torch.isfinite(v.float()).all() for v in now.values())
    assert not hasattr(s.optimizer, "found_inf")


def test_rmsprop_has_no_device_skip_so_it_stays_eager(digits) -> None:
    s = make(digits, True, optimizer="rmsprop")
    assert s._deferred_reads() is False and make(digits, True)._deferred_reads() is True


def test_measuring_autocast_picks_the_faster_and_gives_everything_back(digits) -> None:
    """The amp="auto" probe (used on CUDA) times bf16 against float32 for one training step, picks
    the faster, and leaves BatchNorm buffers and gradients as they were."""
    import time

    from workbench.train.placement import measure_autocast

    for slow in ("bf16", "float32"):
        def fake(autocast, slow=slow) -> None:
            is_bf16 = autocast is not contextlib.nullcontext
            time.sleep(0.02 if (slow == "bf16") == is_bf16 else 0.0)

        faster_bf16, note = measure_autocast(fake, torch.device("cpu"), [], [])
        assert faster_bf16 is (slow == "float32") and note.startswith("float32" if slow == "bf16" else "bf16")
    s = make(digits, False)
    module = s.model.module
    module.train()
    x, y = s.pipeline.batch("train", torch.arange(16)), s.pipeline.labels("train")[:16]
    before = weights(module)

    def step(autocast) -> None:
        with autocast():
            loss = torch.nn.functional.cross_entropy(s.model.logits(x), y)
        loss.backward()

    measure_autocast(step, torch.device("cpu"), list(module.buffers()), list(module.parameters()))
    after = weights(module)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in module.parameters())
