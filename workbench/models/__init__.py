"""Backbones: load one by name, see its blocks, preprocessing and where its weights came from.

    model = load_backbone("efficientnet_lite0", num_classes=10)   # bundled ImageNet weights, offline
    model.blocks, model.head, model.preprocess, model.weights
"""

from __future__ import annotations

from .model import Block, ImagePreprocess, Model, TextPreprocess
from .registry import list_backbones, load_backbone

__all__ = ["Block", "ImagePreprocess", "Model", "TextPreprocess", "list_backbones", "load_backbone"]
