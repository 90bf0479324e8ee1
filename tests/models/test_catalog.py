"""The picker's catalog: parameter counts from shape-only builds, honest availability offline."""

from workbench.models.catalog import backbone_card, describe_backbones
from workbench.models import load_backbone


def test_cards_count_parameters_without_loading_weights():
    card = backbone_card("resnet18")
    model = load_backbone("resnet18", 2, pretrained=False)
    head = sum(p.numel() for p in model.head.parameters())
    assert card.params == sum(p.numel() for p in model.module.parameters()) - head
    assert card.input == "224 px" and card.kind == "image"


def test_bundled_backbones_are_always_available_and_hub_ones_follow_the_hub(monkeypatch):
    from workbench.models import catalog

    monkeypatch.setattr(catalog, "unreachable", lambda url: f"cannot connect to {url}")
    offline = describe_backbones()
    assert offline.loc["efficientnet_lite0", "available"] and offline.loc["minilm-l6", "available"]
    assert "bundled" in offline.loc["minilm-l6", "weights_from"] and offline.loc["minilm-l6", "input"] == "max 128 tokens"
    assert not offline.loc["resnet50", "available"] and "download.pytorch.org" in offline.loc["resnet50", "why_not"]
    monkeypatch.setattr(catalog, "unreachable", lambda url: None)
    monkeypatch.setattr(catalog, "hf_offline", lambda: False)
    online = describe_backbones("text")
    assert online["available"].all() and list(online.index) == ["bert-base-uncased", "distilbert-base-uncased",
                                                               "roberta-base", "minilm-l6"]
