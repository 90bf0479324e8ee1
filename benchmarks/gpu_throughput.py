"""Training throughput on a GPU through the Session, next to public anchors. Prints JSON.

ResNet-50 and ViT-B/16 (torchvision architectures, random init: speed does not depend on the
weights) at 224 px on GPU-resident synthetic uint8 images, full fine-tuning with the Session's
CUDA defaults (bf16 autocast, channels_last, fused AdamW, deferred loss reads). For each: images
per second of training time (the epoch after a warm-up epoch), model FLOP utilisation (forward +
backward FLOPs counted by torch's FlopCounterMode, over the chip's dense bf16 peak and over a
measured 8k matmul), and the same steps in a bare PyTorch loop for the Session's share.

Anchors (public figures, other chips): NVIDIA's ResNet-50 AMP training ~2,470 img/s on one A100
80GB (DeepLearningExamples, DALI, batch 256); ViT-B/16 training at ~35% MFU is a good result
without fused attention kernels tuned for it. On a machine without CUDA it says so and exits 0.

    python benchmarks/gpu_throughput.py [--images 5120] [--batch 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import emit

import workbench as wb

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
ANCHORS = {"resnet50": {"images_per_s": 2470, "where": "NVIDIA DeepLearningExamples ResNet-50 AMP, 1x A100 80GB"},
           "vit_b_16": {"mfu": 0.35, "where": "ViT-B/16 training, a good MFU without tuned kernels"}}


def peak_tflops() -> float | None:
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def measured_matmul_tflops(n: int = 8192, reps: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def train_flops_per_image(module: torch.nn.Module, size: int) -> float:
    """Forward + backward FLOPs of one training step, per image (torch's own counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(8, 3, size, size, device="cuda").contiguous(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast("cuda", dtype=torch.bfloat16):
        module(x).float().sum().backward()
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 8


def synthetic(n: int, size: int, classes: int = 10) -> wb.Data:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    labels = np.arange(n) % classes
    cut = n * 9 // 10
    return wb.Data.from_arrays(images[:cut], labels[:cut], valid=(images[cut:], labels[cut:]), name="synthetic")


def bare_loop(session: wb.Session, steps: int) -> float:
    """The same steps as a person writes them on the GPU: images/s of training time."""
    model, batcher, labels = session.model.module, session.pipeline.batcher("train"), session.pipeline.labels("train")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    model.train()
    batches = [torch.randint(0, len(labels), (session.config.batch_size,)) for _ in range(steps + 2)]
    for i, idx in enumerate(batches):
        if i == 2:
            torch.cuda.synchronize()
            start = time.perf_counter()
        x = batcher.batch(idx, device=session.device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), labels[idx.to(labels.device)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    return steps * session.config.batch_size / (time.perf_counter() - start)


def case(arch: str, data: wb.Data, batch: int, peak: float | None, matmul: float) -> dict[str, object]:
    torch.manual_seed(0)
    model = wb.load_backbone(arch, num_classes=data.num_classes, pretrained=False, image_size=224)
    session = wb.Session(data, model, freeze="full", batch_size=batch, lr=1e-4)
    session.step()  # warm-up: cuDNN algorithm choice, allocator, kernels
    r = session.step()
    flops = train_flops_per_image(session.model.module, 224)
    achieved = r.samples_per_s * flops / 1e12
    bare = bare_loop(session, r.num_batches)
    out = {"images_per_s": round(r.samples_per_s, 1), "bare_loop_images_per_s": round(bare, 1),
           "session_vs_bare": round(r.samples_per_s / bare, 3), "train_gflops_per_image": round(flops / 1e9, 2),
           "achieved_tflops": round(achieved, 1), "mfu_vs_datasheet_peak": round(achieved / peak, 3) if peak else None,
           "mfu_vs_measured_matmul": round(achieved / matmul, 3), "epoch_time_s": round(r.epoch_time_s, 2),
           "batches": r.num_batches, "batch_size": batch, "anchor": ANCHORS[arch]}
    del session, model
    torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=5120)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        emit("gpu_throughput", {"cuda": False, "note": "no CUDA GPU here: nothing to measure"})
        return
    data = synthetic(args.images, 224)
    peak, matmul = peak_tflops(), measured_matmul_tflops()
    results = {}
    for arch in ("resnet50", "vit_b_16"):
        try:
            results[arch] = case(arch, data, args.batch, peak, matmul)
        except Exception as exc:  # noqa: BLE001 - report and go on to the next model
            results[arch] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    emit("gpu_throughput", {"device": torch.cuda.get_device_name(), "datasheet_bf16_tflops": peak,
                            "measured_bf16_matmul_tflops": round(matmul, 1),
                            "data": f"{len(data.train)}/{len(data.valid)} synthetic 224 px uint8 on the GPU",
                            "results": results})


if __name__ == "__main__":
    main()
