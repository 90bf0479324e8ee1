"""Generic block discovery: stem, stages / layers, head (DESIGN rule 4: discovered, not tabulated).

Each library already describes its models' structure; this module reads that description:

- timm: ``model.group_matcher(coarse=...)`` consumed by timm's own ``group_with_matcher``;
  the classifier is named by ``pretrained_cfg["classifier"]``.
- torchvision: three families recognised by their attributes, not by model name:
  ResNet-like (``layer1..N`` + ``fc``), ``features`` + ``classifier`` (MobileNet, EfficientNet,
  ConvNeXt, ...), ViT (``conv_proj`` + ``encoder.layers`` + ``heads``).
- transformers: ``model.base_model``; its repeated ``nn.ModuleList`` of layers (element class in
  ``_no_split_modules`` when the model declares one); embeddings = stem.

All return ``{block name: (parameter names...)}`` in forward order, stem first, "head" last.
Block names are module paths ("layer1", "features.3", "blocks.6+conv_head+bn2"; for transformers
relative to the base model: "encoder.layer.0"), except "stem" and "head".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import nn

from ..errors import ConfigError

GRANULARITIES = ("stages", "blocks")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _prefix_owners(owner: dict[str, object]) -> dict[str, set]:
    """Module path -> the set of groups its parameters belong to (one pass over all names)."""
    out: dict[str, set] = {}
    for name, key in owner.items():
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            out.setdefault(".".join(parts[:i]), set()).add(key)
    return out


def roots(group: Sequence[str], owner: dict[str, object], spans: dict[str, set] | None = None) -> list[str]:
    """Highest module paths whose parameters all belong to `group`'s owner, in order of appearance.

    Used to name a group of parameters: ``blocks.6.0.conv_pw.weight`` .. ``bn2.bias`` -> ["blocks.6",
    "conv_head", "bn2"] when blocks.6, conv_head and bn2 lie wholly in that group.
    """
    spans = spans if spans is not None else _prefix_owners(owner)
    out: list[str] = []
    for name in group:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if len(spans[prefix]) == 1:
                if prefix not in out:
                    out.append(prefix)
                break
    return out


def _name(group: Sequence[str], owner: dict[str, object], spans: dict[str, set], strip: str = "") -> str:
    parts = roots(group, owner, spans)
    if strip:
        parts = [p[len(strip) + 1 :] if p.startswith(strip + ".") else p for p in parts]
    return "+".join(parts)


def split_head(module: nn.Module, groups: list[list[str]], head_path: str, strip: str = "") -> dict[str, tuple[str, ...]]:
    """Name ordered parameter groups: first "stem", classifier params "head" (last); others by roots.

    Parameters of the head module are taken out of whatever group holds them; what else the last
    group held (timm's conv_head, a norm) becomes its own block just before the head.
    """
    names = [n for n, _ in module.named_parameters()]
    head = [n for n in names if _under(n, head_path)]
    if not head:
        raise ConfigError(f"Block discovery failed: no parameters under the head {head_path!r}.")
    head_set = set(head)
    groups = [[n for n in g if n not in head_set] for g in groups]
    groups = [g for g in groups if g]
    owner = {n: i for i, g in enumerate(groups) for n in g}
    owner.update({n: "head" for n in head})
    spans = _prefix_owners(owner)
    blocks: dict[str, tuple[str, ...]] = {}
    for i, g in enumerate(groups):
        name = "stem" if i == 0 else _name(g, owner, spans, strip)
        if name in blocks or name == "head":
            raise ConfigError(f"Block discovery failed: two blocks would be called {name!r}.")
        blocks[name] = tuple(g)
    blocks["head"] = tuple(head)
    return blocks


# --------------------------------------------------------------------------------------- timm
def timm_blocks(model: nn.Module, head_path: str, granularity: str) -> dict[str, tuple[str, ...]]:
    """Blocks of a timm model from its own group_matcher (coarse for "stages", fine for "blocks")."""
    from timm.models._manipulate import group_with_matcher

    matcher = getattr(model, "group_matcher", None)
    if matcher is None:
        raise ConfigError(
            f"{type(model).__name__} has no group_matcher(), so its blocks cannot be discovered; "
            "choose a timm model that defines one (most do)."
        )
    grouped = group_with_matcher(model.named_parameters(), matcher(coarse=granularity == "stages"))
    groups = [list(grouped[k]) for k in sorted(grouped)]
    return split_head(model, groups, head_path)


# -------------------------------------------------------------------------------- torchvision
def _split_stage(module: nn.Module, path: str, granularity: str) -> list[str]:
    """A stage's sub-blocks for granularity "blocks": children of a Sequential/ModuleList of >= 2
    modules of one class (resnet layer1.0, layer1.1); otherwise the stage itself."""
    stage = module.get_submodule(path)
    children = list(stage.named_children())
    if (
        granularity == "blocks"
        and isinstance(stage, (nn.Sequential, nn.ModuleList))
        and len(children) >= 2
        and len({type(c) for _, c in children}) == 1
    ):
        return [f"{path}.{n}" for n, _ in children]
    return [path]


def _ordered_blocks(
    module: nn.Module, stages: list[str], head_path: str, merge_into_last: Iterable[str] = (), strip: str = ""
) -> dict[str, tuple[str, ...]]:
    """Group parameters: before the first stage -> stem; each stage; after the stages (other than
    the head) -> one block before the head. `merge_into_last` paths join the last stage."""
    merge = tuple(merge_into_last)
    names = [n for n, _ in module.named_parameters()]
    stage_of: dict[str, int] = {}
    for n in names:
        for i, s in enumerate(stages):
            if _under(n, s):
                stage_of[n] = i + 1
        if any(_under(n, m) for m in merge):
            stage_of[n] = len(stages)
    first = next((i for i, n in enumerate(names) if n in stage_of), None)
    if first is None:
        raise ConfigError("Block discovery failed: no parameters found in the stages.")
    groups: list[list[str]] = [[] for _ in range(len(stages) + 2)]
    for i, n in enumerate(names):
        if _under(n, head_path):
            continue
        groups[stage_of.get(n, 0 if i < first else len(stages) + 1)].append(n)
    return split_head(module, [g for g in groups if g], head_path, strip)


def torchvision_family(model: nn.Module) -> str:
    """'vit', 'resnet' or 'features', recognised by the attributes the family exposes."""
    if hasattr(model, "conv_proj") and hasattr(model, "encoder") and hasattr(model, "heads"):
        return "vit"
    if hasattr(model, "layer1") and isinstance(getattr(model, "fc", None), nn.Module):
        return "resnet"
    if isinstance(getattr(model, "features", None), nn.Sequential) and hasattr(model, "classifier"):
        return "features"
    raise ConfigError(
        f"Cannot discover the blocks of torchvision {type(model).__name__}: it is none of the supported "
        "families (ResNet-like layer1..N + fc; features + classifier; ViT conv_proj + encoder + heads). "
        "Try the same architecture through timm ('timm:<name>')."
    )


def torchvision_classifier(model: nn.Module) -> str:
    """Path of the final Linear (the classifier that the new head replaces)."""
    container = {"vit": "heads", "resnet": "fc", "features": "classifier"}[torchvision_family(model)]
    return last_linear(model, container)


def last_linear(model: nn.Module, under: str = "", exclude: str | None = None) -> str:
    """Path of the last nn.Linear (in registration order) under `under`, outside `exclude`."""
    found = [
        p
        for p, m in model.named_modules()
        if isinstance(m, nn.Linear) and (not under or _under(p, under)) and not (exclude and _under(p, exclude))
    ]
    if not found:
        raise ConfigError(f"Block discovery failed: no Linear classifier found in {type(model).__name__}.")
    return found[-1]


def torchvision_blocks(model: nn.Module, head_path: str, granularity: str) -> dict[str, tuple[str, ...]]:
    """Blocks of a torchvision classifier, from its family's structure."""
    family = torchvision_family(model)
    merge: list[str] = []
    if family == "vit":
        layers = [f"encoder.layers.{n}" for n, _ in model.encoder.layers.named_children()]
        # The final LayerNorm joins the last encoder layer (timm's vit group_matcher does the same
        # with `norm`): unfreezing "the last block" then trains the layer and the norm it feeds.
        merge = ["encoder.ln"]
        stages = layers
    elif family == "resnet":
        stages = [n for n, _ in model.named_children() if n.startswith("layer") and n[5:].isdigit()]
    else:
        # features[0] is the stem; each later features[i] is one stage (the final 1x1 conv too)
        stages = [f"features.{n}" for n, _ in list(model.features.named_children())[1:]]
    expanded = [sub for s in stages for sub in _split_stage(model, s, granularity)]
    return _ordered_blocks(model, expanded, head_path, merge)


# ------------------------------------------------------------------------------- transformers
def _path_of(model: nn.Module, sub: nn.Module) -> str:
    for path, m in model.named_modules():
        if m is sub:
            return path
    raise ConfigError("Block discovery failed: base_model is not inside the model.")


def transformer_layers(model: nn.Module) -> str:
    """Path of the repeated layer list inside base_model.

    Preferred: a ModuleList whose element class is in `_no_split_modules` (BertLayer, RobertaLayer);
    models that declare none (DistilBERT) -> the ModuleList of one repeated class holding the most
    parameters.
    """
    base = model.base_model
    base_path = _path_of(model, base)
    no_split = set(getattr(model, "_no_split_modules", None) or ())
    cands = [
        (path, ml)
        for path, ml in base.named_modules()
        if isinstance(ml, nn.ModuleList) and len(ml) > 0 and len({type(c) for c in ml}) == 1
    ]
    preferred = [c for c in cands if type(c[1][0]).__name__ in no_split]
    pool = preferred or cands
    if not pool:
        raise ConfigError(f"Block discovery failed: {type(base).__name__} has no repeated layer list.")
    path, _ = max(pool, key=lambda c: sum(p.numel() for p in c[1].parameters()))
    return f"{base_path}.{path}" if base_path else path


def transformers_blocks(model: nn.Module, head_path: str, granularity: str) -> dict[str, tuple[str, ...]]:
    """Blocks of a transformers sequence classifier: embeddings (stem), one block per layer,
    pooler / pre_classifier if any, head. Layers are already the finest unit, so "blocks" = "stages"."""
    del granularity  # one block per transformer layer at both granularities
    layers = transformer_layers(model)
    stages = [f"{layers}.{n}" for n, _ in model.get_submodule(layers).named_children()]
    return _ordered_blocks(model, stages, head_path, strip=_path_of(model, model.base_model))
