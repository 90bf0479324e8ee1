"""Head-only feature caches on disk: a kernel restart reads them instead of recomputing them.

The in-memory FeatureCache (cache.py) lives as long as the Session. Here each split's features of
a frozen body are also written to a folder, one safetensors file per entry, named by a SHA-256 key
of everything the features depend on: the body's weights (a hash of every tensor below the head),
the module's structure and pooling, the preprocessing and tokenizer, the memory format, the
forward-only batch size, the device type and mixed precision, torch's version, and the split's
content (pixels, texts, or each image file's path, size and modification time). Any change misses.

Trust (docs/ARCHITECTURE.md, "Fast path"): entries are safetensors (no pickle, nothing runs on
load), and each carries a keyed digest (BLAKE2b with a random secret kept in the folder, readable
by its owner only) of its key and its numbers. An entry whose digest, key, shape or dtype does not
match is ignored and rebuilt, never used. Only files this module names (`wbfeat-<64 hex>.safetensors`
and its own temporary files) are ever replaced or deleted; symlinks are never followed or removed.

The folder: `WORKBENCH_CACHE_DIR`, else the user's cache folder (`~/.cache/workbench/features` on
Linux, via platformdirs). Size cap: `WORKBENCH_CACHE_MAX_GB` (default 2), least recently used
entries go first. `WORKBENCH_FEATURE_CACHE=0` turns it off. `feature_cache_info()` says what is
there, `clear_feature_cache()` empties it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FORMAT = "1"
ENV_DIR, ENV_MAX, ENV_SWITCH = "WORKBENCH_CACHE_DIR", "WORKBENCH_CACHE_MAX_GB", "WORKBENCH_FEATURE_CACHE"
DEFAULT_MAX_GB = 2.0
ENTRY = re.compile(r"^wbfeat-[0-9a-f]{64}\.safetensors$")
TEMP = re.compile(r"^\.wbfeat-[0-9a-f]{64}\.[A-Za-z0-9_]+\.tmp$")
SECRET = ".wbfeat-secret"
STALE_TEMP_S = 3600.0  # a temporary file this old was left by a process that died while writing


# ---- where, how big, on or off --------------------------------------------------------------------
def folder() -> Path:
    """The cache folder: $WORKBENCH_CACHE_DIR, else the user's cache dir + workbench/features."""
    chosen = os.environ.get(ENV_DIR, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("workbench", appauthor=False)) / "features"


def max_bytes() -> int:
    raw = os.environ.get(ENV_MAX, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_MAX_GB
    except ValueError:
        gb = DEFAULT_MAX_GB
    return max(0, int(gb * 1024**3))


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


# ---- the key ---------------------------------------------------------------------------------------
def _update_tensor(h, t: torch.Tensor) -> None:
    t = t.detach()
    h.update(f"{tuple(t.shape)}{t.dtype}".encode())
    if t.numel():
        data = t.cpu().contiguous()
        if data.dtype == torch.bfloat16:
            data = data.view(torch.int16)
        h.update(memoryview(data.numpy()).cast("B"))


def body_digest(model) -> str:
    """SHA-256 of every parameter and buffer below the head, and of the module's structure."""
    h = hashlib.sha256()
    head = {id(t) for t in model.head.state_dict(keep_vars=True).values()}
    for name, t in model.module.state_dict(keep_vars=True).items():
        if id(t) in head:
            continue
        h.update(name.encode())
        _update_tensor(h, t)
    h.update(repr(model.module).encode())
    return h.hexdigest()


def split_digest(split) -> str:
    """SHA-256 of a split's inputs: pixels, texts, or each file's path, size and mtime."""
    h = hashlib.sha256()
    if split.images is not None:
        images = np.ascontiguousarray(split.images)
        h.update(f"images{images.shape}{images.dtype}".encode())
        h.update(memoryview(images).cast("B"))
    elif split.texts is not None:
        h.update(b"texts")
        for text in split.texts:
            raw = str(text).encode("utf-8", "surrogatepass")
            h.update(len(raw).to_bytes(8, "little"))
            h.update(raw)
    else:
        h.update(b"paths")
        for path in split.paths:
            st = os.stat(path)
            raw = os.fsencode(os.path.abspath(path))
            h.update(len(raw).to_bytes(8, "little"))
            h.update(raw)
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def entry_key(session, split: str) -> str:
    """The key of `split`'s features under the session's current body, inputs and settings."""
    model, config = session.model, session.config
    tokenizer = getattr(model.preprocess, "tokenizer", None)
    parts = [
        f"format={FORMAT}", f"torch={torch.__version__}", f"model={model.name}", f"kind={model.kind}",
        f"pooling={getattr(model, 'pooling', None)}", f"body={body_digest(model)}",
        f"inputs={session.pipeline.signature()!r}",
        f"tokenizer={type(tokenizer).__name__}:{len(tokenizer) if tokenizer is not None else 0}",
        f"channels_last={config.channels_last}", f"eval_batch={session._eval_batch()}",
        f"device={session.device.type}", f"amp={config.amp}", f"split={split}",
        f"data={split_digest(getattr(session.data, split))}",
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# ---- the store ---------------------------------------------------------------------------------------
def _secret(where: Path) -> bytes:
    """The folder's random secret (created once, owner-only), which keys every entry's digest."""
    path = where / SECRET
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        st = os.lstat(path)
        if path.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise OSError(f"{path} is not an owner-only file of this user; the feature cache will not use it")
        data = path.read_bytes()
        if len(data) != 32:
            raise OSError(f"{path} is not a workbench secret (32 bytes)")
        return data
    data = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return data


def _digest(secret: bytes, key: str, features: torch.Tensor) -> str:
    h = hashlib.blake2b(key=secret, digest_size=32)
    h.update(key.encode())
    _update_tensor(h, features)
    return h.hexdigest()


def _entry(where: Path, key: str) -> Path:
    return where / f"wbfeat-{key}.safetensors"


def load(key: str, rows: int) -> torch.Tensor | None:
    """The entry `key` if it is there and checks out (its digest, key, float32 (rows, D)); else None."""
    from safetensors import safe_open

    where = folder()
    path = _entry(where, key)
    try:
        if path.is_symlink() or not path.is_file():
            return None
        secret = _secret(where)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("workbench") != "feature-cache" or meta.get("format") != FORMAT or meta.get("key") != key:
                return None
            if list(f.keys()) != ["features"]:
                return None
            features = f.get_tensor("features")
        if features.dtype != torch.float32 or features.dim() != 2 or features.shape[0] != rows:
            return None
        if not hmac.compare_digest(meta.get("digest", ""), _digest(secret, key, features)):
            return None
        os.utime(path)  # least recently used goes first
        return features
    except Exception:  # unreadable, truncated, not safetensors: ignored and rebuilt, never trusted
        return None


def store(key: str, features: torch.Tensor) -> Path | None:
    """Write the entry atomically (a temporary file, then a rename), then keep the folder under its
    cap by deleting the least recently used entries. Returns the path, or None when not written."""
    from safetensors.torch import save_file

    features = features.detach().float().cpu().contiguous()
    size = features.numel() * 4
    cap = max_bytes()
    if size > cap:
        return None
    where = folder()
    try:
        where.mkdir(parents=True, exist_ok=True)
        secret = _secret(where)
        meta = {"workbench": "feature-cache", "format": FORMAT, "key": key,
                "digest": _digest(secret, key, features), "rows": str(features.shape[0])}
        fd, tmp = tempfile.mkstemp(prefix=f".wbfeat-{key}.", suffix=".tmp", dir=where)
        os.close(fd)
        try:
            save_file({"features": features}, tmp, metadata=meta)
            path = _entry(where, key)
            if path.is_symlink():
                return None
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError:  # a read-only or full disk: the in-memory cache still works
        return None
    evict(cap, keep=path)
    return path


def _entries(where: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(where) as it:
            return [e for e in it if ENTRY.match(e.name) and not e.is_symlink() and e.is_file(follow_symlinks=False)]
    except OSError:
        return []


def evict(cap: int, keep: Path | None = None) -> int:
    """Delete the least recently used entries until the folder holds at most `cap` bytes; also
    temporary files of ours left by a process that died. Returns the bytes freed."""
    where = folder()
    entries = sorted(_entries(where), key=lambda e: e.stat(follow_symlinks=False).st_mtime)
    total = sum(e.stat(follow_symlinks=False).st_size for e in entries)
    freed = 0
    for e in entries:
        if total <= cap:
            break
        if keep is not None and e.name == keep.name:
            continue
        size = e.stat(follow_symlinks=False).st_size
        try:
            os.remove(e.path)
        except OSError:
            continue
        total, freed = total - size, freed + size
    try:
        with os.scandir(where) as it:
            for e in it:
                if TEMP.match(e.name) and not e.is_symlink() and \
                        time.time() - e.stat(follow_symlinks=False).st_mtime > STALE_TEMP_S:
                    os.remove(e.path)
    except OSError:
        pass
    return freed


# ---- the hook the Session uses ---------------------------------------------------------------------
def load_or_compute(session, split: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`split`'s features from the disk cache when the body is frozen and an entry checks out;
    else computed, and written for the next kernel. Says which through `progress` events."""
    head = session.model.block_names[-1]
    frozen_body = all(n == head for n in session.trainable)
    if not (enabled() and frozen_body):
        return compute()
    key = entry_key(session, split)
    if _entry(folder(), key).is_file():
        report = session.events.progress(f"disk cache ({split})", 1)
        report(0)
        found = load(key, len(getattr(session.data, split)))
        report(1)
        if found is not None:
            return found.to(session.device)
    features = compute()
    store(key, features)
    return features


# ---- what a person sees and clears -----------------------------------------------------------------
@dataclass(frozen=True)
class FeatureCacheInfo:
    """What the disk feature cache holds: `wb.feature_cache_info()`."""

    folder: Path
    entries: int
    bytes: int
    max_bytes: int
    enabled: bool

    def __repr__(self) -> str:
        state = "on" if self.enabled else f"off ({ENV_SWITCH}=0)"
        return (f"feature cache ({state}): {self.entries} entries, {self.bytes / 1024**2:.1f} MB of "
                f"{self.max_bytes / 1024**3:.1f} GB in {self.folder} (wb.clear_feature_cache() empties it; "
                f"{ENV_DIR} moves it, {ENV_MAX} sets the cap)")


def feature_cache_info() -> FeatureCacheInfo:
    """Where the head-only feature cache lives on disk, how many entries and bytes it holds."""
    where = folder()
    entries = _entries(where)
    return FeatureCacheInfo(where, len(entries), sum(e.stat(follow_symlinks=False).st_size for e in entries),
                            max_bytes(), enabled())


def clear_feature_cache() -> int:
    """Delete every feature-cache entry workbench wrote in the cache folder (nothing else there);
    returns how many were deleted."""
    removed = 0
    for e in _entries(folder()):
        try:
            os.remove(e.path)
            removed += 1
        except OSError:
            continue
    return removed
