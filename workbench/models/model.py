"""Model: a torch module plus its blocks, its preprocessing and where its weights came from.

The block partition (block name -> parameter names) is fixed when the model is built; everything
else a Block reports (parameter count, trainable) is read from the live module on each access,
so `requires_grad` stays the one source of truth for what is frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DataError, suggest
from ..validate import jsonable


@dataclass(frozen=True)
class Block:
    """A snapshot of one block: a contiguous group of layers that is frozen or trained as a unit."""

    name: str
    params: int
    trainable: bool
    parameter_names: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class ImagePreprocess:
    """How images must be prepared for this backbone (the data layer builds transforms from it).

    Evaluation recipe: resize the shorter side to ``round(size / crop_pct)``, centre-crop ``size``,
    scale to [0, 1], normalise with ``mean``/``std``.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # "bilinear" | "bicubic"
    crop_pct: float = 0.875


@dataclass(frozen=True)
class TextPreprocess:
    """The tokenizer and the length texts are padded/truncated to."""

    tokenizer: Any
    max_length: int

    def __call__(self, texts: str | Sequence[str]) -> Mapping[str, torch.Tensor]:
        """Tokenize texts into the tensors `Model.logits` takes (padded to the longest, truncated)."""
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )


class Model:
    """A backbone with a new head for `num_classes`, split into blocks (stem first, head last)."""

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        num_classes: int,
        module: nn.Module,
        head_path: str,
        block_params: Mapping[str, Sequence[str]],
        preprocess: ImagePreprocess | TextPreprocess,
        weights: str,
        tokenizer: Any = None,
        granularity: str = "stages",
        options: Mapping[str, Any] | None = None,
        library: str = "module",
        pooling: str | None = None,
        pooling_source: str = "",
        pooled: Callable[[Any], torch.Tensor] | None = None,
        select: Callable[[torch.Tensor, Any], torch.Tensor] | None = None,
    ) -> None:
        self.recipe: dict[str, Any] | None = None  # the call that builds it (set by load_backbone)
        self.name = name
        self.kind = kind
        self.num_classes = num_classes
        self.module = module
        self.preprocess = preprocess
        self.weights = weights
        self.tokenizer = tokenizer
        self.granularity = granularity
        # the load_backbone keyword options that rebuild this architecture (JSON-able; checkpoints
        # call load_backbone(name, num_classes, pretrained=False, **options))
        self.options: dict[str, Any] = jsonable(dict(options or {}))
        # which library built it: "torchvision" | "timm" | "transformers" | "module" (Model.from_module)
        self.library = library
        # how one vector per example reaches the head (texts: "mean", "cls", "last-token", ...; see
        # models/pooling.py), and where that choice comes from, in words
        self.pooling = pooling
        self.pooling_source = pooling_source
        self._pooled = pooled  # inputs -> the head's input, where the library computes it (timm pre_logits)
        self._select = select  # (captured head input, inputs) -> one vector per example (decoders)
        self._head_path = head_path
        self._block_params: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in block_params.items()}
        self._owner = {p: b for b, names in self._block_params.items() for p in names}  # parameter -> block
        self._check_partition()
        self._tensors: dict[str, list[nn.Parameter]] | None = None  # block -> its Parameter objects
        self._module_map: dict[str, str | None] | None = None
        self._submodules: list[nn.Module] | None = None

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        num_classes: int,
        *,
        kind: str = "image",
        preprocess: ImagePreprocess | TextPreprocess | None = None,
        head: str | None = None,
        tokenizer: Any = None,
        name: str | None = None,
        granularity: str = "stages",
        head_dropout: float = 0.0,
        seed: int | None = 0,
    ) -> Model:
        """Your own nn.Module as a Model: classifier, blocks and preprocessing discovered as for
        library backbones (see models/custom.py). Works on a copy: your module is never changed, and
        a second call on it gives the same model."""
        from .custom import from_module

        return from_module(module, num_classes, kind=kind, preprocess=preprocess, head=head, tokenizer=tokenizer,
                           name=name, granularity=granularity, head_dropout=head_dropout, seed=seed)  # fmt: skip

    # ----------------------------------------------------------------------------- structure
    def _check_partition(self) -> None:
        """Every parameter object in exactly one block, head last and holding exactly the head's
        parameters. By identity: a shared parameter has several names but one block."""
        params = dict(self.module.named_parameters())  # one (first) name per parameter object
        seen: dict[int, str] = {}
        for block, names in self._block_params.items():
            if not names:
                raise ConfigError(f"{self.name}: block discovery produced an empty block {block!r}.")
            for n in names:
                if n not in params:
                    raise ConfigError(f"{self.name}: block discovery failed: {n!r} is not a parameter name of the module.")
                if id(params[n]) in seen:
                    raise ConfigError(f"{self.name}: parameter {n!r} is in blocks {seen[id(params[n])]!r} and {block!r}.")
                seen[id(params[n])] = block
        missing = [n for n, p in params.items() if id(p) not in seen]
        if missing:
            raise ConfigError(
                f"{self.name}: block discovery failed (unassigned parameters: {missing[:3]}). "
                "This module structure is not supported."
            )
        if list(self._block_params)[-1] != "head":
            raise ConfigError(f"{self.name}: block discovery failed: the last block is not the head.")
        if {id(p) for p in self.head.parameters()} != {id(params[n]) for n in self._block_params["head"]}:
            raise ConfigError(f"{self.name}: block discovery failed: the head block is not the head module.")

    @property
    def rebuildable(self) -> bool:
        """True when load_backbone(name, num_classes, pretrained=False, **options) builds this
        architecture again (checkpoints rely on it); False for Model.from_module."""
        return self.library != "module"

    @property
    def head(self) -> nn.Module:
        """The classifier whose input is the pooled feature vector."""
        return self.module.get_submodule(self._head_path)

    @property
    def head_path(self) -> str:
        """Dotted path of the head module inside `module`."""
        return self._head_path

    @property
    def block_names(self) -> list[str]:
        """Block names in forward order (stem first, head last)."""
        return list(self._block_params)

    def _block_tensors(self) -> dict[str, list[nn.Parameter]]:
        """Block -> its Parameter objects. Walking the module tree costs ~1 ms for a CNN and the
        session asks every epoch, so the map is kept; it is rebuilt when parameter objects were
        replaced (e.g. load_state_dict(assign=True)), checked by identity on the first and last."""
        cached, names = self._tensors, self._block_params
        if cached is not None:
            first, last = next(iter(names)), next(reversed(names))
            if (self.module.get_parameter(names[first][0]) is cached[first][0]
                    and self.module.get_parameter(names[last][-1]) is cached[last][-1]):
                return cached
        params = dict(self.module.named_parameters())
        self._tensors = {b: [params[p] for p in names] for b, names in self._block_params.items()}
        return self._tensors

    @property
    def blocks(self) -> list[Block]:
        """Blocks in forward order, read from the live module (trainable reflects requires_grad)."""
        return [
            Block(name=name, params=sum(p.numel() for p in ps), trainable=all(p.requires_grad for p in ps),
                  parameter_names=self._block_params[name])
            for name, ps in self._block_tensors().items()
        ]

    def submodules(self) -> list[nn.Module]:
        """Every module in `module` (itself first), listed once: the structure is fixed at build."""
        if self._submodules is None:
            self._submodules = list(self.module.modules())
        return self._submodules

    def block_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Block name -> its parameters (forward order), from one lookup."""
        return {b: list(ps) for b, ps in self._block_tensors().items()}

    def trainable_blocks(self) -> list[str]:
        """Names of the blocks whose parameters all require grad, in forward order."""
        return [name for name, ps in self._block_tensors().items() if all(p.requires_grad for p in ps)]

    def set_head_dropout(self, p: float) -> None:
        """Set the dropout probability in front of the head's Linear (a regularisation knob)."""
        drops = [m for m in self.head.modules() if isinstance(m, nn.Dropout)]
        if not drops:
            raise ConfigError(f"{self.name}'s head has no dropout layer; rebuild it with load_backbone(..., head_dropout=p).")
        for m in drops:
            m.p = p

    def _check_block(self, name: str) -> None:
        if name not in self._block_params:
            raise ConfigError(
                f"Unknown block {name!r} for {self.name}.{suggest(name, self._block_params)} "
                f"Blocks: {', '.join(self._block_params)}."
            )

    def block(self, name: str) -> Block:
        """The block called `name` (ConfigError with close matches when there is none)."""
        self._check_block(name)
        return next(b for b in self.blocks if b.name == name)

    def parameters_of(self, block_name: str) -> list[nn.Parameter]:
        """The parameters of one block, in registration order."""
        self._check_block(block_name)
        return list(self._block_tensors()[block_name])

    def block_of(self, parameter_name: str) -> str:
        """The block a parameter belongs to (any of its names, when it is shared)."""
        block = self._owner.get(parameter_name)
        if block is None:
            shared = dict(self.module.named_parameters(remove_duplicate=False)).get(parameter_name)
            block = self._owner_by_id().get(id(shared)) if shared is not None else None
        if block is None:
            raise ConfigError(f"{self.name} has no parameter {parameter_name!r}.")
        return block

    def _owner_by_id(self) -> dict[int, str]:
        return {id(p): b for b, ps in self._block_tensors().items() for p in ps}

    def _module_blocks(self) -> dict[str, str | None]:
        """Module path -> its block, or None when its parameters span several blocks.

        A module without parameters of its own subtree (e.g. BatchNorm(affine=False)) inherits its
        parent's block, so its buffers follow the block it sits in. Computed once: the module
        structure is fixed when the model is built.
        """
        if self._module_map is not None:
            return self._module_map
        owner = self._owner_by_id()
        result: dict[str, str | None] = {}
        for path, mod in self.module.named_modules():
            blocks = {owner[id(p)] for p in mod.parameters()}
            if len(blocks) == 1:
                result[path] = blocks.pop()
            elif blocks:
                result[path] = None
            else:
                parent = path.rpartition(".")[0] if "." in path else ""
                result[path] = result.get(parent) if path else None
        self._module_map = result
        return result

    def modules_of(self, block_name: str) -> list[nn.Module]:
        """Submodules that lie wholly inside one block (used for the BatchNorm policy)."""
        self._check_block(block_name)
        mods = dict(self.module.named_modules())
        return [mods[p] for p, b in self._module_blocks().items() if b == block_name and p]

    # ------------------------------------------------------------------------------- forward
    def modules_changed(self) -> None:
        """Forget what was read from the module tree (after layers were swapped, e.g. SyncBatchNorm)."""
        self._tensors = self._module_map = self._submodules = None

    def _module_inputs(self, inputs: Any) -> Any:
        """Check `inputs` and turn raw strings into tokenized tensors."""
        if self.kind == "image":
            if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
                raise DataError(
                    f"{self.name} expects a float tensor of shape (B, 3, H, W); got "
                    f"{getattr(inputs, 'shape', type(inputs).__name__)}. Apply model.preprocess first."
                )
            return inputs
        if isinstance(inputs, str) or (isinstance(inputs, Sequence) and inputs and isinstance(inputs[0], str)):
            inputs = self.preprocess(inputs)  # type: ignore[operator]
        if not isinstance(inputs, Mapping):
            raise DataError(
                f"{self.name} expects tokenized inputs (a dict with input_ids, attention_mask) or a list "
                f"of strings; got {type(inputs).__name__}. Use model.preprocess(texts)."
            )
        return inputs

    def logits(self, inputs: Any, module: nn.Module | None = None) -> torch.Tensor:
        """Class scores (B, num_classes): one call for images (a tensor) and texts (tokenized dict).
        `module`: call this wrapper of the module instead (a DistributedDataParallel of it)."""
        inputs = self._module_inputs(inputs)
        module = self.module if module is None else module
        out = module(inputs) if self.kind == "image" else module(**inputs)
        return out if isinstance(out, torch.Tensor) else out.logits

    def features(self, inputs: Any) -> torch.Tensor:
        """The head's input for `inputs`, one pooled vector per example (B, D): what the
        frozen-feature cache stores. `model.head(model.features(x))` equals `model.logits(x)`."""
        inputs = self._module_inputs(inputs)
        if self._pooled is not None:
            found = self._pooled(inputs)
        else:
            captured: list[torch.Tensor] = []

            def grab(_module: nn.Module, args: tuple) -> None:
                if not captured:
                    captured.append(args[0])

            handle = self.head.register_forward_pre_hook(grab)
            try:
                self.logits(inputs)
            finally:
                handle.remove()
            found = captured[0] if captured else None
            if found is not None and self._select is not None:
                found = self._select(found, inputs)
        if found is not None and found.dim() == 4 and found.shape[2:] == (1, 1):
            found = found.flatten(1)  # the pooled map a 1x1-conv classifier takes
        if found is None or found.dim() != 2:
            raise ConfigError(
                f"{self.name}: the head does not take one pooled vector per example (it got "
                f"{tuple(found.shape) if found is not None else 'nothing'}), so features() and the "
                "frozen-feature cache cannot be used with this model; train it with full forwards."
            )
        return found

    # -------------------------------------------------------------------------------- report
    def summary(self) -> str:
        """A printable table: block, parameters, trainable; totals; where the weights came from."""
        blocks = self.blocks
        width = max(len("block"), *(len(b.name) for b in blocks))
        lines = [f"{self.name} ({self.kind}, {self.num_classes} classes, granularity {self.granularity!r})"]
        lines.append(f"{'block':<{width}}  {'params':>12}  trainable")
        for b in blocks:
            lines.append(f"{b.name:<{width}}  {b.params:>12,}  {'yes' if b.trainable else 'no'}")
        total = sum(b.params for b in blocks)
        train = sum(p.numel() for p in self.module.parameters() if p.requires_grad)
        lines.append(f"{'total':<{width}}  {total:>12,}  {train:,} trainable ({100 * train / max(total, 1):.1f}%)")
        if self.pooling:
            from_ = f" ({self.pooling_source})" if self.pooling_source else ""
            lines.append(f"pooling: {self.pooling}{from_}")
        lines.append(f"weights: {self.weights}")
        if not self.rebuildable:
            lines.append("built from your module: save and load checkpoints with this module (not by name)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Model(name={self.name!r}, kind={self.kind!r}, num_classes={self.num_classes}, "
            f"blocks={len(self._block_params)}, weights={self.weights!r})"
        )
