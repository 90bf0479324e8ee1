"""Each library's description of its structure, as candidate blocks (ARCHITECTURE.md rule 4: discovered, not tabulated).

- timm: ``model.group_matcher(coarse=...)`` consumed by timm's own ``group_with_matcher``, over
  every name of every parameter (shared modules answer to several names).
- transformers: every ``nn.ModuleList`` whose element class is in ``_no_split_modules`` (BertLayer;
  T5Block in both the encoder and the decoder) gives one block per layer; what runs before the
  first layer is the stem, what runs between or after layers a block of its own.
- anything else (torchvision, a user's module): the trunk is found by walking down from the root
  while one child holds more than 3/4 of the layers with parameters (3/5 when it has a single
  sibling): resnet stops at the root (layer1..4); ViT walks down to encoder.layers; VGG and
  AlexNet to features. The trunk's children are the
  blocks; what runs before it is the stem, what runs after it blocks of their own.

`discovery.arrange` then orders the candidates by the forward pass and names them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch import nn

from ..errors import ConfigError
from .discovery import Trace, Unit, aliases, owners

GRANULARITIES = ("stages", "blocks")
TRUNK_SHARE = 0.75  # walk into a child that holds more than this share of the parameterised layers
PAIR_SHARE = 0.6  # ... or this share when it has one sibling (AlexNet: features 5 convs, classifier 2 Linears)


def _params(module: nn.Module, exclude: set[int]) -> list[nn.Parameter]:
    return [p for p in module.parameters() if id(p) not in exclude]


# --------------------------------------------------------------------------------------- timm
def timm_units(model: nn.Module, granularity: str) -> list[Unit]:
    """Candidate blocks of a timm model from its group_matcher (coarse for "stages", fine for "blocks")."""
    from timm.models._manipulate import group_with_matcher

    matcher = getattr(model, "group_matcher", None)
    if matcher is None:
        raise ConfigError(f"{type(model).__name__} has no group_matcher(): use feature_units or generic_units.")
    named = aliases(model)  # every name: timm's group_parameters would see one per shared parameter
    grouped = group_with_matcher(named.items(), matcher(coarse=granularity == "stages"))
    return [Unit([named[n] for n in grouped[k]], role="stem" if i == 0 else "extra") for i, k in enumerate(sorted(grouped))]


def feature_units(model: nn.Module, head: set[int], traced: Trace) -> list[Unit] | None:
    """Stages from timm's ``feature_info`` (the modules whose outputs are feature maps): each stage
    is what runs after the previous one up to the end of its module (downsampling included); what
    runs before the first is the stem. None when the model lists none or they did not run."""
    taps = [f.get("module") for f in getattr(model, "feature_info", None) or () if isinstance(f, dict)]
    spans = [traced.spans.get(t) for t in taps if t]
    if not spans or None in spans:
        return None
    ends = [b for _, b in spans]
    units: dict[Any, Unit] = {}
    top: dict[int, str] = {}
    for path, p in aliases(model).items():
        top.setdefault(id(p), path.split(".")[0])
    for p in _params(model, head):
        i = traced.first_use.get(id(p))
        if i is None:
            key: Any = ("unused", id(p))
        elif i < spans[0][0]:
            key = "stem"
        elif i < ends[-1]:
            key = sum(e <= i for e in ends)  # the stage whose module ends after it
        else:
            key = ("after", top[id(p)])
        role = "stem" if key == "stem" else "stage" if isinstance(key, int) else "extra"
        units.setdefault(key, Unit([], role=role)).params.append(p)
    return list(units.values())


# ------------------------------------------------------------------------------- transformers
def layer_lists(model: nn.Module) -> list[str]:
    """Paths of the repeated layer lists: ModuleLists whose element class is in `_no_split_modules`
    (all of them: an encoder-decoder has two); without that declaration (DistilBERT) the
    ModuleList of one repeated class holding the most parameters."""
    no_split = set(getattr(model, "_no_split_modules", None) or ())
    cands = [
        (path, ml)
        for path, ml in model.named_modules()
        if isinstance(ml, nn.ModuleList) and len(ml) > 0 and len({type(c) for c in ml}) == 1
    ]
    preferred = [path for path, ml in cands if type(ml[0]).__name__ in no_split]
    if preferred:
        return [p for p in preferred if not any(p.startswith(q + ".") for q in preferred)]
    if not cands:
        raise ConfigError(f"Block discovery failed: {type(model).__name__} has no repeated layer list.")
    path, _ = max(cands, key=lambda c: sum(p.numel() for p in c[1].parameters()))
    return [path]


def transformers_units(model: nn.Module, head: set[int], traced: Trace) -> list[Unit]:
    """One block per transformer layer; the rest split by when it runs: before the first layer ->
    stem; first used while a layer runs (DeBERTa's shared relative embeddings) -> that layer;
    between or after layers -> one block per parent module (BART's decoder embeddings; mBART's
    encoder norm, which then folds into the last encoder layer)."""
    layers = [(f"{path}.{name}", layer) for path in layer_lists(model) for name, layer in model.get_submodule(path).named_children()]
    stages = [Unit(_params(layer, head)) for _, layer in layers]
    spans = [traced.spans.get(path, (math.inf, math.inf)) for path, _ in layers]
    in_stage = {id(p) for u in stages for p in u.params}
    parent: dict[int, str] = {}
    for path, p in aliases(model).items():
        parent.setdefault(id(p), ".".join(path.split(".")[:-2]))
    first = min((a for a, _ in spans), default=math.inf)
    segments: dict[Any, list[nn.Parameter]] = {}
    for p in _params(model, head | in_stage):
        t = traced.first_use.get(id(p))
        inside = next((i for i, (a, b) in enumerate(spans) if t is not None and a <= t < b), None)
        if inside is not None:
            stages[inside].params.append(p)
            continue
        key: Any = ("unused", id(p)) if t is None else "stem" if t < first else (sum(a <= t for a, _ in spans), parent[id(p)])
        segments.setdefault(key, []).append(p)
    return stages + [Unit(ps, role="stem" if key == "stem" else "unused" if key[0] == "unused" else "extra")
                     for key, ps in segments.items()]  # fmt: skip


# ------------------------------------------------------------------------- generic (torchvision, yours)
def generic_units(model: nn.Module, head: set[int], traced: Trace, granularity: str) -> list[Unit]:
    """Candidate blocks of any module: the trunk's children, what runs before (stem) and after."""
    owner = owners(model)

    def layers(m: nn.Module) -> int:
        return len({id(owner[id(p)]) for p in _params(m, head)})

    def kids(m: nn.Module) -> list[nn.Module]:
        return [c for c in m.children() if _params(c, head)]

    units: list[Unit] = []
    node = model
    while True:
        direct = [p for p in node.parameters(recurse=False) if id(p) not in head]
        units += [Unit([p], role="lone") for p in direct]
        children = kids(node)
        big = max(children, key=layers, default=None)
        share = TRUNK_SHARE if len(children) > 2 else PAIR_SHARE
        if big is None or (len(children) > 1 and layers(big) <= share * layers(node)):
            break
        start = traced.when(_params(big, head))
        units += [Unit(_params(c, head), role="stem" if traced.when(_params(c, head)) < start else "extra")
                  for c in children if c is not big]  # fmt: skip
        if not kids(big):  # a single layer holds everything: it is the trunk
            children = [big]
            break
        node = big
    for child in children:
        units += [Unit(_params(part, head), role="extra") for part in _split(child, granularity, head)]
    return units


def _split(stage: nn.Module, granularity: str, head: set[int]) -> Iterable[nn.Module]:
    """A stage's sub-blocks for granularity "blocks": the children of a Sequential/ModuleList of
    >= 2 modules of one class (resnet layer1.0, layer1.1); otherwise the stage itself."""
    children = [c for c in stage.children() if _params(c, head)]
    if (
        granularity == "blocks"
        and isinstance(stage, (nn.Sequential, nn.ModuleList))
        and len(children) >= 2
        and len({type(c) for c in children}) == 1
    ):
        return children
    return [stage]


def check_granularity(granularity: str) -> None:
    from ..errors import suggest

    if granularity not in GRANULARITIES:
        raise ConfigError(
            f"Unknown granularity {granularity!r}: use 'stages' (one block per stage) or 'blocks' "
            f"(stages split into sub-blocks).{suggest(str(granularity), GRANULARITIES)}"
        )
