"""Write a local word-level Hugging Face tokenizer that counts tokens exactly like the simulator.

Peer tools need a tokenizer to build synthetic prompts and (some) to count output tokens. Downloading one from
a model hub is not possible here, and would not match the simulator anyway: the simulator's token is a
whitespace-separated word. This script builds a ``WordLevel`` tokenizer with a whitespace pre-tokenizer, so
``len(encode(text))`` equals the simulator's count, and saves it as a directory that
``AutoTokenizer.from_pretrained(path)`` loads offline.

Run it with a Python that has ``tokenizers`` and ``transformers`` (any peer venv):

    python make_tokenizer.py OUT_DIR [EXTRA_TEXT_FILE ...]

Words of the extra text files (e.g. a tool's own prompt corpus) join the vocabulary, so prompts built by
slicing a tokenized corpus decode to real words instead of ``[UNK]``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    words: dict[str, None] = dict.fromkeys(["[UNK]", "<s>", "</s>"])
    for extra in sys.argv[2:]:
        try:
            text = Path(extra).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        words.update(dict.fromkeys(re.findall(r"\S+", text)[:200_000]))
    words.update(dict.fromkeys(f"w{i}" for i in range(4000)))

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>", eos_token="</s>", model_max_length=1_000_000
    )
    # a chat template lets tools that format chat prompts locally do so without a model repo
    fast.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    # some tools load the model config next to the tokenizer
    (out / "config.json").write_text('{"model_type": "llama", "max_position_embeddings": 1000000}\n')
    print(f"tokenizer with {len(vocab)} words written to {out}")


if __name__ == "__main__":
    main()
