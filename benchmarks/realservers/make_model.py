"""Make the rig's tiny random-weight Llama without any model hub.

Run with the rig's ``hf`` venv Python (it needs torch, transformers, tokenizers and gguf):

    python make_model.py --text-dir DIR --out DIR

It writes ``OUT/hf`` (``save_pretrained``: config, safetensors, tokenizer files, ChatML template) and
``OUT/tiny-llama.gguf`` (the same weights and tokenizer, written directly with the ``gguf`` package).
The text only has to be readable: the weights are random, and what matters to a load-test client is a
real tokenizer, a real chat template and a real forward pass of a realistic shape.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

VOCAB = 4096
HIDDEN = 256
LAYERS = 4
HEADS = 4
KV_HEADS = 2
FFN = 512
CONTEXT = 4096
ROPE_THETA = 10000.0
RMS_EPS = 1e-5
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _texts(text_dir: Path) -> Iterator[str]:
    """Every Markdown/text file under ``text_dir`` (the llama-cpp-python sdist has hundreds)."""
    n = 0
    for p in sorted(text_dir.rglob("*")):
        if p.suffix.lower() in {".md", ".txt", ".rst"} and p.is_file():
            try:
                yield p.read_text(encoding="utf-8", errors="replace")
                n += 1
            except OSError:
                continue
    if n == 0:
        raise SystemExit(f"no .md/.txt/.rst files under {text_dir}: pass --text-dir with some text")


def train_tokenizer(text_dir: Path):  # type: ignore[no-untyped-def]
    """A byte-level BPE with the GPT-2 pre-tokenizer regex, so llama.cpp's ``gpt-2`` pre-tokenizer agrees."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_texts(text_dir), trainer=trainer)
    return tok


def save_hf(tok, out: Path) -> tuple[object, dict[str, int]]:  # type: ignore[no-untyped-def]
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = tok.get_vocab_size()
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=CONTEXT,
        rms_norm_eps=RMS_EPS,
        rope_theta=ROPE_THETA,
        tie_word_embeddings=False,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        torch_dtype="float32",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out, safe_serialization=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=CONTEXT,
    )
    fast.chat_template = CHATML
    fast.save_pretrained(out)
    # Older readers look for the template in tokenizer_config.json only: put it there as well.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = CHATML
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    return model, ids


def _permute_qk(w, n_head: int):  # type: ignore[no-untyped-def]
    """HF keeps Q/K rows in rotate-half order; llama.cpp's ``llama`` rope wants interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def save_gguf(model, tok, ids: dict[str, int], path: Path) -> None:  # type: ignore[no-untyped-def]
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_vocab_size(tok.get_vocab_size())
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    # Tokenizer: the byte-level strings exactly as the HF vocab holds them, with their merges.
    vocab = tok.get_vocab()
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    assert [i for _, i in by_id] == list(range(len(by_id))), "vocab ids are not dense"
    tokens = [t for t, _ in by_id]
    specials = set(SPECIALS)
    types = [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids["<|endoftext|>"])
    w.add_eos_token_id(ids["<|im_end|>"])
    w.add_pad_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for i in range(LAYERS):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}"] = f"blk.{i}.{gg}"
    for hf_name, arr in sd.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gg_name = names[hf_name]
        if gg_name.endswith("attn_q.weight"):
            arr = _permute_qk(arr, HEADS)
        elif gg_name.endswith("attn_k.weight"):
            arr = _permute_qk(arr, KV_HEADS)
        w.add_tensor(gg_name, np.ascontiguousarray(arr, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text-dir", type=Path, required=True, help="local text to train the tokenizer on")
    ap.add_argument("--out", type=Path, required=True, help="output folder (hf/ and tiny-llama.gguf)")
    args = ap.parse_args()
    hf_dir = args.out / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(args.text_dir)
    model, ids = save_hf(tok, hf_dir)
    gguf_path = args.out / "tiny-llama.gguf"
    save_gguf(model, tok, ids, gguf_path)
    n_params = sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]
    print(f"model: {hf_dir} ({n_params / 1e6:.1f} M parameters, vocab {tok.get_vocab_size()}); {gguf_path}")


if __name__ == "__main__":
    main()
