"""Deferred loss reads (the mode the Session uses on CUDA), exercised on the CPU.

On CUDA every `.item()` stalls the GPU queue, so the loop reads losses once per logging interval
and a non-finite loss is refused on the device (the fused optimizer's `found_inf`). These tests
force that mode here and check it trains exactly like the eager mode, reads nothing per batch,
and still keeps the last good step when a loss goes non-finite.
"""

from __future__ import annotations

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
