"""Frozen-feature cache: the fast path for head-only training (ARCHITECTURE.md rule 6).

When every block below the head is frozen and the train inputs are deterministic, the backbone's
output for each sample never changes, so it is computed once (eval mode, no grad) and each epoch
trains the head on the cached vectors: an epoch becomes a few matmuls. The key captures
everything the features depend on; any change (frozen set, body weights, preprocessing) misses.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch


class FeatureCache:
    """Holds pooled features for the train and valid splits under one key."""

    def __init__(self) -> None:
        self._key: Hashable | None = None
        self._features: dict[str, torch.Tensor] = {}
        self.builds = 0  # how many times features were computed (tests and the UI read it)

    def get(self, key: Hashable, split: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key != self._key:
            self.invalidate()
            self._key = key
        if split not in self._features:
            self._features[split] = compute()
            self.builds += 1
        return self._features[split]

    def invalidate(self) -> None:
        self._key = None
        self._features = {}

    def copy(self) -> FeatureCache:
        """A cache holding the same features under the same key (the tensors are shared: nothing
        writes cached features in place), for a session cloned from this one (train/clone.py)."""
        other = FeatureCache()
        other._key, other._features = self._key, dict(self._features)
        return other

    def __contains__(self, key: Hashable) -> bool:
        return key == self._key and bool(self._features)


@torch.no_grad()
def compute_features(
    features_fn: Callable[[object], torch.Tensor],
    batch_fn: Callable[[torch.Tensor], object],
    order: list[torch.Tensor],
    n: int,
    progress: Callable[[int], None] = lambda done: None,
) -> torch.Tensor:
    """Run `features_fn` over every batch in `order` and put the rows back in sample order;
    `progress(batches done)` after each batch (throttled by the caller)."""
    out: torch.Tensor | None = None
    progress(0)
    for b, idx in enumerate(order):
        f = features_fn(batch_fn(idx)).float()
        if out is None:
            out = torch.empty((n, f.shape[1]), dtype=f.dtype, device=f.device)
        out[idx.to(f.device)] = f
        progress(b + 1)
    assert out is not None, "no batches to compute features from"
    return out
