"""A tiny random-weight Llama with a locally trained tokenizer and a ChatML template (no hub, no network).

The tokenizer and template come from the real-server rig (benchmarks/realservers/make_model.py); the model is
smaller (2 layers, hidden 64) so that a test generates in milliseconds on the CPU. Needs torch, transformers
and tokenizers (the ``local`` extra): callers skip with a reason when :func:`missing` names one.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def missing() -> str | None:
    """The first of torch / transformers / tokenizers that is not installed (None: all are)."""
    for name in ("torch", "transformers", "tokenizers"):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def build_tiny_llama(out: Path, hidden: int = 64, layers: int = 2) -> Path:
    """Write ``out`` (config, safetensors, tokenizer with a chat template) and return it."""
    sys.path.insert(0, str(REPO / "benchmarks" / "realservers"))
    try:
        import make_model
    finally:
        sys.path.pop(0)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = make_model.train_tokenizer(REPO / "docs")
    ids = {s: tok.token_to_id(s) for s in make_model.SPECIALS}
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=2048,
    )
    fast.chat_template = make_model.CHATML
    fast.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = make_model.CHATML
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    return out
