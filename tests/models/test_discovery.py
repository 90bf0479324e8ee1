"""Blocks follow the forward pass and map parameters by identity (workbench/models/discovery.py)."""

from __future__ import annotations

import torch
from torch import nn

from workbench.models import ImagePreprocess, Model, load_backbone
from workbench.models.discovery import trace

PRE = ImagePreprocess(16, (0.5,) * 3, (0.5,) * 3)


class Backwards(nn.Module):
    """Registers its layers in the reverse of the order it runs them, plus one it never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.late = nn.Conv2d(8, 8, 3, padding=1)
        self.unused = nn.Conv2d(8, 8, 1)
        self.middle = nn.Conv2d(4, 8, 3, padding=1)
        self.early = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.late(self.middle(self.early(x))).mean((2, 3)))


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = self.a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_a_shape_only_trace_puts_every_weight_back_even_in_a_tied_module():
    # torch.func.functional_call left meta tensors in a module registered twice (torch 2.14)
    module = Tied()
    before = [id(p) for p in module.parameters()]
    traced = trace(module, (torch.zeros(1, 4),))
    assert [id(p) for p in module.parameters()] == before
    assert all(p.device.type == "cpu" and isinstance(p, nn.Parameter) for p in module.parameters())
    assert set(traced.first_use) == set(before) and traced.output.device.type == "meta"
    assert traced.spans["a"][0] == 0


def test_blocks_follow_the_forward_pass_not_registration_order():
    model = Model.from_module(Backwards(), 4, preprocess=PRE)
    # a layer the forward never uses joins the block registered before it, so freezing covers it
    assert model.block_names == ["stem", "middle", "late+unused", "head"]


def test_transformers_layers_land_where_the_forward_uses_them(tiny_text):
    xlmr = load_backbone(f"hf:{tiny_text('xlm-roberta')}", 3, pretrained=False)
    assert xlmr.block_names[-2:] == ["classifier.dense", "head"]  # registered before the layers, runs after
    opt = load_backbone(f"hf:{tiny_text('opt')}", 3, pretrained=False)
    assert opt.block_of("model.decoder.final_layer_norm.weight") == opt.block_names[-2]  # folded, not in stem
    mpnet = load_backbone(f"hf:{tiny_text('mpnet')}", 3, pretrained=False)
    assert mpnet.block_of("mpnet.encoder.relative_attention_bias.weight") == "stem"  # used before the layers
    t5 = load_backbone(f"hf:{tiny_text('t5')}", 3, pretrained=False)
    assert "encoder.block.0" in t5.block_names and "decoder.block.0" in t5.block_names
    for alias in ("transformer.shared.weight", "transformer.encoder.embed_tokens.weight",
                  "transformer.decoder.embed_tokens.weight"):  # fmt: skip
        assert t5.block_of(alias) == "stem"  # one shared embedding, one block


def test_shared_position_encodings_of_coat_are_in_one_block():
    coat = load_backbone("timm:coat_lite_tiny", 3, pretrained=False, image_size=32)
    names = dict(coat.module.named_parameters(remove_duplicate=False))
    shared = [n for n in names if n.startswith("serial_blocks1.0.cpe.")]
    assert shared and all(coat.block_of(n) == coat.block_of(n.replace("serial_blocks1.0.cpe.", "cpe1.")) for n in shared)
    trained = {id(p) for b in coat.block_names[-3:] for p in coat.parameters_of(b)}
    for p in coat.module.parameters():  # last(2) freezing by identity: shared objects once
        p.requires_grad_(id(p) in trained)
    assert sum(p.numel() for p in coat.module.parameters() if p.requires_grad) == sum(
        coat.block(b).params for b in coat.block_names[-3:])  # fmt: skip


def test_norm_only_groups_join_the_stage_before_them():
    with torch.device("meta"):  # shape-only builds: no memory for beit's 86M parameters
        beit = load_backbone("timm:beit_base_patch16_224", 3, pretrained=False, seed=None)
        swin = load_backbone("timm:swin_tiny_patch4_window7_224", 3, pretrained=False, seed=None)
    assert beit.block_names[-2] == "blocks.11+fc_norm"
    assert swin.block_names[-2] == "layers.3+norm"


def test_models_without_a_group_description_use_their_feature_stages():
    poolformer = load_backbone("timm:poolformer_s12", 3, pretrained=False, image_size=32)
    assert poolformer.block_names == ["stem", "stages.0", "stages.1", "stages.2", "stages.3+head.norm", "head"]
