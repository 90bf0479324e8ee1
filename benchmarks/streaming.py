"""Image folders of growing size: time per 1,000 images and peak memory stay flat. Prints JSON.

Generates folders of N 256 px JPEGs (3 classes, once, under --root), then for each N, in a child
process (so ru_maxrss is that run's own peak): Data.from_folder, EfficientNet-Lite0 at 128 px,
the head-only feature-cache build over the whole train split (a forward-only pass that decodes
every file once), and a full-forward training epoch cut after --batches batches (its images per
second are the steady state; a whole epoch of 40k images would take an hour on a 2-core CPU).
Reported beside them: decoding alone (the DataLoader workers, no model) and the model alone (on
preloaded tensors), in images per second, so it shows which one bounds the pass.

Folders whose resized pixels exceed data.transforms.FILE_PRELOAD_LIMIT_BYTES stream (decoded by
worker processes every pass); smaller ones are decoded once by the workers and held in memory.

    python benchmarks/streaming.py [--sizes 2000 10000 40000] [--root /tmp/wb-folders] [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import emit

SIZE, CLASSES = 128, ("red", "green", "blue")


def make_folder(root: Path, n: int) -> Path:
    """N 256 px JPEGs, n/3 per class (noise with one strong channel), made once and reused."""
    import numpy as np
    from PIL import Image

    folder = root / f"n{n}"
    done = folder / ".complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(n)
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % 3
        pixels = rng.integers(0, 200, size=(256, 256, 3), dtype=np.uint8)
        pixels[..., c] = np.clip(pixels[..., c].astype(int) + 55, 0, 255)
        Image.fromarray(pixels).save(folder / CLASSES[c] / f"{i:06d}.jpg", quality=85)
    done.touch()
    return folder


def child(folder: str, batches: int) -> None:
    """One measurement in this process; prints a JSON line."""
    import torch

    import workbench as wb
    from workbench.data.streaming import Decoder, worker_count

    torch.manual_seed(0)
    data = wb.Data.from_folder(folder, valid_fraction=0.1)
    model = wb.load_backbone("efficientnet_lite0", num_classes=3, image_size=SIZE)
    s = wb.Session(data, model, batch_size=64, freeze="head")
    n = len(data.train)
    start = time.perf_counter()
    s.features("train")  # the cache build: decode every train file once, frozen forward
    cache_s = time.perf_counter() - start
    batcher = s.pipeline.batcher("train")
    # decoding alone: the same workers, the first 40 batches of 64
    order = list(torch.arange(min(n, 40 * 64)).split(64))
    start = time.perf_counter()
    for _ in Decoder(batcher._load, worker_count(), persistent=False).run(order):
        pass
    decode_rate = sum(len(i) for i in order) / (time.perf_counter() - start)
    # the model alone: forward-only on already-decoded pixels
    pixels = torch.cat([batcher._load(i) for i in range(64)])
    x = (pixels.float() - batcher.mean) / batcher.std
    model.module.eval()
    with torch.no_grad():
        model.module(x)
        start = time.perf_counter()
        for _ in range(3):
            model.module(x.contiguous(memory_format=torch.channels_last))
    model_rate = 3 * 64 / (time.perf_counter() - start)
    # a full-forward epoch, cut after `batches` batches
    s.freeze("full")
    s.on("batch_end", lambda b: s.stop() if b.batch >= batches else None)
    s.events.batch_interval_s = 0.0
    r = s.fit(1, progress=False)[0]
    print(json.dumps({
        "images": n + len(data.valid), "train_images": n, "streams": batcher.streams,
        "decode_workers": worker_count(),
        "cache_build_s": round(cache_s, 2), "cache_build_s_per_1000": round(cache_s / n * 1000, 2),
        "full_forward_s_per_1000": round(1000 / r.samples_per_s, 2), "full_forward_batches": r.batches,
        "decode_images_per_s": round(decode_rate, 1), "model_forward_images_per_s": round(model_rate, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 10000, 40000])
    parser.add_argument("--root", default="/tmp/wb-folders")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.batches)
        return
    root = Path(args.root)
    results = {}
    for n in args.sizes:
        folder = make_folder(root, n)
        env = {**os.environ, "WORKBENCH_PROGRESS": "0"}
        out = subprocess.run([sys.executable, __file__, "--child", str(folder), "--batches", str(args.batches)],
                             capture_output=True, text=True, env=env, cwd=Path(__file__).parent)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        results[str(n)] = json.loads(lines[-1]) if lines else {"error": out.stderr[-1500:]}
    emit("streaming", {"image_size": SIZE, "backbone": "efficientnet_lite0", "jpeg": "256 px, quality 85",
                       "target": "s per 1000 images flat as N grows; peak RSS bounded", "results": results})


if __name__ == "__main__":
    main()
