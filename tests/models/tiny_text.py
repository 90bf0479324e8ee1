"""Tiny transformers checkpoints of many architectures, written to a folder (no network).

A tiny folder holds a config (hidden 32, 2 layers) and a 46-token word-level tokenizer that adds
[CLS] ... [SEP] to every text (so encoder-decoders find their end-of-sequence token); it loads as
``hf:<folder>``. Imported by tests as ``models.tiny_text`` (tests/ is on the path).
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ("a b c the film was good bad great dull long short i left early hello there my friend text "
         "longer so that batch is padded another one little than first raw strings work too movie plot").split()  # fmt: skip
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_L = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
_KV = dict(_L, num_key_value_heads=1)
_SEQ2SEQ = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                encoder_ffn_dim=64, decoder_ffn_dim=64)  # fmt: skip

# architecture -> (config class, tiny sizes, role); 26 architectures that transformers can build as
# sequence classifiers: encoders, decoders (classify from the last token), encoder-decoders
TINY_TEXT: dict[str, tuple[str, dict, str]] = {
    "bert": ("BertConfig", _L, "encoder"),
    "roberta": ("RobertaConfig", _L, "encoder"),
    "xlm-roberta": ("XLMRobertaConfig", _L, "encoder"),
    "distilbert": ("DistilBertConfig", dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64), "encoder"),
    "albert": ("AlbertConfig", dict(_L, embedding_size=16), "encoder"),
    "electra": ("ElectraConfig", dict(_L, embedding_size=16), "encoder"),
    "deberta-v2": ("DebertaV2Config", dict(_L, relative_attention=True, position_buckets=8, pos_att_type=["p2c", "c2p"]),
                   "encoder"),  # fmt: skip
    "mpnet": ("MPNetConfig", _L, "encoder"),
    "modernbert": ("ModernBertConfig", dict(_L, global_attn_every_n_layers=2, local_attention=8, cls_token_id=2,
                                            sep_token_id=3), "encoder"),  # fmt: skip
    "funnel": ("FunnelConfig", dict(d_model=32, n_head=2, d_head=16, d_inner=64, block_sizes=[1, 1], num_decoder_layers=1),
               "encoder"),  # fmt: skip
    "convbert": ("ConvBertConfig", dict(_L, embedding_size=32), "encoder"),
    "longformer": ("LongformerConfig", dict(_L, attention_window=4), "encoder"),
    "xlnet": ("XLNetConfig", dict(d_model=32, n_layer=2, n_head=2, d_inner=64), "decoder"),
    "gpt2": ("GPT2Config", dict(n_embd=32, n_layer=2, n_head=2), "decoder"),
    "llama": ("LlamaConfig", _KV, "decoder"),
    "qwen2": ("Qwen2Config", _KV, "decoder"),
    "gpt_neox": ("GPTNeoXConfig", _L, "decoder"),
    "phi": ("PhiConfig", _L, "decoder"),
    "opt": ("OPTConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64, word_embed_proj_dim=32),
            "decoder"),  # fmt: skip
    "mistral": ("MistralConfig", _KV, "decoder"),
    "gemma": ("GemmaConfig", dict(_KV, head_dim=16), "decoder"),
    "bloom": ("BloomConfig", dict(hidden_size=32, n_layer=2, n_head=2), "decoder"),
    "gpt_neo": ("GPTNeoConfig", dict(hidden_size=32, num_layers=2, num_heads=2, attention_types=[[["global", "local"], 1]],
                                     window_size=8), "decoder"),  # fmt: skip
    "t5": ("T5Config", dict(d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16, decoder_start_token_id=0), "encoder-decoder"),
    "bart": ("BartConfig", _SEQ2SEQ, "encoder-decoder"),
    "mbart": ("MBartConfig", _SEQ2SEQ, "encoder-decoder"),
}


def tiny_tokenizer():
    """A word-level fast tokenizer over WORDS that wraps every text in [CLS] ... [SEP]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", bos_token="[CLS]", eos_token="[SEP]", model_max_length=64,
    )  # fmt: skip


def tiny_config(arch: str):
    import transformers

    cls, sizes, _ = TINY_TEXT[arch]
    ids = dict(vocab_size=len(SPECIAL) + len(WORDS), pad_token_id=0, bos_token_id=2, eos_token_id=3)
    if arch != "xlnet":  # XLNet has no length limit and refuses the setting
        ids["max_position_embeddings"] = 64
    return getattr(transformers, cls)(**ids, **sizes)


def write_tiny(path: Path, arch: str, weights: bool = False, pooling: tuple[str, ...] | None = None) -> Path:
    """A local checkpoint folder: config + tokenizer (+ random weights, + a sentence-transformers pooling config)."""
    import transformers

    config = tiny_config(arch)
    path.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    if weights:
        transformers.AutoModel.from_config(config).save_pretrained(path)
    if pooling:
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]  # fmt: skip
        (path / "modules.json").write_text(json.dumps(modules))
        (path / "1_Pooling").mkdir(exist_ok=True)
        keys = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens", "last-token": "lasttoken",
                "mean-sqrt-len": "mean_sqrt_len_tokens", "weighted-mean": "weightedmean_tokens"}  # fmt: skip
        cfg = {"word_embedding_dimension": 32, **{f"pooling_mode_{keys[m]}": True for m in pooling}}
        (path / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    return path
