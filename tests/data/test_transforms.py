"""Batch building: resize once, normalise, augment per sample, length-bucketed text batches."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from workbench.data.transforms import Augment, ImageBatches, TextBatches, batch_order, resize_square
from workbench.errors import ConfigError


class Split(SimpleNamespace):
    def __len__(self) -> int:
        return len(self.labels)


def test_grey_images_become_normalised_rgb_at_the_model_size() -> None:
    images = np.full((4, 8, 8), 255, dtype=np.uint8)
    split = Split(images=images, texts=None, paths=None, labels=np.zeros(4, dtype=np.int64))
    b = ImageBatches(split, size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert b.pixels.shape == (4, 3, 16, 16) and b.pixels.dtype == torch.uint8
    x = b.batch(torch.tensor([0, 2]))
    assert x.shape == (2, 3, 16, 16)
    assert x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x, torch.full_like(x, 2.0))  # (1 - 0.5) / 0.25


def test_resize_square_centre_crops_non_square_images() -> None:
    pixels = torch.zeros(1, 3, 10, 20, dtype=torch.uint8)
    pixels[..., 5:15] = 200  # a bright band in the middle columns
    out = resize_square(pixels, 10)
    assert out.shape == (1, 3, 10, 10) and out.float().mean() == 200


def test_augmentation_draws_per_sample() -> None:
    images = np.tile(np.arange(16, dtype=np.uint8)[None, None, :] * 16, (64, 16, 1))
    split = Split(images=images, texts=None, paths=None, labels=np.zeros(64, dtype=np.int64))
    b = ImageBatches(split, size=16, mean=(0, 0, 0), std=(1, 1, 1), channels_last=False)
    torch.manual_seed(0)
    x = b.batch(torch.arange(64), augment=Augment(flip=True).transform(16))
    flipped = (x[:, 0, 0, 0] > x[:, 0, 0, -1]).sum().item()
    assert 10 < flipped < 54  # some flipped, some not: not one draw for the whole batch


def test_augment_validation() -> None:
    assert not Augment().active and Augment(rotation=10).active
    with pytest.raises(ConfigError, match=r"augment rotation must be in \[0, 180\].*Degrees"):
        Augment(rotation=400).validate()


class FakeTokenizer:
    pad_token_id = 0
    name_or_path = "fake"

    def __call__(self, texts, truncation, max_length):
        return {"input_ids": [[1] + [5] * min(len(t.split()), max_length - 2) + [2] for t in texts]}


def test_text_batches_pad_to_the_longest_in_the_batch_only() -> None:
    texts = ["a " * 3, "a " * 10, "a", "a " * 40]
    split = Split(images=None, texts=texts, paths=None, labels=np.zeros(4, dtype=np.int64))
    tb = TextBatches(split, FakeTokenizer(), max_length=16)
    assert tb.lengths.tolist() == [5, 12, 3, 16]  # truncated at max_length
    batch = tb.batch(torch.tensor([0, 2]))
    assert batch["input_ids"].shape == (2, 5)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]


def test_batch_order_covers_every_sample_once_and_is_seeded() -> None:
    a = batch_order(103, 10, generator=torch.Generator().manual_seed(1))
    b = batch_order(103, 10, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert sorted(torch.cat(a).tolist()) == list(range(103))


def test_length_bucketing_groups_similar_lengths() -> None:
    lengths = torch.randint(5, 60, (1000,), generator=torch.Generator().manual_seed(0))
    batches = batch_order(1000, 32, generator=torch.Generator().manual_seed(0), lengths=lengths)
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max().item() for b in batches)
    naive = sum(len(b) * lengths[b].max().item() for b in torch.randperm(1000).split(32))
    assert padded < 0.75 * naive


def test_balanced_sampler_draws_classes_evenly() -> None:
    labels = np.array([0] * 900 + [1] * 100)
    weights = torch.from_numpy(1.0 / np.bincount(labels)[labels])
    order = torch.cat(batch_order(1000, 50, generator=torch.Generator().manual_seed(0), sample_weights=weights))
    share = (labels[order.numpy()] == 1).mean()
    assert 0.42 < share < 0.58


def test_drop_single_removes_a_batch_of_one() -> None:
    batches = batch_order(21, 10, generator=torch.Generator().manual_seed(0), drop_single=True)
    assert [len(b) for b in batches] == [10, 10]
