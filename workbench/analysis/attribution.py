"""`wb.explain`: why the model decided, for any validation sample (Captum underneath).

Images get Grad-CAM on the last spatial layer before the head (gradcam.py); texts get per-token
attributions on the input embeddings (token_attr.py). Everything is batched: one call explains a
gallery. Results are plain arrays in an `Attribution`; `workbench.plots.attribution_figure` and
the Why panel only render them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..validate import integer
from .gradcam import cell_centres, find_cam_layer, grad_cam, upsample
from .token_attr import TEXT_METHODS, special_ids, token_attributions

BATCH = 32  # samples per attribution pass (x2 when true and predicted are both asked for)
TEXT_GROUP = 4  # texts per pass, sorted by length: padding to the group's longest wastes little
# Integrated gradients cost n_steps forward+backward passes per token. Measured on the shared 2-core
# CPU with MiniLM on the keyword test (tests/analysis/test_explain_text.py): 4 steps already put
# the keyword on top for 98% of texts (8+ steps: 100%), while gradient x input did for 2% (it
# scored the keyword negative). So texts always get IG, with steps from a budget of token-passes
# (~1 ms each here): 32 steps for the Why panel's pair, 4 for a gallery of 12 reviews.
IG_TOKEN_BUDGET = 1000
IG_STEPS = (4, 32)


@dataclass(frozen=True)
class Attribution:
    """Why one validation sample got its score for one class.

    Images: `image` is what the model saw (uint8 (S, S, 3), after resize and crop), `heatmap` the
    Grad-CAM map upsampled to it (float32 (S, S), >= 0, max 1 unless all zero), `cam` the raw map
    at the layer's resolution. Texts: `tokens` (the tokenizer's pieces, padding dropped), `scores`
    (float32, one per token, signed: positive pushes toward `target`), `special` (True for [CLS],
    [SEP], ...).
    """

    index: int  # position in the valid split
    kind: str  # "image" | "text"
    target: int  # the class attributed to
    classes: tuple[str, ...] = field(repr=False)
    true: int = 0
    predicted: int = 0
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    method: str = ""  # in words: what was computed, on which layer, by which library
    layer: str = ""
    image: np.ndarray | None = field(default=None, repr=False)
    heatmap: np.ndarray | None = field(default=None, repr=False)
    cam: np.ndarray | None = field(default=None, repr=False)
    tokens: tuple[str, ...] | None = None
    scores: np.ndarray | None = field(default=None, repr=False)
    special: np.ndarray | None = field(default=None, repr=False)

    @property
    def target_name(self) -> str:
        return self.classes[self.target]

    @property
    def correct(self) -> bool:
        return self.true == self.predicted

    def top_tokens(self, k: int = 5) -> list[tuple[str, float]]:
        """The k tokens that pushed most toward the target (special tokens left out)."""
        if self.tokens is None or self.scores is None:
            raise ConfigError("top_tokens() is for text attributions; this one is for an image (see .heatmap).")
        k = integer("top_tokens k", k, low=1, hint="How many tokens to list, e.g. top_tokens(5).")
        order = [i for i in np.argsort(-self.scores, kind="stable") if not self.special[i]]
        return [(self.tokens[i], float(self.scores[i])) for i in order[:k]]

    def mass(self, region: np.ndarray) -> float:
        """Share of the Grad-CAM mass inside a boolean mask over the image (S, S)."""
        if self.heatmap is None:
            raise ConfigError("mass() is for image attributions.")
        total = float(self.heatmap.sum())
        return float(self.heatmap[region].sum()) / total if total > 0 else float("nan")


def explain(session, index: int, target: int | str = "pred", *, method: str = "auto",
            n_steps: int | None = None) -> Attribution:
    """Attribution of one validation sample toward `target`: "pred", "true", a class index or name.

    Images: Grad-CAM (Captum LayerGradCam) on the last spatial layer before the head. Texts:
    method "ig" (integrated gradients on the input embeddings; "auto" is "ig") or "grad_x_input"
    (one pass, cheaper but unreliable on embeddings: see IG_TOKEN_BUDGET). n_steps (IG) defaults to
    IG_TOKEN_BUDGET / (tokens to explain), between 4 and 32: 32 for one text's pair, 4 for a gallery.
    """
    return explain_many(session, [index], target, method=method, n_steps=n_steps)[0]


def explain_many(session, indices: Sequence[int], target: int | str | Sequence[int | str] = "pred", *,
                 method: str = "auto", n_steps: int | None = None, while_training: bool = False) -> list[Attribution]:
    """Attributions for many validation samples in batched passes (a gallery in one call).

    `target` is one spec for all ("pred", "true", a class) or one per index; the same index may
    appear twice, e.g. `explain_many(s, [i, i], ["true", "pred"])` for true and predicted side by side.
    while_training: the caller is the training thread itself, between epochs (the session's pinned
    samples at each epoch end); anyone else is refused while the session trains.
    """
    data, model = session.data, session.model
    positions = _check_indices(indices, len(data.valid))
    specs = list(target) if isinstance(target, (list, tuple)) else [target] * len(positions)
    if len(specs) != len(positions):
        raise ConfigError(f"target has {len(specs)} entries for {len(positions)} indices; give one, or one per index.")
    for spec in specs:
        _check_target(spec, data.classes)
    text_method = "ig" if method == "auto" else method
    if model.kind == "text" and text_method not in TEXT_METHODS:
        raise ConfigError(f"method={method!r} is unknown for texts: use 'auto', 'ig' or 'grad_x_input'.")
    if model.kind == "image" and method not in ("auto", "gradcam"):
        raise ConfigError(f"method={method!r} is unknown for images: use 'auto' or 'gradcam' (Grad-CAM).")
    order = list(range(len(positions)))
    if model.kind == "text":  # similar lengths together: little padding in each pass
        lengths = session.pipeline.batcher("valid").lengths[positions].tolist()
        order.sort(key=lambda n: lengths[n])
    if n_steps is None:
        tokens = sum(lengths) if model.kind == "text" else len(positions)
        n_steps = int(np.clip(IG_TOKEN_BUDGET // max(tokens, 1), *IG_STEPS))
    elif isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
        raise ConfigError(f"n_steps must be an int >= 2 (integrated-gradient steps) or None; got {n_steps!r}.")
    if session.running and not while_training:
        raise ConfigError("The session is training; explain between fits (after fit() returns or session.stop()).")
    group = TEXT_GROUP if model.kind == "text" else BATCH
    out: list[Attribution | None] = [None] * len(positions)
    with _eval_mode(model), torch.enable_grad():
        for start in range(0, len(order), group):
            part = order[start : start + group]
            done = _explain_batch(session, [positions[n] for n in part], [specs[n] for n in part], text_method, n_steps)
            for n, attribution in zip(part, done):
                out[n] = attribution
    return out  # type: ignore[return-value]


def _explain_batch(session, positions: list[int], specs: list, text_method: str, n_steps: int) -> list[Attribution]:
    data, model = session.data, session.model
    idx = torch.as_tensor(positions, dtype=torch.long)
    inputs = session.pipeline.batch("valid", idx)
    probs = _probabilities(session, inputs, positions)
    predicted = probs.argmax(1)
    true = data.valid.labels[positions]
    targets = [_resolve(spec, int(t), int(p), data.classes) for spec, t, p in zip(specs, true, predicted)]
    target_t = torch.as_tensor(targets, dtype=torch.long, device=session.device)
    common = dict(classes=tuple(data.classes))
    rows = zip(positions, targets, true, predicted, probs)
    if model.kind == "image":
        layer = find_cam_layer(model, inputs)
        cams = grad_cam(model, layer, inputs, target_t)
        heat = upsample(cams, cell_centres(model, layer, inputs), tuple(inputs.shape[-2:]))
        peak = heat.reshape(len(heat), -1).max(axis=1)
        heat = heat / np.where(peak > 0, peak, 1)[:, None, None]
        pixels = session.pipeline.batcher("valid").raw(idx).permute(0, 2, 3, 1).cpu().numpy()
        method = f"Grad-CAM (Captum LayerGradCam) on {layer.path!r} (block {layer.block!r})"
        return [Attribution(index=i, kind="image", target=c, true=int(t), predicted=int(p), probabilities=pr,
                            method=method, layer=layer.path, image=pixels[n], heatmap=heat[n].astype(np.float32),
                            cam=cams[n].numpy(), **common)
                for n, (i, c, t, p, pr) in enumerate(rows)]
    scores = token_attributions(model, inputs, target_t, text_method, n_steps).numpy()
    tokenizer = model.preprocess.tokenizer
    specials = special_ids(tokenizer)
    ids = inputs["input_ids"].cpu().numpy()
    lengths = inputs["attention_mask"].sum(1).cpu().numpy()
    method = ("integrated gradients (Captum IntegratedGradients, "
              f"{n_steps} steps, pad baseline)" if text_method == "ig" else "gradient x input (Captum LayerGradientXActivation)")
    method += " on the input embeddings"
    out = []
    for n, (i, c, t, p, pr) in enumerate(rows):
        row = ids[n, : lengths[n]]
        s = scores[n, : lengths[n]]
        scale = np.abs(s).max()
        out.append(Attribution(
            index=i, kind="text", target=c, true=int(t), predicted=int(p), probabilities=pr, method=method,
            layer="input embeddings", tokens=tuple(tokenizer.convert_ids_to_tokens(row.tolist())),
            scores=(s / scale if scale > 0 else s).astype(np.float32),
            special=np.array([int(v) in specials for v in row]), **common))
    return out


def _probabilities(session, inputs, positions: list[int]) -> np.ndarray:
    """The probabilities the gallery shows (the last evaluation) when they are from the current
    weights, so "pred" is the class on the card; otherwise one forward pass."""
    p = session.predictions
    if p is not None and p.epoch == session.epoch and len(p.logits) == len(session.data.valid):
        z = p.logits[positions].astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    with torch.no_grad():
        return torch.softmax(session.model.logits(inputs).float(), dim=1).cpu().numpy()


class _eval_mode:
    """Eval mode for the attribution passes (fixed BatchNorm, no dropout); the modes are put back."""

    def __init__(self, model) -> None:
        self.modules = model.submodules()

    def __enter__(self) -> None:
        self.modes = [m.training for m in self.modules]
        for m in self.modules:
            m.training = False

    def __exit__(self, *exc) -> None:
        for m, mode in zip(self.modules, self.modes):
            m.training = mode


def _check_indices(indices: Sequence[int], n: int) -> list[int]:
    if isinstance(indices, (int, np.integer)):
        indices = [indices]
    out = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < n:
            raise DataError(f"index {i!r} is not a validation sample: use a position 0..{n - 1} in the valid split "
                            "(the ids in errors.table() / the gallery).")
        out.append(int(i))
    if not out:
        raise DataError("No indices given: pass at least one validation position.")
    return out


def _check_target(spec, classes: Sequence[str]) -> None:
    if spec in ("pred", "true"):
        return
    if isinstance(spec, str):
        if spec not in classes:
            from ..errors import suggest

            raise ConfigError(f"target={spec!r} is neither 'pred', 'true' nor a class.{suggest(spec, classes)} "
                              f"Classes: {', '.join(map(str, classes[:20]))}.")
        return
    if isinstance(spec, bool) or not isinstance(spec, (int, np.integer)) or not 0 <= int(spec) < len(classes):
        raise ConfigError(f"target={spec!r} must be 'pred', 'true', a class name or a class index 0..{len(classes) - 1}.")


def _resolve(spec, true: int, predicted: int, classes: Sequence[str]) -> int:
    if spec == "pred":
        return predicted
    if spec == "true":
        return true
    return list(classes).index(spec) if isinstance(spec, str) else int(spec)
