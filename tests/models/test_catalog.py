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


def test_describing_in_a_thread_while_loading_does_not_break_imports():
    """The picker describes a backbone in a thread; a load at the same time used to fail with
    ImportError from transformers' lazy modules (3 of 3 runs in a fresh process)."""
    import subprocess
    import sys

    code = ("import threading, workbench as wb\nfrom workbench.models.catalog import backbone_card\n"
            "t = threading.Thread(target=backbone_card, args=('minilm-l6',)); t.start()\n"
            "m = wb.load_backbone('minilm-l6', 2); t.join(); print(m.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "minilm-l6", out.stderr[-1500:]
