"""Synthetic sets whose right explanation is known, and sessions trained on them.

squares: the class is the colour of a square (red / blue) that sits in the left or the right
half of a noisy image; nothing else differs, so a right explanation looks at that half.
keywords: filler sentences plus one keyword ("banana" / "guitar") that alone decides the class.
"""

from __future__ import annotations

import numpy as np
import pytest

import workbench as wb

SQUARE_SIZE, SQUARE_SIDE = 192, 32  # EfficientNet-Lite0's last stage is 6x6 here
FILLER = ("the a this that film story movie plot actor scene music night city house river road time day people "
          "friend family world life way book water light room voice car door window table paper").split()
KEYWORDS = ("banana", "guitar")


def squares(n: int, seed: int, size: int = SQUARE_SIZE, side: int = SQUARE_SIDE):
    """uint8 (n, size, size, 3) noise images with one red or blue square; labels; half (0 left, 1 right)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(90, 150, size=(n, size, size, 3)).astype(np.uint8)
    labels, halves = rng.integers(0, 2, n), rng.integers(0, 2, n)
    for k in range(n):
        x0 = int(rng.integers(size // 32, size * 3 // 8 - side + 1))  # anywhere in the outer 3/4 of its half
        x0 = x0 if halves[k] == 0 else size - x0 - side
        y0 = int(rng.integers(2, size - side - 2))
        images[k, y0 : y0 + side, x0 : x0 + side] = (230, 40, 40) if labels[k] == 0 else (40, 40, 230)
    return images, labels, halves


def keyword_texts(n: int, seed: int):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        y = int(rng.integers(0, 2))
        words = list(rng.choice(FILLER, size=int(rng.integers(6, 12))))
        words.insert(int(rng.integers(0, len(words) + 1)), KEYWORDS[y])
        texts.append(" ".join(words))
        labels.append(KEYWORDS[y])
    return texts, labels


@pytest.fixture(scope="session")
def squares_session():
    """EfficientNet-Lite0 (bundled ImageNet weights), head only, 8 epochs on 240 squares; 100 to explain."""
    xt, yt, _ = squares(240, 0)
    xv, yv, halves = squares(100, 1)
    data = wb.Data.from_arrays(xt, yt, ["red", "blue"], valid=(xv, yv))
    model = wb.load_backbone("efficientnet_lite0", 2, pretrained=True, image_size=SQUARE_SIZE)
    session = wb.Session(data, model, batch_size=32, seed=0)  # the automatic LR (5e-2, one-cycle)
    session.fit(8)
    return session, halves


@pytest.fixture(scope="session")
def keyword_session():
    """MiniLM (bundled), head only, 8 epochs on 200 keyword sentences; 60 to explain."""
    tt, yt = keyword_texts(200, 0)
    tv, yv = keyword_texts(60, 1)
    data = wb.Data.from_texts(tt, yt, valid=(tv, yv))
    model = wb.load_backbone("minilm-l6", 2, pretrained=True)
    session = wb.Session(data, model, lr=5e-3, batch_size=32, seed=0)
    session.fit(8)
    return session


@pytest.fixture(scope="session")
def tiny_image_session():
    """resnet18, random init, 16 px, one epoch on digits: for contracts, not for correctness."""
    data = wb.load_data("digits").subset(train=10, valid=4, seed=0)
    model = wb.load_backbone("resnet18", 10, pretrained=False, image_size=16)
    session = wb.Session(data, model, optimizer="sgd", lr=0.05, batch_size=32, seed=0)
    session.step()
    return session
