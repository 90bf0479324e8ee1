"""A hand-written PyTorch fine-tuning epoch: the baseline the benchmarks compare the Session with.

It borrows only the data tensors the Session already built (resized uint8 pixels, token ids),
so both sides start from the same bytes; everything per batch is plain torch.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

import workbench as wb
from workbench.data.transforms import batch_order
from workbench.train import freezing
from workbench.train.precondition import HeadPreconditioner


class PlainLoop:
    """One epoch of training then a valid pass, as a person would write it.

    channels_last: memory layout for images; pad_to: pad every text batch to this length
    (None = to the longest in the batch, with length-bucketed batches); use_cache: head-only
    trains on the session's cached features (else it runs the frozen backbone every batch);
    fused: torch's fused AdamW kernel, as the Session uses (False: torch's default, a per-tensor
    loop on the CPU, as a person writes it); bucket: text batches of similar lengths, as the
    Session's (None: only when padding to the longest in the batch, where it saves work);
    eval_batch: the batch size of the valid pass; amp: the Session's mixed precision (bf16 autocast
    on CUDA, nothing on the CPU), for a like-for-like comparison (False: float32, as a person writes it);
    precondition: head-only on cached features, the Session's head preconditioner (workbench/train/
    precondition.py), for a like-for-like comparison (False: the plain gradient, as a person writes it).
    """

    def __init__(self, session: wb.Session, model: wb.Model, *, channels_last: bool = True,
                 pad_to: int | None = None, use_cache: bool = True, fused: bool = False,
                 bucket: bool | None = None, eval_batch: int = 256, amp: bool = False,
                 precondition: bool = False) -> None:
        self.session, self.model = session, model
        c = session.config
        self.trainable = [b.name for b in session.model.blocks if b.trainable]
        self.head_only = self.trainable == ["head"]
        self.cached = self.head_only and use_cache
        self.pad_to, self.channels_last = pad_to, channels_last and model.kind == "image"
        self.bucket = (pad_to is None) if bucket is None else bucket
        self.eval_batch = eval_batch
        freezing.apply_freeze(model, self.trainable)
        model.module.to(session.device, memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        lr = session._lr()  # the Session's base LR for this path (its lr=None means automatic)
        groups = freezing.param_groups(model, lr, c.lr_decay, blocks=self.trainable)
        self.opt = torch.optim.AdamW(groups, lr=lr, fused=True if fused else None)
        self.batch_size = c.batch_size
        p = session.pipeline
        self.data = {s: p.batcher(s) for s in ("train", "valid")}
        self.labels = {s: p.labels(s) for s in ("train", "valid")}
        self.feats = {s: session._features(s) for s in ("train", "valid")} if self.cached else None
        self.precondition = (HeadPreconditioner.for_head(model.head, self.feats["train"])
                             if precondition and self.cached else None)
        self.device = session.device
        self.autocast = session.placement.mixed_precision(session.config) if amp else contextlib.nullcontext
        if model.kind == "image":
            self.mean = torch.tensor(model.preprocess.mean, device=self.device).view(1, 3, 1, 1) * 255
            self.std = torch.tensor(model.preprocess.std, device=self.device).view(1, 3, 1, 1) * 255
        # same batches as the session: it seeds epoch e's order with seed * 7919 + e
        self.seed, self.epoch, self.accuracy = c.seed, session.epoch, float("nan")
        self.predicted = torch.zeros(0, dtype=torch.long)  # valid predictions, in sample order

    def inputs(self, split: str, idx: torch.Tensor):
        if self.cached:
            return self.feats[split][idx]
        b = self.data[split]
        if self.model.kind == "image":
            x = (b.pixels[idx].to(self.device).float() - self.mean) / self.std
            return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
        width = self.pad_to or int(b.lengths[idx].max())
        ids = torch.full((len(idx), width), b.pad_id, dtype=torch.long)
        ids[:, : b.ids.shape[1]] = b.ids[idx, :width]
        mask = (torch.arange(width)[None] < b.lengths[idx][:, None]).long()
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    def order(self, split: str, batch_size: int, shuffle: bool, gen=None):
        bucket = self.model.kind == "text" and not self.cached and self.bucket
        lengths = self.data[split].lengths if bucket else None
        return batch_order(len(self.labels[split]), batch_size, generator=gen, shuffle=shuffle,
                           lengths=lengths, drop_single=shuffle)

    def __call__(self) -> None:
        self.epoch += 1
        model, y = self.model, self.labels
        forward = model.head if self.cached else model.logits
        model.module.train()
        if self.head_only:  # the frozen backbone is a fixed feature extractor (as in the Session)
            model.module.eval()
            model.head.train()
        else:
            freezing.apply_bn_policy(model, "frozen")
        gen = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        for idx in self.order("train", self.batch_size, True, gen):
            with self.autocast():
                logits = forward(self.inputs("train", idx))
            loss = F.cross_entropy(logits.float(), y["train"][idx], reduction="none").mean()
            if not torch.isfinite(loss):
                break
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.precondition is not None:
                self.precondition()
            self.opt.step()
        model.module.eval()
        predicted = torch.empty(len(y["valid"]), dtype=torch.long)
        with torch.no_grad():
            for idx in self.order("valid", self.eval_batch, False):
                with self.autocast():
                    logits = forward(self.inputs("valid", idx)).float()
                F.cross_entropy(logits, y["valid"][idx], reduction="none")
                predicted[idx] = logits.argmax(1).cpu()
        self.predicted = predicted
        self.accuracy = float((predicted == y["valid"].cpu()).double().mean())
